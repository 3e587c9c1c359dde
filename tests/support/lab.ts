/**
 * Helpers for the network-namespace end-to-end tests: when to skip, one lab with the emulator and
 * the agent per test file, and "nothing left behind" checks.
 */
import assert from "node:assert/strict";
import { createLab, type Lab, type LabProcess, type Role } from "../../scripts/lab.ts";
import { footprint, startAgent, startEmulator, stateFiles } from "../../scripts/lab/stack.ts";

/** Why the lab cannot run here, or undefined. Only these two reasons skip; anything else fails. */
export function labSkipReason(): string | undefined {
  if (Deno.build.os !== "linux") return "network namespaces are Linux-only";
  if (Deno.uid() !== 0) return "not root";
  try {
    Deno.statSync("/dev/net/tun");
  } catch {
    return "/dev/net/tun is missing";
  }
  return undefined;
}

const skip = labSkipReason();
let warned = false;

/**
 * A Deno.test that is ignored, with a line saying why, when the lab cannot run. Sanitizers are
 * off: child processes and signal listeners outlive individual steps by design.
 */
export function e2eTest(name: string, fn: (t: Deno.TestContext) => Promise<void>): void {
  if (skip && !warned) {
    warned = true;
    console.warn(`e2e: SKIPPED (${skip}): the network-namespace tests need root and /dev/net/tun`);
  }
  Deno.test({ name, ignore: skip !== undefined, sanitizeOps: false, sanitizeResources: false, fn });
}

export interface Stack {
  lab: Lab;
  emulator: LabProcess;
  /** Absent when the stack was built with `agent: false`. */
  agent: LabProcess;
}

/** A lab with the emulator and agent running; torn down (printing their logs on failure) after. */
export async function withStack(
  o: {
    laptops?: number;
    /** Extra agent.yaml lines; a function when they depend on the lab's addresses. */
    agentConfig?: string | ((lab: Lab) => string);
    /** More of the agent's environment (startAgent's `env`). */
    agentEnv?: (lab: Lab) => Record<string, string>;
    fixtures?: (lab: Lab) => Promise<string>;
    /** false: nothing installed on the instance (agentless mode). */
    agent?: boolean;
    /** Pace sessions at 1 KiB/ms like the real SSM agent. */
    pacing?: boolean;
  },
  fn: (s: Stack) => Promise<void>,
): Promise<void> {
  const lab = await createLab({ laptops: o.laptops ?? 1, handleSignals: false });
  let ok = false;
  let s: Partial<Stack> = { lab };
  try {
    const emulator = await startEmulator(lab, {
      fixtures: await o.fixtures?.(lab),
      pacing: o.pacing,
    });
    s = { lab, emulator };
    if (o.agent !== false) {
      const extra = typeof o.agentConfig === "function" ? o.agentConfig(lab) : o.agentConfig;
      const agent = await startAgent(lab, extra, "instance", o.agentEnv?.(lab));
      s = { lab, emulator, agent };
    }
    await fn(s as Stack);
    ok = true;
  } finally {
    if (!ok) {
      for (const [what, p] of [["agent", s.agent], ["emulator", s.emulator]] as const) {
        if (p) console.error(`--- ${what} (last lines)\n${p.tail(25)}`);
      }
    }
    await lab.destroy();
  }
}

/** The laptop is as the lab built it: no tun, only the veth's route, no state files. */
export async function assertLaptopClean(lab: Lab, role: Role = "laptop"): Promise<void> {
  const fp = await footprint(lab, role);
  assert.deepEqual(fp.links, ["lab0", "lo"], `interfaces left in ${role}`);
  const laptop = lab.laptops.find((l) => l.role === role)!;
  const extra = fp.routes.filter((r) =>
    !r.startsWith(laptop.network) && !r.startsWith(`${lab.instanceAddress} via`) &&
    // The internet lab's own "home router" route (scripts/lab/internet.ts).
    !(lab.internet && r.trim() === `default via ${laptop.gateway} dev lab0`)
  );
  assert.deepEqual(extra, [], `routes left in ${role}`);
  assert.deepEqual(fp.nft, "", `nft rules left in ${role}`);
  assert.deepEqual(await stateFiles(lab, role), [], `state files left for ${role}`);
  assert.equal(
    await resolvConf(lab, role),
    LAB_RESOLV_CONF(lab.ns(role)),
    `resolv.conf of ${role}`,
  );
}

/** What scripts/lab.ts writes as each namespace's resolv.conf (`ip netns exec` mounts it). */
export const LAB_RESOLV_CONF = (ns: string) =>
  `# ${ns}: the lab's own resolv.conf\nnameserver 192.0.2.53\n`;

/** The resolv.conf processes in `role` see as /etc/resolv.conf. */
export async function resolvConf(lab: Lab, role: Role): Promise<string> {
  return await Deno.readTextFile(`/etc/netns/${lab.ns(role)}/resolv.conf`);
}

/** A failing command's stderr ends in one `ssm-proxy: …` line matching `re`, with no stack. */
export function assertErrorLine(
  r: { code: number; stderr: string; stdout: string },
  re: RegExp,
): string {
  assert(r.code !== 0, `expected failure, got exit 0:\n${r.stdout}${r.stderr}`);
  const lines = r.stderr.trim().split("\n");
  const last = lines[lines.length - 1];
  assert(!/internal error|^\s+at /m.test(r.stderr), `stack trace in stderr:\n${r.stderr}`);
  assert(/^ssm-proxy: /.test(last), `last stderr line is not an ssm-proxy: line:\n${r.stderr}`);
  assert(re.test(last), `error line ${JSON.stringify(last)} does not match ${re}`);
  return last;
}

/**
 * The agent's counters, if it prints them (e.g. `spoofed=3` or `"spoofed": 3`) — it does on
 * stop when supported. Undefined when no counter line was found.
 */
export function agentCounter(output: string, name: string): number | undefined {
  const all = [...output.matchAll(new RegExp(`["']?\\b${name}["']?\\s*[=:]\\s*(\\d+)`, "g"))];
  return all.length ? Number(all[all.length - 1][1]) : undefined;
}
