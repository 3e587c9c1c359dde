/**
 * The backup of the resolv.conf we replace, in the state dir: what was there (bytes or symlink
 * target), what we wrote instead, and which process did it. Written before anything changes, and
 * created exclusively, so it is also the lock that keeps a second tunnel from backing up our own
 * file as "the original".
 */
import { Buffer } from "node:buffer";
import type { Original } from "./resolv_file.ts";

export interface Backup {
  /** The file acted on (resolv.conf, or the mounted file a symlink points to). */
  path: string;
  pid: number;
  original: Original;
  /** Our file's exact bytes: at restore, anything else means someone rewrote it since. */
  written: Uint8Array;
  /** Rewritten in place (a mount point) rather than replaced. */
  inPlace: boolean;
}

interface BackupJson {
  version: 1;
  path: string;
  pid: number;
  original:
    | { kind: "file"; base64: string; mode: number; uid: number | null; gid: number | null }
    | { kind: "symlink"; target: string }
    | { kind: "absent" };
  written: string;
  inPlace: boolean;
}

const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");
const unb64 = (s: string) => new Uint8Array(Buffer.from(s, "base64"));

export function encodeBackup(b: Backup): string {
  const o = b.original;
  const json: BackupJson = {
    version: 1,
    path: b.path,
    pid: b.pid,
    original: o.kind === "file"
      ? { kind: "file", base64: b64(o.bytes), mode: o.mode, uid: o.uid, gid: o.gid }
      : o,
    written: b64(b.written),
    inPlace: b.inPlace,
  };
  return JSON.stringify(json, null, 2) + "\n";
}

/** The backup, or undefined when the text is not one of ours. */
export function decodeBackup(text: string): Backup | undefined {
  try {
    const j = JSON.parse(text) as BackupJson;
    if (j.version !== 1 || typeof j.path !== "string" || typeof j.pid !== "number") {
      return undefined;
    }
    const o = j.original;
    let original: Original;
    if (o.kind === "file") {
      original = { kind: "file", bytes: unb64(o.base64), mode: o.mode, uid: o.uid, gid: o.gid };
    } else if (o.kind === "symlink" && typeof o.target === "string") {
      original = { kind: "symlink", target: o.target };
    } else if (o.kind === "absent") original = { kind: "absent" };
    else return undefined;
    return { path: j.path, pid: j.pid, original, written: unb64(j.written), inPlace: !!j.inPlace };
  } catch {
    return undefined;
  }
}

export async function readBackup(file: string): Promise<Backup | undefined> {
  try {
    return decodeBackup(await Deno.readTextFile(file));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/**
 * Write the backup whole (temp + sync) and then make it appear: by link() when it must not exist
 * yet (fails with AlreadyExists: someone holds it), by rename() when we update our own.
 */
export async function saveBackup(file: string, b: Backup, exclusive: boolean): Promise<void> {
  const tmp = `${file}.${Deno.pid}.tmp`;
  await Deno.remove(tmp).catch(() => {});
  try {
    const f = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
    try {
      const bytes = new TextEncoder().encode(encodeBackup(b));
      for (let o = 0; o < bytes.length;) o += await f.write(bytes.subarray(o));
      await f.sync();
    } finally {
      f.close();
    }
    if (exclusive) await Deno.link(tmp, file);
    else await Deno.rename(tmp, file);
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
}
