/**
 * The parts of an install's upload, each through its own shell session running PART_SCRIPT, all
 * at once. A part that fails (its session ends, it arrives corrupted) is tried once more in a
 * fresh session; a second failure, or the control session ending, stops every other part and
 * fails the whole upload. Progress is the bytes acknowledged over all sessions.
 */
import type { AwsOptions } from "../aws/config.ts";
import { ExitCode, UserError } from "../errors.ts";
import type { PartPlan, PartSource } from "./parts.ts";
import { base64Chunks, encodedLength } from "./payload.ts";
import { RemoteScript } from "./remote.ts";
import { PART_SCRIPT } from "./scripts.ts";

export interface UploadTarget {
  aws: AwsOptions;
  instanceId: string;
  /** The control session's temporary directory, as it printed it. */
  dir: string;
  log(line: string): void;
  /** Called every 250 ms with encoded bytes acknowledged and in all. */
  progress(done: number, total: number): void;
  /** Rejects when the upload must stop (the control session ended). */
  stop: Promise<never>;
}

export interface UploadOutcome {
  /** Encoded bytes the parts took (the last attempt of each). */
  encodedBytes: number;
  /** From the first part's first byte to the last part's confirmation. */
  uploadMs: number;
  retries: number;
}

interface Live {
  remote: RemoteScript;
  acked(): number;
}

/**
 * Opens the parts' sessions at once; `sources` (the slices of the gzip'd binary and their digests)
 * may still be being computed meanwhile.
 */
export async function uploadParts(
  t: UploadTarget,
  parts: PartPlan[],
  sources: Promise<PartSource[]>,
): Promise<UploadOutcome> {
  const count = parts.length;
  const source = (p: PartPlan) => sources.then((s) => s[p.index - 1]);
  // Slices of the binary's gzip stream, kept for a retry.
  const packed = parts.map((p) => source(p).then((s) => s.bytes));
  const sizes = new Array<number | undefined>(count);
  packed.forEach((g, i) => g.then((b) => (sizes[i] = encodedLength(b.length)), () => {}));
  const live = new Map<number, Live>();
  const done = new Array<number>(count).fill(0);
  let stopped: unknown;
  let firstByte: number | undefined;
  let retries = 0;

  const attempt = async (p: PartPlan): Promise<void> => {
    const remote = await RemoteScript.start(t.aws, t.instanceId, PART_SCRIPT, t.log);
    try {
      if (stopped !== undefined) throw stopped;
      live.set(p.index, { remote, acked: () => 0 });
      await remote.expect("READY");
      const { sha256 } = await source(p);
      await remote.write(`${t.dir} ${p.index} ${count} ${sha256}\n`);
      await remote.expect("SEND");
      const gz = await packed[p.index - 1];
      const c = remote.session.channel;
      const base = c.stats.bytesOut;
      live.set(p.index, {
        remote,
        acked: () => Math.max(0, c.stats.bytesOut - c.unackedBytes - base),
      });
      firstByte ??= performance.now();
      for (const chunk of base64Chunks(gz)) await remote.write(chunk);
      await remote.session.drained();
      await remote.expect("PART");
      done[p.index - 1] = encodedLength(gz.length);
    } finally {
      live.delete(p.index);
      await remote.close().catch(() => {});
    }
  };

  const withRetry = async (p: PartPlan): Promise<void> => {
    try {
      return await attempt(p);
    } catch (e) {
      if (stopped !== undefined) throw stopped;
      retries++;
      t.log(`part ${p.index} of ${count} failed (${messageOf(e)}); trying it again`);
    }
    try {
      await attempt(p);
    } catch (e) {
      if (stopped !== undefined) throw stopped;
      throw partFailed(e, p.index, count);
    }
  };

  const stopAll = (why: unknown) => {
    if (stopped !== undefined) return;
    stopped = why;
    for (const l of live.values()) l.remote.close().catch(() => {});
  };

  const ticker = setInterval(() => {
    if (firstByte === undefined || sizes.some((s) => s === undefined)) return;
    const total = sizes.reduce((a: number, b) => a + (b ?? 0), 0);
    let sum = done.reduce((a, b) => a + b, 0);
    for (const l of live.values()) sum += l.acked();
    t.progress(Math.min(sum, total), total);
  }, 250);
  const all = Promise.all(parts.map((p) =>
    withRetry(p).catch((e) => {
      stopAll(e);
      throw e;
    })
  ));
  // A rejection of `all` after a stop is already reported through `stopped`.
  all.catch(() => {});
  try {
    await Promise.race([
      all,
      t.stop.catch((e) => {
        stopAll(e);
        throw e;
      }),
    ]);
  } finally {
    clearInterval(ticker);
    // No session of ours may outlive the upload, whatever ended it.
    await Promise.allSettled([all]);
  }
  const encodedBytes = done.reduce((a, b) => a + b, 0);
  t.progress(encodedBytes, encodedBytes);
  return {
    encodedBytes,
    uploadMs: firstByte === undefined ? 0 : performance.now() - firstByte,
    retries,
  };
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** One line: what went wrong with the part the second time, and which part it was. */
export function partFailed(e: unknown, index: number, count: number): UserError {
  const said = messageOf(e);
  const which = /\bpart \d+ of \d+\b/.test(said) ? "it" : `part ${index} of ${count}`;
  return new UserError(
    `${said}; ${which} failed again when retried`,
    e instanceof UserError ? e.exitCode : ExitCode.Remote,
  );
}
