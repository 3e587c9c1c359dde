/**
 * Putting the original resolv.conf back when the process that replaced it is gone: from the
 * backup in the state dir (kill -9: the next command), or, when a reboot cleared the state dir,
 * from the copy our file carries inside it. A file whose owner still runs, or that is not ours,
 * is never touched.
 */
import { alive } from "../tunnel/state.ts";
import { type Backup, readBackup, saveBackup } from "./backup.ts";
import { decodeEmbedded, ownerPid } from "./resolv_conf.ts";
import { actingPath, isMountPoint, readThrough, restore } from "./resolv_file.ts";

/** The backup file for a resolv.conf path: one per path, so it doubles as the lock. */
export function backupFile(stateDir: string, path: string): string {
  // Not *.json: the state dir's *.json files are tunnel states.
  return `${stateDir}/dns-backup${path.replace(/[^A-Za-z0-9.-]/g, "_")}`;
}

/** Where releases before the rename kept it; still read, so an upgrade mid-tunnel restores. */
export const legacyBackupFile = (stateDir: string, path: string) =>
  `${backupFile(stateDir, path)}.json`;

export type Log = (line: string) => void;

export const defaultLog: Log = (line) => console.error(`ssm-proxy: ${line}`);

const equalBytes = (a: Uint8Array, b: Uint8Array) =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Put the original back from backup `file` if the path still holds what we wrote, and drop the
 * backup. One held by another live process is left alone (its tunnel still runs).
 */
export async function undoBackup(
  file: string,
  log: Log,
): Promise<{ done: "none" | "held" | "restored" | "changed"; pid?: number }> {
  const b = await readBackup(file);
  if (!b) return { done: "none" };
  if (b.pid !== Deno.pid && alive(b.pid)) return { done: "held", pid: b.pid };
  const st = await Deno.lstat(b.path).catch(() => undefined);
  const now = st?.isFile ? await readThrough(b.path) : undefined;
  let done: "restored" | "changed" = "restored";
  if (now && equalBytes(now, b.written)) await restore(b.path, b.original, b.inPlace);
  else {
    log(`${b.path} was changed by another program since ssm-proxy wrote it: leaving it as it is`);
    done = "changed";
  }
  await Deno.remove(file).catch(() => {});
  return { done, pid: b.pid };
}

/** This boot's id; undefined off Linux. */
export function bootId(): string | undefined {
  try {
    return Deno.readTextFileSync("/proc/sys/kernel/random/boot_id").trim() || undefined;
  } catch {
    return undefined;
  }
}

export interface RecoverOptions {
  /** The resolv.conf (default /etc/resolv.conf). */
  path: string;
  /** The tunnel state dir, where the backup (and lock) lives. */
  stateDir: string;
  log?: Log;
  /**
   * Do not report a file of ours that carries no original (written before it did): apply says
   * so itself, as an error.
   */
  quietNoCopy?: boolean;
}

export type Recovery =
  /** Nothing left by a process that is gone. */
  | { kind: "none" }
  /** Ours, and its process runs (or another command is restoring it): untouched. */
  | { kind: "live"; pid: number }
  | { kind: "restored"; pid: number; from: "backup" | "copy" }
  /** Ours, its process gone, no backup, and no copy inside to restore from. */
  | { kind: "no-copy"; pid: number }
  | { kind: "failed"; pid: number; error: string };

/**
 * Put back a resolv.conf that a process now gone left behind: from its backup, else (the state
 * dir was cleared by a reboot) from the copy inside the file. Says so in one line; never throws
 * for what it finds, so commands can call it first and go on.
 */
export async function recoverResolvConf(o: RecoverOptions): Promise<Recovery> {
  const log = o.log ?? defaultLog;
  let pid = 0;
  try {
    for (const file of [backupFile(o.stateDir, o.path), legacyBackupFile(o.stateDir, o.path)]) {
      const u = await undoBackup(file, log);
      pid = u.pid ?? 0;
      if (u.done === "held") return { kind: "live", pid };
      if (u.done === "restored") {
        log(`restored ${o.path} left by ssm-proxy (pid ${pid}), which no longer runs`);
        return { kind: "restored", pid, from: "backup" };
      }
    }
    return await fromCopy(o, log, (p) => pid = p);
  } catch (e) {
    const why = e instanceof Deno.errors.PermissionDenied
      ? "run this command as root to restore it"
      : "put back the nameserver lines listed in its comments";
    log(
      `cannot restore ${o.path} left by ssm-proxy (pid ${pid}) (${(e as Error).message}): ${why}`,
    );
    return { kind: "failed", pid, error: (e as Error).message };
  }
}

async function fromCopy(
  o: RecoverOptions,
  log: Log,
  owner: (pid: number) => void,
): Promise<Recovery> {
  const path = await actingPath(o.path);
  if (!(await Deno.lstat(path).catch(() => undefined))?.isFile) return { kind: "none" };
  const written = await readThrough(path);
  const text = new TextDecoder().decode(written);
  const pid = ownerPid(text);
  if (pid === undefined) return { kind: "none" };
  owner(pid);
  const embedded = decodeEmbedded(text);
  const now = bootId();
  const rebooted = !!(embedded?.bootId && now && embedded.bootId !== now);
  if (!rebooted && alive(pid)) return { kind: "live", pid };
  if (!embedded) {
    if (!o.quietNoCopy) {
      log(
        `${o.path} was written by ssm-proxy (pid ${pid}), which no longer runs, and holds no ` +
          `copy of the original: put back the nameserver lines listed in its comments`,
      );
    }
    return { kind: "no-copy", pid };
  }
  // Restored through a backup of our own, taken like apply takes it: the lock against another
  // command doing the same, and what the next command finishes if this one dies half-way.
  await Deno.mkdir(o.stateDir, { recursive: true, mode: 0o755 });
  const file = backupFile(o.stateDir, o.path);
  const b: Backup = {
    path,
    pid: Deno.pid,
    original: embedded.original,
    written,
    inPlace: isMountPoint(path),
  };
  try {
    await saveBackup(file, b, true);
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) return { kind: "live", pid };
    throw e;
  }
  // Changed between the read and the lock (another command restored it, or started a tunnel
  // and stopped it): not ours to restore any more.
  if (!equalBytes(await readThrough(path), written)) {
    await Deno.remove(file).catch(() => {});
    return { kind: "none" };
  }
  try {
    if ((await undoBackup(file, log)).done !== "restored") return { kind: "none" };
  } catch (e) {
    await Deno.remove(file).catch(() => {}); // restore() replaces atomically: nothing changed
    throw e;
  }
  log(
    `restored ${o.path} left by ssm-proxy (pid ${pid}) ` +
      (rebooted ? "before a reboot" : "which no longer runs, and whose backup was gone"),
  );
  return { kind: "restored", pid, from: "copy" };
}
