/**
 * `ssm-proxy __plan`: start's one-shot AWS planning (find the target, discover its VPC), run in
 * a short-lived child so the EC2 and Route 53 clients never load into the tunnel process
 * (plan_wire.ts says why). Only this module and what it imports may use them on start's behalf;
 * the parent's side is plan_remote.ts. main.ts runs it before loading commander: it is on start's
 * critical path.
 */
import type { AwsOptions } from "../aws/config.ts";
import type { ResolvedTarget } from "../aws/targets.ts";
import {
  decodeRequest,
  encodeMessage,
  errorMessage,
  type Located,
  type PlanMessage,
  type PlanRequest,
} from "./plan_wire.ts";

/** The child's whole life: the request from stdin, the messages to stdout, then exit. */
export async function runPlanChild(): Promise<never> {
  const out = new TextEncoder();
  const send = (m: PlanMessage) => writeAll(out.encode(encodeMessage(m)));
  // stdout carries the answer: anything else printed goes where the user sees it.
  console.log = console.error;
  try {
    const req = decodeRequest(await new Response(Deno.stdin.readable).text());
    await runPlan(req, send);
  } catch (e) {
    try {
      send(errorMessage(e));
    } catch { /* the parent is gone (a broken pipe): nobody left to tell */ }
  }
  // The SDK's keep-alive sockets must not hold a process whose answer is given.
  Deno.exit(0);
}

/** The request's steps, each result sent as soon as it is known (connecting waits on `located`). */
export async function runPlan(req: PlanRequest, send: (m: PlanMessage) => void): Promise<void> {
  if (req.kind === "resolver") {
    const { vpcResolver } = await import("../aws/ec2.ts");
    const address = await vpcResolver(req.aws, req.instanceId);
    send({ type: "resolver", ...(address ? { address } : {}) });
    return;
  }
  const progress = (line: string) => send({ type: "progress", line });
  const at = await locate(req, progress);
  send({ type: "located", ...at });
  const want = req.discover;
  if (!want.routes && !want.dns) return send({ type: "discovered" });
  const { discover } = await import("../discover/discover.ts");
  const discovery = await discover(req.aws, {
    instanceId: at.target.instanceId,
    region: at.region,
  }, want);
  send({ type: "discovered", discovery });
}

async function locate(
  req: PlanRequest & { kind: "plan" },
  progress: (line: string) => void,
): Promise<Located> {
  const all = req.spread ? await resolveSpreadTargets(req.aws, req.target, progress) : undefined;
  const target = all?.[0] ?? await resolveStartTarget(req.aws, req.target, req.wake, progress);
  return {
    target,
    ...(all && all.length > 1 ? { spread: all } : {}),
    region: await regionOf(req.aws),
  };
}

export async function resolveStartTarget(
  aws: AwsOptions,
  spec: string,
  wake: boolean,
  progress: (line: string) => void,
): Promise<ResolvedTarget> {
  progress(`resolving ${spec}`);
  if (wake) return await (await import("../aws/wake.ts")).resolveTargetWaking(aws, spec, progress);
  const { resolveTarget } = await import("../aws/targets.ts");
  return await resolveTarget(aws, spec, { spreadHint: true });
}

/**
 * `--spread`: every online instance the target matches, the first being the one planning
 * (VPC, DNS) and the tun's address come from. One match is a tunnel like any other.
 */
export async function resolveSpreadTargets(
  aws: AwsOptions,
  spec: string,
  progress: (line: string) => void,
): Promise<ResolvedTarget[]> {
  progress(`resolving ${spec}, every online instance it matches`);
  const { resolveTargets } = await import("../aws/targets.ts");
  return await resolveTargets(aws, spec, progress);
}

/** The region every call goes to: discovery names its internal domain and asks Route 53. */
async function regionOf(aws: AwsOptions): Promise<string> {
  const { resolvedRegion } = await import("../aws/region.ts");
  const r = await resolvedRegion(aws);
  if (r) return r.region;
  const { missingRegion } = await import("../aws/config.ts");
  throw missingRegion(aws);
}

/** A pipe takes large writes in parts. */
function writeAll(bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += Deno.stdout.writeSync(bytes.subarray(done));
}
