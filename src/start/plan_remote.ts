/**
 * start's side of the planning child (plan_child.ts): run `ssm-proxy __plan` (this same program),
 * hand it the request, and turn its messages back into promises and progress lines. A failure
 * there is the same one line and exit code here; a stop signal kills it.
 */
import type { AwsOptions } from "../aws/config.ts";
import type { Discovery } from "../discover/discover.ts";
import {
  decodeMessage,
  encodeRequest,
  errorFrom,
  type Located,
  type PlanMessage,
  type PlanRequest,
} from "./plan_wire.ts";

export interface PlanChild {
  /** The target(s) and region: connecting can start. */
  located: Promise<Located>;
  /** Then what discovery found (undefined when nothing was to be discovered). */
  discovered: Promise<Discovery | undefined>;
  /** The child is gone (answered, failed or killed). Never rejects. */
  exited: Promise<void>;
}

/**
 * This program again, as `__plan`: the compiled binary is itself; from source it is deno running
 * this repository's main.ts (found from this module, so tests run it too). No V8 flags from
 * source: they trade speed for a small heap, which a process of a second does not need.
 */
export function planCommand(execPath = Deno.execPath()): { command: string; args: string[] } {
  if (!/[\/\\]deno(\.exe)?$/.test(execPath)) return { command: execPath, args: ["__plan"] };
  const path = (p: string) => new URL(p, import.meta.url).pathname;
  return {
    command: execPath,
    args: ["run", "-A", "--config", path("../../deno.json"), path("../../main.ts"), "__plan"],
  };
}

/** Resolves the target and discovers, in the child; the two results arrive as they are known. */
export function planInChild(
  req: PlanRequest & { kind: "plan" },
  o: { progress: (line: string) => void; signal?: AbortSignal },
): PlanChild {
  const located = Promise.withResolvers<Located>();
  const discovered = Promise.withResolvers<Discovery | undefined>();
  // Awaited by the caller, or not when an earlier step failed: never an unhandled rejection.
  located.promise.catch(() => {});
  discovered.promise.catch(() => {});
  let stage: "locating" | "discovering" | "done" = "locating";
  const fail = (e: unknown) => {
    if (stage === "locating") located.reject(e);
    if (stage !== "done") discovered.reject(e);
    stage = "done";
  };
  const exited = converse(req, (m) => {
    if (m.type === "progress") o.progress(m.line);
    else if (m.type === "located" && stage === "locating") {
      const { type: _, ...at } = m;
      located.resolve(at);
      stage = "discovering";
    } else if (m.type === "discovered" && stage === "discovering") {
      discovered.resolve(m.discovery);
      stage = "done";
    } else if (m.type === "error") fail(errorFrom(m));
  }, o.signal).then((code) => fail(unanswered(code)), fail);
  return { located: located.promise, discovered: discovered.promise, exited };
}

/** The VPC resolver (base + 2) of an instance's VPC, asked through the child. */
export async function vpcResolverInChild(
  aws: AwsOptions,
  instanceId: string,
  signal?: AbortSignal,
): Promise<string | undefined> {
  let answer: { address?: string } | undefined;
  let error: Error | undefined;
  const code = await converse({ kind: "resolver", aws, instanceId }, (m) => {
    if (m.type === "resolver") answer = m;
    else if (m.type === "error") error = errorFrom(m);
  }, signal);
  if (error) throw error;
  if (!answer) throw unanswered(code);
  return answer.address;
}

/**
 * One child from spawn to exit: the request in, every message to `onMessage` as its line comes.
 * Returns the exit code; rejects with the signal's reason when aborted (the child is killed).
 */
async function converse(
  req: PlanRequest,
  onMessage: (m: PlanMessage) => void,
  signal?: AbortSignal,
): Promise<number> {
  signal?.throwIfAborted();
  const cmd = planCommand();
  const child = new Deno.Command(cmd.command, {
    args: cmd.args,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const kill = () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
  };
  signal?.addEventListener("abort", kill, { once: true });
  try {
    const w = child.stdin.getWriter();
    // A child that dies before reading says why through its exit, below.
    await w.write(new TextEncoder().encode(encodeRequest(req))).catch(() => {});
    await w.close().catch(() => {});
    try {
      for await (const line of lines(child.stdout)) onMessage(decodeMessage(line));
    } catch (e) {
      kill();
      throw e;
    } finally {
      await child.status;
    }
    signal?.throwIfAborted();
    return (await child.status).code;
  } finally {
    signal?.removeEventListener("abort", kill);
  }
}

function unanswered(code: number): Error {
  return new Error(`the planning process (ssm-proxy __plan) exited with code ${code} unanswered`);
}

async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop() ?? "";
    for (const p of parts) if (p.trim() !== "") yield p;
  }
  if (rest.trim() !== "") yield rest;
}
