/**
 * From discovered ranges to the routes to add: `--exclude` carves ranges out (splitting a
 * range around a hole), and ranges that would break this machine are skipped. Pure but for the
 * conflict check, which asks the routing table.
 */
import { type Cidr, parseCidr } from "../net/cidr.ts";
import type { ConflictCheck } from "../tunnel/checks.ts";
import { ExitCode, UserError } from "../errors.ts";
import type { Range, Skipped } from "./routes.ts";
import { subtract, within } from "./split.ts";

export interface PlanOptions {
  /** `--exclude` CIDRs. */
  exclude?: string[];
  /** Local-network and other-tunnel conflicts (tunnel/checks.ts conflictChecker). */
  conflicts?: ConflictCheck;
  /** `--force`: keep ranges whose conflict is forceable, saying so. */
  force?: boolean;
}

export interface RoutePlan {
  routes: Range[];
  skipped: Skipped[];
  /** E.g. an --exclude that matched nothing. */
  notes: string[];
}

export function parseExcludes(texts: string[]): Cidr[] {
  return texts.map((t) => {
    try {
      return parseCidr(t);
    } catch (e) {
      if (e instanceof UserError) throw new UserError(`--exclude ${e.message}`, ExitCode.Usage);
      throw e;
    }
  });
}

/** The candidates with the excluded ranges taken out, before any conflict check. */
export function applyExcludes(
  candidates: Range[],
  excludes: Cidr[],
): { ranges: Range[]; skipped: Skipped[]; notes: string[] } {
  const ranges: Range[] = [];
  const skipped: Skipped[] = [];
  const used = new Set<string>();
  for (const cand of candidates) {
    const whole = parseCidr(cand.cidr);
    let pieces = [whole];
    const cuts: string[] = [];
    for (const ex of excludes) {
      const next = pieces.flatMap((p) => subtract(p, ex));
      if (next.length === pieces.length && next.every((c, n) => c.text === pieces[n].text)) {
        continue;
      }
      used.add(ex.text);
      cuts.push(ex.text);
      pieces = next;
    }
    if (cuts.length === 0) {
      ranges.push(cand);
    } else if (pieces.length === 0) {
      skipped.push({ cidr: cand.cidr, reason: `${cand.reason}: excluded by --exclude ${cuts[0]}` });
    } else {
      const why = `${cand.reason}: part of ${cand.cidr} minus --exclude ${cuts.join(", ")}`;
      ranges.push(...pieces.map((p) => ({ cidr: p.text, reason: why })));
    }
  }
  const notes = excludes.filter((ex) => !used.has(ex.text))
    .map((ex) =>
      candidates.some((c) => within(parseCidr(c.cidr), ex) || within(ex, parseCidr(c.cidr)))
        ? `--exclude ${ex.text} is already covered by another --exclude`
        : `--exclude ${ex.text} matches no discovered range`
    );
  return { ranges, skipped, notes };
}

/**
 * The routes to add, each with its reason, and what was skipped and why. A range that
 * conflicts with this machine's networks is skipped, saying that --force keeps it; with
 * `force` it is kept and the conflict noted in its reason. Other tunnels' ranges are always
 * skipped.
 */
export async function planRoutes(candidates: Range[], o: PlanOptions = {}): Promise<RoutePlan> {
  const { ranges, skipped, notes } = applyExcludes(candidates, parseExcludes(o.exclude ?? []));
  const routes: Range[] = [];
  for (const r of ranges) {
    const conflict = await o.conflicts?.(parseCidr(r.cidr));
    if (!conflict) {
      routes.push(r);
    } else if (conflict.forceable && o.force) {
      routes.push({ cidr: r.cidr, reason: `${r.reason} (kept by --force: ${conflict.reason})` });
    } else {
      const way = conflict.forceable ? "; --exclude the overlap, or --force keeps it" : "";
      skipped.push({ cidr: r.cidr, reason: `${r.reason}: ${conflict.reason}${way}` });
    }
  }
  return { routes, skipped, notes };
}
