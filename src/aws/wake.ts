/**
 * `--wake`: start a stopped EC2 instance and wait until Systems Manager sees it online, so a
 * session can follow. `resolveTargetWaking` is the `resolveTarget` of targets.ts for commands
 * given `--wake`: it accepts a stopped (or stopping, or pending) target and wakes it first.
 */

import { ExitCode, UserError } from "../errors.ts";
import type { AwsOptions } from "./config.ts";
import {
  describeSpec,
  isLive,
  isManagedId,
  parseTarget,
  pickRunning,
  type ResolvedTarget,
} from "./targets.ts";

export interface WakeOptions {
  /** How long the instance may take to reach `running` (default 5 min). */
  runningTimeoutMs?: number;
  /** How long its SSM agent may then take to be `Online` (default 5 min). */
  onlineTimeoutMs?: number;
  /** Poll interval (default 3 s). */
  pollMs?: number;
}

export interface WakeResult {
  instanceId: string;
  /** The EC2 state found first, e.g. "stopped". */
  previousState: string;
  /** True when this call started the instance (StartInstances). */
  started: boolean;
}

type Progress = (line: string) => void;

const DEFAULTS: Required<WakeOptions> = {
  runningTimeoutMs: 5 * 60_000,
  onlineTimeoutMs: 5 * 60_000,
  pollMs: 3_000,
};

const SSM_FIX = "check that amazon-ssm-agent runs on it and that its instance role has " +
  "AmazonSSMManagedInstanceCore";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}

/** The EC2 state of one instance, or undefined when EC2 does not know it. */
async function ec2State(o: AwsOptions, instanceId: string): Promise<string | undefined> {
  const { describeInstances } = await import("./ec2.ts");
  // A filter, not InstanceIds: an unknown id then gives an empty list, not an error.
  const [i] = await describeInstances(o, [{ name: "instance-id", values: [instanceId] }]);
  return i?.state;
}

async function pingStatus(o: AwsOptions, instanceId: string): Promise<string> {
  const { describeInstanceInformation } = await import("./ssm.ts");
  const [info] = await describeInstanceInformation(o, [instanceId]);
  return info?.pingStatus ?? "not registered";
}

/**
 * Makes sure `instanceId` runs and is online in Systems Manager: starts it if stopped (waiting
 * for a stopping one to stop first), then polls EC2 until `running` and SSM until `Online`.
 * Progress lines go to `progress`; a timeout or an instance that cannot be started is one
 * UserError line.
 */
export async function wakeInstance(
  o: AwsOptions,
  instanceId: string,
  progress: Progress = () => {},
  opts: WakeOptions = {},
): Promise<WakeResult> {
  const { runningTimeoutMs, onlineTimeoutMs, pollMs } = { ...DEFAULTS, ...opts };
  if (isManagedId(instanceId)) throw cannotWake(instanceId);
  const first = await ec2State(o, instanceId);
  if (first === undefined) {
    throw new UserError(
      `instance ${instanceId} does not exist in EC2 in this region, so it cannot be woken`,
      ExitCode.Target,
    );
  }
  let state = first;
  let started = false;
  const runningBy = Date.now() + runningTimeoutMs;
  let reported = "";
  while (state !== "running") {
    if (state === "shutting-down" || state === "terminated") {
      throw new UserError(
        `instance ${instanceId} is ${state} and cannot be started again`,
        ExitCode.Target,
      );
    }
    if (state === "stopped" && !started) {
      const { startInstance } = await import("./ec2.ts");
      const s = await startInstance(o, instanceId);
      started = true;
      state = s.current;
      progress(`starting ${instanceId} (${s.previous} → ${s.current})`);
      continue;
    }
    if (Date.now() >= runningBy) {
      throw new UserError(
        `instance ${instanceId} did not reach "running" within ${seconds(runningTimeoutMs)} ` +
          `(still ${state}): check it in the EC2 console (capacity, EBS or KMS errors)`,
        ExitCode.Target,
      );
    }
    if (state !== reported) {
      progress(
        state === "stopping"
          ? `waiting for ${instanceId} to finish stopping before starting it`
          : `waiting for ${instanceId} to run (${state})`,
      );
      reported = state;
    }
    await sleep(pollMs);
    state = (await ec2State(o, instanceId)) ?? "terminated";
  }

  const onlineBy = Date.now() + onlineTimeoutMs;
  let ping = await pingStatus(o, instanceId);
  reported = "";
  while (ping !== "Online") {
    if (Date.now() >= onlineBy) {
      throw new UserError(
        `instance ${instanceId} runs but did not come online in Systems Manager within ` +
          `${seconds(onlineTimeoutMs)} (PingStatus ${ping}): ${SSM_FIX}`,
        ExitCode.Target,
      );
    }
    if (ping !== reported) {
      progress(`waiting for Systems Manager (${ping})`);
      reported = ping;
    }
    await sleep(pollMs);
    ping = await pingStatus(o, instanceId);
  }
  if (started || first !== "running" || reported !== "") progress(`${instanceId} is online`);
  return { instanceId, previousState: first, started };
}

/** `--wake` asked of a hybrid managed instance, which no AWS API can start. */
function cannotWake(instanceId: string): UserError {
  return new UserError(
    `${instanceId} is a managed (non-EC2) instance that AWS cannot start: --wake only starts ` +
      "EC2 instances; drop --wake for this target",
    ExitCode.Usage,
  );
}

/**
 * `resolveTarget` for `--wake`: the same target forms and messages, but a target that is not
 * running is started (wakeInstance) instead of refused. Among several matches a running one
 * still wins; several stopped ones are ambiguous. Ends with resolveTarget's online check.
 */
export async function resolveTargetWaking(
  o: AwsOptions,
  spec: string,
  progress: Progress = () => {},
  opts: WakeOptions = {},
): Promise<ResolvedTarget> {
  const { findCandidates, resolveTarget } = await import("./targets.ts");
  const t = parseTarget(spec);
  if (t.kind === "id") {
    await wakeInstance(o, t.id, progress, opts);
    return await resolveTarget(o, t.id);
  }
  const candidates = await findCandidates(o, t);
  let picked: ResolvedTarget;
  if (candidates.some(isLive) || candidates.length !== 1) {
    if (candidates.length > 1 && !candidates.some(isLive)) {
      throw new UserError(
        `${describeSpec(t)} matches ${candidates.length} instances, none running: ` +
          `${
            candidates.map((c) =>
              `${c.instanceId} (${c.state === "managed" ? `managed, ${c.ping}` : c.state})`
            ).join(", ")
          }; pass one instance id as the target to wake it`,
        ExitCode.Target,
      );
    }
    picked = pickRunning(t, candidates);
  } else {
    const c = candidates[0];
    picked = c.name === undefined ? { instanceId: c.instanceId } : {
      instanceId: c.instanceId,
      name: c.name,
    };
  }
  await wakeInstance(o, picked.instanceId, progress, opts);
  await resolveTarget(o, picked.instanceId);
  return picked;
}
