/**
 * `ssm-proxy agent install|status|uninstall`: each one shell session on the instance running
 * a fixed script (scripts.ts), driven by the markers it prints.
 */
import type { AwsOptions } from "../aws/config.ts";
import { archFromUname, base64Chunks, encodedLength, loadPayload } from "./payload.ts";
import { RemoteScript } from "./remote.ts";
import { INSTALL_SCRIPT, STATUS_SCRIPT, UNINSTALL_SCRIPT } from "./scripts.ts";

export interface Progress {
  /** One line of news. */
  line(text: string): void;
  /** Upload progress; `done` and `total` in bytes of encoded text. */
  upload(done: number, total: number): void;
  uploadDone(): void;
}

export interface InstallOptions {
  binary?: string;
  /** Upload even when the instance already has this exact binary. */
  force?: boolean;
}

export interface InstallResult {
  skipped: boolean;
  /** `ssm-proxy-agent X.Y.Z` as the installed binary says it. */
  version: string;
  /** systemctl is-active after the restart; undefined without systemd. */
  active?: string;
  sha256: string;
  uploadedBytes: number;
  uploadMs: number;
}

export async function installAgent(
  aws: AwsOptions,
  instanceId: string,
  o: InstallOptions,
  progress: Progress,
): Promise<InstallResult> {
  const remote = await RemoteScript.start(aws, instanceId, INSTALL_SCRIPT, progress.line);
  try {
    const arch = archFromUname(await remote.expect("ARCH"));
    const current = await remote.expect("CURRENT");
    const installed = await remote.expect("VERSION");
    const systemd = (await remote.expect("SYSTEMD")) === "1";
    await remote.expect("READY");
    progress.line(
      `${instanceId}: linux ${arch}, ${
        installed !== "-" ? `has ${installed}` : "ssm-proxy-agent not installed"
      }${systemd ? "" : ", no systemd (the agent will not be started)"}`,
    );
    const payload = await loadPayload(arch, o.binary);
    if (payload.sha256 === current && !o.force) {
      await remote.write("skip\n");
      await remote.expect("SKIPPED");
      return {
        skipped: true,
        version: installed,
        sha256: current,
        uploadedBytes: 0,
        uploadMs: 0,
      };
    }
    await remote.write(`${payload.sha256} ${payload.size}\n`);
    await remote.expect("SEND");
    const total = encodedLength(payload.gzip.length);
    const t0 = performance.now();
    const stats = remote.session.channel.stats;
    const base = stats.bytesOut;
    const ticker = setInterval(
      () => progress.upload(acked(remote, base), total),
      250,
    );
    try {
      for (const chunk of base64Chunks(payload.gzip)) await remote.write(chunk);
      await remote.session.drained();
    } finally {
      clearInterval(ticker);
    }
    progress.upload(total, total);
    progress.uploadDone();
    const uploadMs = performance.now() - t0;
    const version = await remote.expect("INSTALLED");
    let active: string | undefined;
    for (;;) {
      const m = await remote.next();
      if (m.word === "DONE") break;
      if (m.word === "ACTIVE") active = m.text;
    }
    return {
      skipped: false,
      version,
      active,
      sha256: payload.sha256,
      uploadedBytes: total,
      uploadMs,
    };
  } finally {
    await remote.close();
  }
}

function acked(remote: RemoteScript, base: number): number {
  const c = remote.session.channel;
  return Math.max(0, c.stats.bytesOut - c.unackedBytes - base);
}

export interface AgentStatus {
  instanceId: string;
  installed: boolean;
  /** `ssm-proxy-agent X.Y.Z`, or null when not installed. */
  version: string | null;
  /** systemctl is-active / is-enabled; null without systemd. */
  active: string | null;
  enabled: string | null;
  /** The running agent's own status document (`ssm-proxy-agent status --json`), if any. */
  agent: Record<string, unknown> | null;
}

export async function agentStatus(aws: AwsOptions, instanceId: string): Promise<AgentStatus> {
  const remote = await RemoteScript.start(aws, instanceId, STATUS_SCRIPT);
  try {
    const m = await remote.collect();
    const one = (w: string) => m.get(w)?.[0] ?? null;
    const version = one("VERSION");
    let agent: Record<string, unknown> | null = null;
    const st = one("STATUS");
    if (st && st !== "-") {
      try {
        agent = JSON.parse(st);
      } catch {
        agent = null;
      }
    }
    return {
      instanceId,
      installed: version !== null && version !== "-",
      version: version === "-" ? null : version,
      active: one("ACTIVE"),
      enabled: one("ENABLED"),
      agent,
    };
  } finally {
    await remote.close();
  }
}

export interface UninstallResult {
  /** Nothing was installed. */
  absent: boolean;
  removed: string[];
  kept: string[];
  warnings: string[];
}

export async function uninstallAgent(
  aws: AwsOptions,
  instanceId: string,
): Promise<UninstallResult> {
  const remote = await RemoteScript.start(aws, instanceId, UNINSTALL_SCRIPT);
  try {
    const m = await remote.collect();
    return {
      absent: m.has("ABSENT"),
      removed: m.get("REMOVED") ?? [],
      kept: m.get("KEPT") ?? [],
      warnings: m.get("WARN") ?? [],
    };
  } finally {
    await remote.close();
  }
}
