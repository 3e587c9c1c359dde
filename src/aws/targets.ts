/**
 * `--target` resolution: an instance id as is, or a Name/tag query through EC2 and, for hybrid
 * managed instances (`mi-…`, in SSM only), through DescribeInstanceInformation; then a check
 * that Systems Manager sees the instance online, so failures say why before any session starts.
 */

import { ExitCode, UserError } from "../errors.ts";
import type { AwsOptions } from "./config.ts";

export type TargetSpec =
  | { kind: "id"; id: string }
  | { kind: "name"; name: string }
  | { kind: "tag"; key: string; value: string };

export interface ResolvedTarget {
  instanceId: string;
  /**
   * The Name tag, when the target was found by name or tag; for a managed instance its
   * registration name (or the Name tag it matched by).
   */
  name?: string;
}

/** A hybrid-activation managed instance: in Systems Manager only, never in EC2. */
export function isManagedId(id: string): boolean {
  return id.startsWith("mi-");
}

const FORMS = "an instance id (i-… or mi-…), name:<Name tag> or tag:<Key>=<Value>";
const ID = /^(i-([0-9a-f]{8}|[0-9a-f]{17})|mi-[0-9a-f]{17})$/;

function usage(message: string): UserError {
  return new UserError(message, ExitCode.Usage);
}

/** Syntax only; no AWS calls. */
export function parseTarget(spec: string): TargetSpec {
  const s = spec.trim();
  if (s === "") throw usage(`the target is empty: give ${FORMS}`);
  if (/^m?i-/.test(s)) {
    if (!ID.test(s)) {
      throw usage(
        `"${s}" is not a valid instance id: expected i- followed by 8 or 17 hex digits ` +
          "(or mi- and 17 hex digits for a managed instance)",
      );
    }
    return { kind: "id", id: s };
  }
  if (s.startsWith("name:")) {
    const name = s.slice(5);
    if (name === "") throw usage(`"${s}" has no name after "name:", e.g. name:bastion`);
    return { kind: "name", name };
  }
  if (s.startsWith("tag:")) {
    const body = s.slice(4);
    const eq = body.indexOf("=");
    if (eq < 0) throw usage(`"${s}" needs =<Value> after the tag key, e.g. tag:Purpose=bastion`);
    if (eq === 0) throw usage(`"${s}" has no tag key before "=", e.g. tag:Purpose=bastion`);
    const value = body.slice(eq + 1);
    if (value === "") throw usage(`"${s}" has no value after "=", e.g. tag:Purpose=bastion`);
    return { kind: "tag", key: body.slice(0, eq), value };
  }
  const colon = s.indexOf(":");
  if (colon > 0) {
    throw usage(`unknown target kind "${s.slice(0, colon)}:" in "${s}": give ${FORMS}`);
  }
  throw usage(`"${s}" is not a target: give ${FORMS} (did you mean name:${s}?)`);
}

export function describeSpec(t: TargetSpec): string {
  switch (t.kind) {
    case "id":
      return t.id;
    case "name":
      return `name:${t.name}`;
    case "tag":
      return `tag:${t.key}=${t.value}`;
  }
}

export interface ResolveOptions {
  /** The command has `--spread`: say so when the query matches several instances. */
  spreadHint?: boolean;
}

export async function resolveTarget(
  o: AwsOptions,
  spec: string,
  opts: ResolveOptions = {},
): Promise<ResolvedTarget> {
  const t = parseTarget(spec);
  // A plain id needs no EC2 at all: the SSM check below also proves it exists.
  const found = t.kind === "id"
    ? { instanceId: t.id }
    : pickRunning(t, await findCandidates(o, t), opts);
  await checkOnline(o, found);
  return found;
}

/**
 * `--spread`: every running instance a name or tag query matches that Systems Manager sees
 * online, ordered by instance id (the first is the tunnel's primary); an id is just itself.
 * Matches not online are left out, said through `note`; none online throws resolveTarget's
 * words for the first of them.
 */
export async function resolveTargets(
  o: AwsOptions,
  spec: string,
  note: (line: string) => void = () => {},
): Promise<ResolvedTarget[]> {
  const t = parseTarget(spec);
  if (t.kind === "id") return [await resolveTarget(o, spec)];
  const candidates = await findCandidates(o, t);
  const running = candidates.filter(isLive)
    .sort((a, b) => a.instanceId.localeCompare(b.instanceId));
  if (running.length <= 1) {
    const one = pickRunning(t, candidates);
    await checkOnline(o, one);
    return [one];
  }
  const { describeInstanceInformation } = await import("./ssm.ts");
  const info = await describeInstanceInformation(o, running.map((c) => c.instanceId));
  const online = new Set(info.filter((i) => i.pingStatus === "Online").map((i) => i.instanceId));
  const picked = running.filter((c) => online.has(c.instanceId)).map(toTarget);
  const left = running.filter((c) => !online.has(c.instanceId));
  if (picked.length === 0) {
    await checkOnline(o, toTarget(running[0]));
    throw new UserError(`no instance matching ${describeSpec(t)} is online`, ExitCode.Target);
  }
  if (left.length > 0) {
    note(`left out (not online in Systems Manager): ${listCandidates(left)}`);
  }
  return picked;
}

function toTarget(c: Candidate): ResolvedTarget {
  return c.name === undefined
    ? { instanceId: c.instanceId }
    : { instanceId: c.instanceId, name: c.name };
}

export interface Candidate {
  instanceId: string;
  name?: string;
  /** EC2 state, or "managed" for a managed instance (which has none). */
  state: string;
  /** A managed instance's SSM PingStatus: Online is its only sign of running. */
  ping?: string;
}

/** Running in EC2, or a managed instance online in Systems Manager. */
export function isLive(c: Candidate): boolean {
  return c.state === "running" || (c.state === "managed" && c.ping === "Online");
}

export function describeCandidate(c: Candidate): string {
  const name = c.name ?? (c.state === "managed" ? "no name" : "no Name tag");
  const state = c.state === "managed" ? `managed, ${c.ping ?? "unknown"}` : c.state;
  return `${c.instanceId} (${name}, ${state})`;
}

function listCandidates(cs: Candidate[]): string {
  return cs.map(describeCandidate).join(", ");
}

/** Picks the one running instance among the matches, or explains why there is none. */
export function pickRunning(
  t: TargetSpec,
  candidates: Candidate[],
  opts: ResolveOptions = {},
): ResolvedTarget {
  const what = describeSpec(t);
  const running = candidates.filter(isLive);
  if (running.length === 1) return toTarget(running[0]);
  if (running.length > 1) {
    throw new UserError(
      `${what} matches ${running.length} running instances: ${listCandidates(running)}; ` +
        "pass one instance id as the target" +
        (opts.spreadHint ? ", or add --spread to put stripes on all of them" : ""),
      ExitCode.Target,
    );
  }
  if (candidates.length > 0) {
    throw new UserError(
      `no running instance matches ${what}; found ${listCandidates(candidates)}`,
      ExitCode.Target,
    );
  }
  throw new UserError(`no instance matches ${what}`, ExitCode.Target);
}

/**
 * Every instance a name or tag query matches: EC2 instances by tag (terminated ones excluded)
 * and managed instances (`mi-…`) by SSM tag filter or name (see findManagedInstances). The two
 * lookups run together; when either fails, the first failure (EC2's) is thrown.
 */
export async function findCandidates(
  o: AwsOptions,
  t: TargetSpec & { kind: "name" | "tag" },
): Promise<Candidate[]> {
  const { describeInstances } = await import("./ec2.ts");
  const { findManagedInstances } = await import("./ssm.ts");
  const tag = t.kind === "name" ? { key: "Name", value: t.name } : t;
  const [ec2, managed] = await Promise.allSettled([
    describeInstances(o, [
      { name: `tag:${tag.key}`, values: [tag.value] },
      // Terminated instances linger in results for an hour and are never candidates.
      { name: "instance-state-name", values: ["pending", "running", "stopping", "stopped"] },
    ]),
    findManagedInstances(
      o,
      t.kind === "name" ? { name: t.name } : { tags: [{ key: t.key, value: t.value }] },
    ),
  ]);
  if (ec2.status === "rejected") throw ec2.reason;
  if (managed.status === "rejected") throw managed.reason;
  return [
    ...ec2.value.map((i): Candidate => ({
      instanceId: i.instanceId,
      ...(i.name !== undefined ? { name: i.name } : {}),
      state: i.state,
    })),
    ...managed.value.map((m): Candidate => {
      const name = m.name ?? m.nameTag;
      return {
        instanceId: m.instanceId,
        ...(name !== undefined ? { name } : {}),
        state: "managed",
        ping: m.pingStatus,
      };
    }),
  ];
}

async function checkOnline(o: AwsOptions, target: ResolvedTarget): Promise<void> {
  const { describeInstanceInformation } = await import("./ssm.ts");
  const id = target.instanceId;
  const label = target.name ? `${id} (${target.name})` : id;
  // The offline message keeps the bare id: scripts and docs match on "instance i-… is not online".
  const [info] = await describeInstanceInformation(o, [id]);
  const fix = isManagedId(id)
    ? "check that amazon-ssm-agent runs on the server and that the IAM service role of its " +
      "hybrid activation has AmazonSSMManagedInstanceCore"
    : "check that the SSM agent runs and the instance role has AmazonSSMManagedInstanceCore";
  if (!info) {
    throw new UserError(
      `instance ${label} is not known to Systems Manager (it does not exist in this region, ` +
        `or its agent never registered): ${fix}`,
      ExitCode.Target,
    );
  }
  if (info.pingStatus !== "Online") {
    throw new UserError(
      `instance ${id} is not online in Systems Manager (PingStatus ${info.pingStatus}): ${fix}`,
      ExitCode.Target,
    );
  }
}
