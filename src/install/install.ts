/**
 * `ssm-proxy agent install|status|uninstall`: each a shell session on the instance running a
 * fixed script (scripts.ts), driven by the markers it prints. Install also opens one session per
 * part of the upload (upload.ts), all at once, into the control session's temporary directory.
 */
import type { AwsOptions } from "../aws/config.ts";
import { ExitCode, UserError } from "../errors.ts";
import { DEFAULT_PARALLEL, planParts, sliceParts } from "./parts.ts";
import { archFromUname, gzip, readAgentBinary } from "./payload.ts";
import { RemoteScript } from "./remote.ts";
import { CLEANUP_SCRIPT, INSTALL_SCRIPT, STATUS_SCRIPT, UNINSTALL_SCRIPT } from "./scripts.ts";
import { uploadParts } from "./upload.ts";

export interface Progress {
  /** One line of news. */
  line(text: string): void;
  /** Upload progress; `done` and `total` in bytes of encoded text, over all sessions. */
  upload(done: number, total: number, sessions?: number): void;
  uploadDone(): void;
}

export interface InstallOptions {
  binary?: string;
  /** Upload even when the instance already has this exact binary. */
  force?: boolean;
  /** Sessions the upload is split across (1..16); DEFAULT_PARALLEL when absent. */
  parallel?: number;
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
  /** Sessions the upload went through (parts), and parts sent a second time. */
  parts: number;
  retries: number;
}

/** How long a best-effort cleanup of a dead install may take before we give up on it. */
const CLEANUP_MS = 15_000;

export async function installAgent(
  aws: AwsOptions,
  instanceId: string,
  o: InstallOptions,
  progress: Progress,
): Promise<InstallResult> {
  // A named binary is read and packed while the instance answers (~1.5 s of a 72 MB agent).
  const early = o.binary !== undefined ? Deno.readFile(o.binary) : undefined;
  const earlyGz = early?.then((b) => gzip(b));
  earlyGz?.catch(() => {}); // a bad path is reported by readAgentBinary below
  const remote = await RemoteScript.start(aws, instanceId, INSTALL_SCRIPT, progress.line);
  try {
    const arch = archFromUname(await remote.expect("ARCH"));
    const current = await remote.expect("CURRENT");
    const installed = await remote.expect("VERSION");
    const systemd = (await remote.expect("SYSTEMD")) === "1";
    const dir = await remote.expect("DIR");
    await remote.expect("READY");
    progress.line(
      `${instanceId}: linux ${arch}, ${
        installed !== "-" ? `has ${installed}` : "ssm-proxy-agent not installed"
      }${systemd ? "" : ", no systemd (the agent will not be started)"}`,
    );
    const binary = await readAgentBinary(arch, o.binary, early);
    if (binary.sha256 === current && !o.force) {
      await remote.write("skip\n");
      await remote.expect("SKIPPED");
      return {
        skipped: true,
        version: installed,
        sha256: current,
        uploadedBytes: 0,
        uploadMs: 0,
        parts: 0,
        retries: 0,
      };
    }
    // The count follows the binary's size; the parts are equal slices of its one gzip stream, so
    // every session carries the same number of bytes and none is left finishing alone.
    const plans = planParts(binary.size, o.parallel ?? DEFAULT_PARALLEL);
    const sources = (earlyGz ?? gzip(binary.bytes)).then((gz) =>
      sliceParts(gz, planParts(gz.length, plans.length, 1))
    );
    // Set when the control session fails us (rejects its line, or ends): the parts stop.
    const halt = Promise.withResolvers<never>();
    halt.promise.catch(() => {});
    let uploading = true;
    // The parts' sessions open while the digests are computed and the control gets them.
    const upload = uploadParts(
      {
        aws,
        instanceId,
        dir,
        log: progress.line,
        progress: (done, total) => progress.upload(done, total, plans.length),
        stop: Promise.race([
          halt.promise,
          remote.session.ended.then(async () => {
            if (!uploading) return await new Promise<never>(() => {});
            const m = await remote.next();
            throw new UserError(
              `unexpected answer from ${instanceId} during the upload: ${m.word} ${m.text}`,
              ExitCode.Remote,
            );
          }),
        ]),
      },
      plans,
      sources,
    );
    upload.catch(() => {});
    let up;
    try {
      const parts = await sources;
      await remote.write(
        `${binary.sha256} ${binary.size} ${parts.map((p) => p.sha256).join(" ")}\n`,
      );
      await remote.expect("PARTS");
      up = await upload;
      uploading = false;
    } catch (e) {
      uploading = false;
      halt.reject(e);
      await upload.catch(() => {});
      progress.uploadDone();
      await abandon(aws, instanceId, remote, dir);
      throw nothingInstalled(e);
    }
    progress.uploadDone();
    await remote.write("join\n");
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
      sha256: binary.sha256,
      uploadedBytes: up.encodedBytes,
      uploadMs: up.uploadMs,
      parts: plans.length,
      retries: up.retries,
    };
  } finally {
    await remote.close();
  }
}

/**
 * An upload that failed leaves no part behind: the control session removes its directory on
 * `abort`; if it is gone (AWS ended it; a killed shell runs no trap), a short session of its
 * own does. Best effort: the failure being reported matters more than this.
 */
async function abandon(
  aws: AwsOptions,
  instanceId: string,
  control: RemoteScript,
  dir: string,
): Promise<void> {
  if (!control.ended) {
    try {
      await control.write("abort\n");
      await control.expect("ABORTED");
      return;
    } catch {
      // It died meanwhile: clean up from outside.
    }
  }
  let cleaner: RemoteScript | undefined;
  const timer = new Promise<void>((r) => setTimeout(r, CLEANUP_MS));
  const work = (async () => {
    cleaner = await RemoteScript.start(aws, instanceId, CLEANUP_SCRIPT);
    await cleaner.expect("READY");
    await cleaner.write(`${dir}\n`);
    await cleaner.expect("DONE");
  })().catch(() => {});
  await Promise.race([work, timer]);
  await cleaner?.close().catch(() => {});
}

function nothingInstalled(e: unknown): unknown {
  if (!(e instanceof UserError) || /nothing was installed/.test(e.message)) return e;
  return new UserError(`${e.message}; nothing was installed`, e.exitCode);
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
