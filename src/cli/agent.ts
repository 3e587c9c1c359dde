/**
 * `ssm-proxy agent install|status|uninstall --target T`: manage ssm-proxy-agent on an
 * instance over Session Manager alone (no SSH, no file copying by hand). No root needed here.
 */
import type { AwsOptions } from "../aws/config.ts";
import type { ResolvedTarget } from "../aws/targets.ts";
import type { Progress } from "../install/install.ts";
import { ExitCode, UserError } from "../errors.ts";
import { fmtBytes, fmtDuration } from "../format.ts";

export interface AgentCliOptions extends AwsOptions {
  target: string;
  wake?: boolean;
}

export interface InstallCliOptions extends AgentCliOptions {
  binary?: string;
  force?: boolean;
  /** `--parallel N` as typed; parts.ts parses it. */
  parallel?: string | number;
}

const say = (line: string) => console.error(`ssm-proxy: ${line}`);

async function resolve(o: AgentCliOptions): Promise<ResolvedTarget> {
  const aws: AwsOptions = { profile: o.profile, region: o.region };
  if (o.wake) return (await import("../aws/wake.ts")).resolveTargetWaking(aws, o.target, say);
  return (await import("../aws/targets.ts")).resolveTarget(aws, o.target);
}

const label = (t: ResolvedTarget) => (t.name ? `${t.instanceId} (${t.name})` : t.instanceId);

/** Install (or confirm) the agent on a resolved target; shared with `start --install-agent`. */
export async function installOnTarget(
  aws: AwsOptions,
  target: ResolvedTarget,
  o: { binary?: string; force?: boolean; parallel?: number },
): Promise<void> {
  const { installAgent } = await import("../install/install.ts");
  const r = await installAgent(aws, target.instanceId, o, progressBar());
  if (r.skipped) {
    say(
      `${
        label(target)
      } already runs this ${r.version} (same SHA-256); nothing to do (--force reinstalls)`,
    );
    return;
  }
  const rate = r.uploadedBytes / Math.max(0.001, r.uploadMs / 1000);
  say(
    `verified SHA-256 on the instance and installed ${r.version} at /usr/local/bin/ssm-proxy-agent (${
      fmtBytes(r.uploadedBytes)
    } in ${fmtDuration(r.uploadMs)} over ${r.parts} session${r.parts === 1 ? "" : "s"}, ${
      fmtBytes(rate)
    }/s${r.retries ? `, ${r.retries} part${r.retries === 1 ? "" : "s"} sent twice` : ""})`,
  );
  if (r.active === undefined) {
    say("the instance has no systemd: start it yourself with `ssm-proxy-agent serve`");
  } else if (r.active !== "active") {
    throw new UserError(
      `ssm-proxy-agent.service is ${r.active} after the restart: see journalctl -u ssm-proxy-agent on the instance`,
      ExitCode.Remote,
    );
  } else say("ssm-proxy-agent.service is enabled and running");
}

export async function runAgentInstall(o: InstallCliOptions): Promise<void> {
  const { parseParallel } = await import("../install/parts.ts");
  const parallel = parseParallel(o.parallel);
  const target = await resolve(o);
  await installOnTarget({ profile: o.profile, region: o.region }, target, {
    binary: o.binary,
    force: o.force,
    parallel,
  });
}

export async function runAgentStatus(o: AgentCliOptions & { json?: boolean }): Promise<void> {
  const target = await resolve(o);
  const { agentStatus } = await import("../install/install.ts");
  const s = await agentStatus({ profile: o.profile, region: o.region }, target.instanceId);
  if (o.json) {
    console.log(JSON.stringify(s, null, 2));
    return;
  }
  if (!s.installed) {
    console.log(`${label(target)}: ssm-proxy-agent is not installed`);
    return;
  }
  const unit = s.active === null ? "no systemd" : `service ${s.active}, ${s.enabled}`;
  console.log(`${label(target)}: ${s.version}, ${unit}`);
  const a = s.agent as
    | { running?: boolean; tunnels?: { count?: number } | unknown[]; startedAt?: string }
    | null;
  if (a) {
    const n = Array.isArray(a.tunnels) ? a.tunnels.length : a.tunnels?.count;
    console.log(
      `  ${a.running === false ? "not serving" : "serving"}${
        n !== undefined ? `, ${n} tunnel${n === 1 ? "" : "s"}` : ""
      }${a.startedAt ? ` since ${a.startedAt}` : ""}`,
    );
  }
}

export async function runAgentUninstall(o: AgentCliOptions): Promise<void> {
  const target = await resolve(o);
  const { uninstallAgent } = await import("../install/install.ts");
  const r = await uninstallAgent({ profile: o.profile, region: o.region }, target.instanceId);
  if (r.absent) {
    say(`ssm-proxy-agent is not installed on ${label(target)}; nothing to remove`);
    return;
  }
  for (const line of r.removed) say(`removed ${line}`);
  for (const line of r.kept) say(`kept ${line}`);
  for (const line of r.warnings) say(`warning: ${line}`);
  say(`ssm-proxy-agent uninstalled from ${label(target)}`);
}

/** A one-line bar redrawn in place on a terminal; quarter-way lines otherwise (logs, CI). */
export function progressBar(
  out: { isTerminal(): boolean; writeSync(b: Uint8Array): number } = Deno.stderr,
): Progress {
  const tty = out.isTerminal();
  const enc = new TextEncoder();
  const created = performance.now();
  // The rate counts from the first report (the first bytes sent), not from before the sessions
  // opened; an upload done before any report counts from the bar's creation.
  let start: { at: number; done: number } | undefined;
  let lastQuarter = -1;
  return {
    line: say,
    upload(done, total, sessions) {
      start ??= done < total ? { at: performance.now(), done } : { at: created, done: 0 };
      const frac = total > 0 ? Math.min(1, done / total) : 1;
      const secs = (performance.now() - start.at) / 1000;
      const rate = secs > 0 ? (done - start.done) / secs : 0;
      const eta = rate > 0 ? (total - done) / rate * 1000 : 0;
      const over = sessions && sessions > 1 ? ` over ${sessions} sessions` : "";
      // No rate from the first instant of the upload: it would read 0 B/s.
      const speed = secs >= 0.2 ? `, ${fmtBytes(rate)}/s` : "";
      const text = `uploading ${Math.round(frac * 100)}% ${fmtBytes(done)} of ${
        fmtBytes(total)
      }${over}${speed}${frac < 1 && rate > 0 ? `, ${fmtDuration(eta)} left` : ""}`;
      if (tty) {
        const width = 24;
        const fill = Math.round(frac * width);
        const bar = `[${"#".repeat(fill)}${"-".repeat(width - fill)}]`;
        out.writeSync(enc.encode(`\r\x1b[2Kssm-proxy: ${bar} ${text}`));
      } else {
        const q = Math.floor(frac * 4);
        if (q > lastQuarter) {
          lastQuarter = q;
          say(text);
        }
      }
    },
    uploadDone() {
      if (tty) out.writeSync(enc.encode("\n"));
    },
  };
}
