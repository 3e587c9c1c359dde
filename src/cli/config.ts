/**
 * `ssm-proxy config show|check|publish|pull`: the config file, and the team's entries in SSM
 * Parameter Store. The work is in src/config/ (parse, team codec, merge plan, YAML edit); this
 * file reads, calls AWS, prints.
 */
import { Document, type Node, type YAMLMap, type YAMLSeq } from "yaml";
import { ExitCode, UserError } from "../errors.ts";
import type { AwsOptions } from "../aws/config.ts";
import { type ClusterEntry, parseClusters } from "../config/clusters.ts";
import { type LocalConfig, readConfig } from "../config/file.ts";
import { clusterCandidates } from "../config/load.ts";
import {
  clusterToEntry,
  describeDiff,
  diffEntries,
  planMerge,
  summarize,
} from "../config/merge.ts";
import {
  decodeCluster,
  decodeTunnel,
  encodeCluster,
  encodeTunnel,
  type EntryKind,
  fetchTeam,
  parameterName,
  type TeamEntries,
  teamRoot,
} from "../config/team.ts";
import { tunnelToEntry } from "../config/tunnels.ts";

export interface ConfigOptions extends AwsOptions {
  /** `--config FILE` */
  config?: string;
  /** `--path`: the team's Parameter Store root. */
  path?: string;
}

function count(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? "" : "s"}`;
}

async function localConfig(file: string | undefined, strict = false): Promise<LocalConfig> {
  const c = await readConfig(file, { strict });
  if (!c) {
    throw new UserError("no config file: HOME is not set; pass --config FILE", ExitCode.Usage);
  }
  return c;
}

export async function runConfigCheck(o: ConfigOptions): Promise<void> {
  const c = await localConfig(o.config, true);
  const what = `${count(c.tunnels.length, "tunnel")}, ${count(c.clusters.length, "cluster")}`;
  console.log(c.exists ? `ok: ${c.path} (${what})` : `ok: ${c.path} does not exist (${what})`);
}

export function parseKind(v: string): EntryKind {
  if (v !== "tunnel" && v !== "cluster") {
    throw new UserError(`--kind ${JSON.stringify(v)}: use tunnel or cluster`, ExitCode.Usage);
  }
  return v;
}

export async function runConfigPublish(
  name: string,
  o: ConfigOptions & { overwrite?: boolean; kind?: EntryKind },
): Promise<void> {
  const c = await localConfig(o.config);
  const tunnel = o.kind === "cluster" ? undefined : c.tunnels.find((t) => t.profile.name === name);
  const cluster = o.kind === "tunnel" || tunnel
    ? undefined
    : c.clusters.find((x) => x.name === name);
  if (!tunnel && !cluster) {
    const what = o.kind ?? "tunnel or cluster";
    throw new UserError(`no ${what} named "${name}" in ${c.path}`, ExitCode.Usage);
  }
  const kind: EntryKind = tunnel ? "tunnel" : "cluster";
  const param = parameterName(teamRoot(o.path), kind, name);
  const value = tunnel ? encodeTunnel(tunnel.profile) : encodeCluster(cluster!);
  const mine = tunnel ? tunnelToEntry(tunnel.profile) : clusterToEntry(cluster!);

  const { getParameter, putParameter } = await import("../aws/parameters.ts");
  const existing = await getParameter(o, param);
  if (existing) {
    let theirs: Record<string, unknown> | undefined;
    try {
      theirs = kind === "tunnel"
        ? tunnelToEntry(decodeTunnel(existing.value, param, name))
        : clusterToEntry(decodeCluster(existing.value, param, name));
    } catch {
      theirs = undefined; // not a valid entry: different by definition
    }
    const fields = theirs ? diffEntries(mine, theirs) : undefined;
    if (fields?.length === 0) {
      console.log(`${param} already holds this ${kind}: nothing to publish`);
      return;
    }
    if (!o.overwrite) {
      const why = fields
        ? describeDiff({ kind, name, fields }, "not published").replace(/^\S+: /, "")
        : "its value is not a valid entry";
      throw new UserError(
        `${param} already holds a different ${kind} (${why}); pass --overwrite to replace it`,
      );
    }
  }
  const { version } = await putParameter(o, {
    name: param,
    value,
    overwrite: existing !== undefined,
    description: `ssm-proxy ${kind} ${name}`,
  });
  console.log(`published ${kind} ${name} from ${c.path} to ${param} (version ${version})`);
}

export async function runConfigPull(o: ConfigOptions & { dryRun?: boolean }): Promise<void> {
  const c = await readConfig(o.config, { mayBeAbsent: true });
  if (!c) throw new UserError("HOME is not set: pass --config FILE to pull into", ExitCode.Usage);
  const root = teamRoot(o.path);
  const team = await fetchTeam(o, root);
  for (const p of team.problems) console.log(`skipped ${p}`);
  const plan = planMerge(
    { tunnels: c.tunnels.map((t) => t.profile), clusters: c.clusters },
    { tunnels: team.tunnels.map((t) => t.profile), clusters: team.clusters.map((x) => x.entry) },
  );
  for (const t of plan.add.tunnels) console.log(`+ tunnels.${t.name}`);
  for (const x of plan.add.clusters) console.log(`+ clusters ${x.name}`);
  for (const d of plan.differ) console.log(describeDiff(d));
  const adding = plan.add.tunnels.length + plan.add.clusters.length;
  if (adding > 0 && !o.dryRun) {
    const { addEntries, writeAtomic } = await import("../config/edit.ts");
    const text = addEntries(
      c.text,
      plan.add,
      (kind, name) => `from ${parameterName(root, kind, name)}`,
    );
    await writeAtomic(c.path, text);
  }
  console.log(
    summarize(plan, { file: c.path, root, dryRun: o.dryRun, skipped: team.problems.length }),
  );
}

interface Shown {
  name: string;
  source: "local" | "team";
  where: string;
  /** Keys where the team's entry of the same name differs (the local one is used). */
  teamDiffers?: string[];
  entry: Record<string, unknown>;
}

/** Local entries first (with what the team has differently), then team-only ones. */
function merged<T extends { name: string }>(
  local: { item: T; where: string }[],
  team: { item: T; where: string }[],
  toEntry: (t: T) => Record<string, unknown>,
): Shown[] {
  const theirs = new Map(team.map((t) => [t.item.name, t]));
  const out: Shown[] = local.map(({ item, where }) => {
    const t = theirs.get(item.name);
    const differs = t ? diffEntries(toEntry(item), toEntry(t.item)).map((f) => f.key) : [];
    return {
      name: item.name,
      source: "local",
      where,
      ...(differs.length ? { teamDiffers: differs } : {}),
      entry: toEntry(item),
    };
  });
  const mine = new Set(local.map((l) => l.item.name));
  for (const t of team) {
    if (!mine.has(t.item.name)) {
      out.push({ name: t.item.name, source: "team", where: t.where, entry: toEntry(t.item) });
    }
  }
  return out;
}

/** The clusters `eks` would use when the config has none: clusters.yaml here or by the binary. */
async function clustersElsewhere(
  file: string | undefined,
): Promise<{ file: string; clusters: ClusterEntry[] } | undefined> {
  for (const c of clusterCandidates({ configFile: file }).filter((c) => !c.inConfig)) {
    const text = await Deno.readTextFile(c.path).catch(() => undefined);
    if (text !== undefined) return { file: c.path, clusters: parseClusters(text, c.path) };
  }
  return undefined;
}

export async function runConfigShow(
  o: ConfigOptions & { json?: boolean; local?: boolean },
): Promise<void> {
  const c = await readConfig(o.config);
  let clusters = { file: c?.path ?? "", clusters: c?.clusters ?? [] };
  if (clusters.clusters.length === 0) clusters = (await clustersElsewhere(o.config)) ?? clusters;
  let team: TeamEntries | undefined;
  let teamError: string | undefined;
  const root = teamRoot(o.path);
  if (!o.local) {
    try {
      team = await fetchTeam(o, root);
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      teamError = e.message;
    }
  }
  const tunnels = merged(
    (c?.tunnels ?? []).map((t) => ({ item: t.profile, where: `${c!.path}:${t.line}` })),
    (team?.tunnels ?? []).map((t) => ({ item: t.profile, where: t.where })),
    tunnelToEntry,
  );
  const clusterList = merged(
    clusters.clusters.map((x) => ({ item: x, where: clusters.file })),
    (team?.clusters ?? []).map((t) => ({ item: t.entry, where: t.where })),
    clusterToEntry,
  );
  const teamInfo = {
    path: root,
    ...(o.local ? { skipped: true } : {}),
    ...(teamError ? { error: teamError } : {}),
    ...(team?.problems.length ? { problems: team.problems } : {}),
  };
  if (o.json) {
    console.log(JSON.stringify(
      {
        config: c ? { path: c.path, exists: c.exists } : null,
        ...(clusters.file && clusters.file !== c?.path ? { clustersFile: clusters.file } : {}),
        team: teamInfo,
        tunnels: tunnels,
        clusters: clusterList,
      },
      null,
      2,
    ));
    return;
  }
  for (const p of team?.problems ?? []) console.error(`warning: ${p}`);
  if (teamError) {
    console.error(`warning: team entries not shown: ${teamError} (--local skips them)`);
  }
  const header = [
    c ? ` config: ${c.path}${c.exists ? "" : " (does not exist)"}` : " config: none (HOME unset)",
    ...(clusters.file && clusters.file !== c?.path ? [` clusters: ${clusters.file}`] : []),
    o.local
      ? ` team: ${root} (not read: --local)`
      : team
      ? ` team: ${root} (${count(team.tunnels.length, "tunnel")}, ${
        count(team.clusters.length, "cluster")
      })`
      : ` team: ${root} (not read)`,
  ];
  console.log(showYaml(header, tunnels, clusterList));
}

function mark(s: Shown): string {
  const differs = s.teamDiffers ? `; the team's differs in ${s.teamDiffers.join(", ")}` : "";
  return ` ${s.source}: ${s.where}${differs}`;
}

/** The merged config as YAML, each entry preceded by where it comes from. */
export function showYaml(header: string[], tunnels: Shown[], clusters: Shown[]): string {
  const doc = new Document({
    tunnels: Object.fromEntries(tunnels.map((t) => [t.name, t.entry])),
    clusters: clusters.map((x) => ({ name: x.name, ...x.entry })),
  });
  doc.commentBefore = header.join("\n");
  const tmap = doc.get("tunnels", true) as YAMLMap;
  tmap.items.forEach((pair, i) => {
    (pair.key as Node).commentBefore = mark(tunnels[i]);
    for (const p of (pair.value as YAMLMap).items) {
      if ((p.value as YAMLSeq)?.items) (p.value as YAMLSeq).flow = true;
    }
  });
  (doc.get("clusters", true) as YAMLSeq).items.forEach((n, i) => {
    (n as Node).commentBefore = mark(clusters[i]);
  });
  return doc.toString({ flowCollectionPadding: false }).trimEnd();
}
