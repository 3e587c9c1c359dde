/**
 * `config pull`'s plan: which team entries to add to the local config and where the two
 * disagree. Local entries always win; a difference is only reported. Pure.
 */
import type { ClusterEntry } from "./clusters.ts";
import { type TunnelProfile, tunnelToEntry } from "./tunnels.ts";
import type { EntryKind } from "./team.ts";

export interface Entries {
  tunnels: TunnelProfile[];
  clusters: ClusterEntry[];
}

export interface FieldDiff {
  /** The YAML key (snake_case). */
  key: string;
  local: unknown;
  team: unknown;
}

export interface EntryDiff {
  kind: EntryKind;
  name: string;
  fields: FieldDiff[];
}

export interface MergePlan {
  /** Team entries the local config lacks. */
  add: Entries;
  /** Entries on both sides that differ: the local one is kept. */
  differ: EntryDiff[];
  /** Entries on both sides that agree. */
  same: number;
}

/** The fields of two entries (as YAML objects) that differ, in the order of `a` then `b`. */
export function diffEntries(a: Record<string, unknown>, b: Record<string, unknown>): FieldDiff[] {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  return keys
    .filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]))
    .map((k) => ({ key: k, local: a[k], team: b[k] }));
}

export function clusterToEntry(c: ClusterEntry): Record<string, unknown> {
  const { name: _, ...rest } = c;
  return rest;
}

export function planMerge(local: Entries, team: Entries): MergePlan {
  const plan: MergePlan = { add: { tunnels: [], clusters: [] }, differ: [], same: 0 };
  const visit = <T extends { name: string }>(
    kind: EntryKind,
    mine: T[],
    theirs: T[],
    toEntry: (t: T) => Record<string, unknown>,
    add: T[],
  ) => {
    const byName = new Map(mine.map((m) => [m.name, m]));
    for (const t of theirs) {
      const m = byName.get(t.name);
      if (!m) {
        add.push(t);
        continue;
      }
      const fields = diffEntries(toEntry(m), toEntry(t));
      if (fields.length) plan.differ.push({ kind, name: t.name, fields });
      else plan.same++;
    }
  };
  visit("tunnel", local.tunnels, team.tunnels, tunnelToEntry, plan.add.tunnels);
  visit("cluster", local.clusters, team.clusters, clusterToEntry, plan.add.clusters);
  return plan;
}

function show(v: unknown): string {
  if (v === undefined) return "(unset)";
  if (Array.isArray(v)) return `[${v.join(", ")}]`;
  return String(v);
}

/** `tunnels.prod: local cidrs [10.0.0.0/16], team [10.1.0.0/16]: kept local` */
export function describeDiff(d: EntryDiff, verdict = "kept local"): string {
  const parts = d.fields.map((f) => `local ${f.key} ${show(f.local)}, team ${show(f.team)}`);
  return `${d.kind}s.${d.name}: ${parts.join("; ")}: ${verdict}`;
}

function count(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? "" : "s"}`;
}

/** The last line of `config pull`. */
export function summarize(
  plan: MergePlan,
  o: { file: string; root: string; dryRun?: boolean; skipped?: number },
): string {
  const added = `${count(plan.add.tunnels.length, "tunnel")} and ` +
    `${count(plan.add.clusters.length, "cluster")}`;
  const head = o.dryRun
    ? `would add ${added} from ${o.root} to ${o.file}`
    : `added ${added} from ${o.root} to ${o.file}`;
  const tail = [`${plan.same} already the same`, `${plan.differ.length} kept local`];
  if (o.skipped) tail.push(`${o.skipped} invalid skipped`);
  return `${head}; ${tail.join(", ")}`;
}
