/**
 * `ssm-proxy start`: checks the flags (and the saved tunnel they name), then presents the steps
 * of src/start/: the plan with a reason for every route and domain, progress, the live line.
 * `--dry-run` is the plan alone: no root, no changes.
 */
import type { ResolvedTarget } from "../aws/targets.ts";
import { V8_FLAGS } from "../runtime.ts";
import { checkStart, type StartOptions } from "../start/options.ts";
import type { NetworkPlan } from "../start/plan.ts";
import { readState } from "../tunnel/state.ts";
import { logTo, spawnDetached } from "./background.ts";
import { LiveLine } from "./live.ts";
import { exitStopped, Stopped, StopSignals } from "../signals.ts";
import { requireRoot, useInvokingUsersAwsConfig } from "./privileges.ts";

export type { StartOptions } from "../start/options.ts";

const progress = (s: string) => console.error(`ssm-proxy: ${s}`);

export async function runStart(
  opts: Omit<StartOptions, "target"> & { target?: string },
): Promise<void> {
  if (!opts.dryRun) requireRoot("ssm-proxy start");
  const checked = checkStart({ ...opts, target: opts.target ?? "" });
  // Picked before going to the background, which has no terminal to ask on; with the sudo
  // user's AWS config, like everything else start does.
  if (opts.target === undefined) useInvokingUsersAwsConfig();
  const o: StartOptions = {
    ...opts,
    target: opts.target ??
      await (await import("./picker.ts")).pickTarget(
        { profile: opts.profile, region: opts.region },
        opts,
      ),
  };
  if (o.background && !o.dryRun) return await startInBackground(o);

  const logFile = Deno.env.get("SSM_PROXY_LOG");
  if (logFile) logTo(logFile);
  useInvokingUsersAwsConfig();
  const { netPlatform } = await import("../net/platform.ts");
  const net = await netPlatform();
  const steps = await import("../start/start.ts");
  if (o.dryRun) {
    const { listStates } = await import("../tunnel/state.ts");
    const p = await steps.planStart(o, checked, net, await listStates(), progress);
    console.log(formatPlan(p.target, p.plan, {
      name: o.name,
      mode: checked.mode === "auto"
        ? "auto (the agent if it answers, else agentless)"
        : checked.mode,
      resolver: p.plan.resolver,
      dry: true,
    }));
    return;
  }
  // From here on a signal stops start in whatever phase, undoing what it got to (signals.ts).
  const stop = new StopSignals((s) => progress(`${s} again: finishing the undo, then exiting`));
  const running = await steps.runningTunnels(o.name);
  const { up, link } = await steps.bringUpStart(o, checked, net, running, {
    signal: stop.abort,
    progress,
    showPlan: (target, plan, link) =>
      console.error(formatPlan(target, plan, {
        name: o.name,
        mode: link.mode,
        resolver: link.resolver,
        dry: false,
      })),
    offerAgent: async (target, connect) => {
      const { connectOrInstall, terminalAsk } = await import("./agent_offer.ts");
      return await connectOrInstall(connect, {
        aws: { profile: o.profile, region: o.region },
        target,
        install: o.installAgent,
        binary: o.agentBinary,
        progress,
        ask: terminalAsk(),
      });
    },
  }).catch((e) => {
    if (e instanceof Stopped) {
      exitStopped(
        `tunnel "${o.name}" stopped (${e.signal}) before it was up; nothing left changed`,
      );
    }
    throw e;
  });
  const s = up.state;
  console.log(
    `ssm-proxy: tunnel "${o.name}" up: ${s.cidrs.join(", ")} via ${up.tun.name} (${link.address}${
      link.address6 ? `, ${link.address6}` : ""
    }) -> ${s.target.instanceId}, ${link.summary}${
      link.identity ? `; identity: ${link.identity}` : ""
    }`,
  );
  if (link.identity) s.identity = link.identity;
  if (!s.domains?.length && link.resolver) console.log(`ssm-proxy: VPC resolver ${link.resolver}`);
  const { serve } = await import("../start/serve.ts");
  // Bring-up (AWS SDK, discovery) leaves malloc holding freed memory; give it back (issue 13).
  (await import("../runtime.ts")).keepMemoryTrimmed();
  const live = new LiveLine(Deno.stderr.isTerminal());
  await serve(s, link.tunnel, up.tun, up.undo, live, stop.stopped);
  // serve returned: stopped by a signal, all undone. Nothing left running (a backoff timer, a
  // session's keep-alive socket) may hold the process.
  Deno.exit(0);
}

/**
 * The plan as the user reads it: every range and domain with the reason it is there, what was
 * left out and why, and what could not be looked at.
 */
export function formatPlan(
  target: ResolvedTarget,
  plan: NetworkPlan,
  o: { name: string; mode: string; resolver?: string; dry: boolean },
): string {
  const pad = (s: string) => s.padEnd(Math.max(18, s.length + 2));
  const lines: string[] = [];
  const head = o.dry ? "dry run: nothing is changed" : `tunnel "${o.name}"`;
  lines.push(
    `${head}: ${target.instanceId}${target.name ? ` (${target.name})` : ""}${
      plan.vpcId ? ` in ${plan.vpcId}` : ""
    }, mode ${o.mode}`,
  );
  for (const r of plan.routes) lines.push(`  route   ${pad(r.cidr)}${r.reason}`);
  for (const p of plan.pins ?? []) {
    lines.push(`  keep    ${pad(p.cidr)}${p.what}, via ${p.gateway ?? "on-link"} on ${p.ifname}`);
  }
  for (const r of plan.skipped) lines.push(`  skip    ${r.cidr ? pad(r.cidr) : ""}${r.reason}`);
  for (const d of plan.domains) lines.push(`  dns     ${pad(d.domain)}${d.reason}`);
  if (plan.domains.length && o.resolver) lines.push(`          -> VPC resolver ${o.resolver}`);
  if (plan.dnsOff) lines.push(`  dns     off: ${plan.dnsOff}`);
  for (const n of plan.notes) lines.push(`  note    ${n}`);
  return lines.map((l) => `ssm-proxy: ${l}`).join("\n");
}

/** Re-run this command detached, and return once its state file says it is up. */
async function startInBackground(o: StartOptions): Promise<void> {
  const { stateDir } = await import("../tunnel/state.ts");
  await Deno.mkdir(stateDir(), { recursive: true });
  const log = `${stateDir()}/${o.name}.log`;
  const args = Deno.args.filter((a) => a !== "-d" && a !== "--background");
  if (!Deno.args.some((a) => a === "-t" || a.startsWith("--target"))) {
    args.push("--target", o.target);
  }
  const self = Deno.mainModule.startsWith("file:") && !Deno.execPath().endsWith("/ssm-proxy")
    ? ["run", "-A", `--v8-flags=${V8_FLAGS}`, new URL(Deno.mainModule).pathname]
    : [];
  const { pid, state: s } = await spawnDetached({
    command: Deno.execPath(),
    args: [...self, ...args],
    env: { SSM_PROXY_LOG: log },
    log,
    what: `tunnel "${o.name}"`,
    ready: async (pid) => {
      const s = await readState(o.name);
      return s && s.pid === pid && s.status === "up" ? s : undefined;
    },
  });
  console.log(
    `ssm-proxy: tunnel "${o.name}" up in the background (pid ${pid}): ${
      s.cidrs.join(", ")
    } via ${s.interface}; log ${log}`,
  );
}
