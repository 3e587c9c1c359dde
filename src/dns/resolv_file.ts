/**
 * The file edge of resolv.conf handling: what is at the path now (a file, a symlink, nothing),
 * and putting something there without a moment where resolvers find a half-written file: a temp
 * file in the same directory renamed over it. A bind-mounted resolv.conf (Docker, `ip netns
 * exec`) cannot be renamed over (EBUSY), so that one is rewritten in place.
 */
import { dirname } from "node:path";

/** What a path held, enough to put it back byte for byte. */
export type Original =
  | { kind: "file"; bytes: Uint8Array; mode: number; uid: number | null; gid: number | null }
  | { kind: "symlink"; target: string }
  | { kind: "absent" };

export async function snapshot(path: string): Promise<Original> {
  let st: Deno.FileInfo;
  try {
    st = await Deno.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { kind: "absent" };
    throw e;
  }
  if (st.isSymlink) return { kind: "symlink", target: await Deno.readLink(path) };
  return {
    kind: "file",
    bytes: await Deno.readFile(path),
    mode: (st.mode ?? 0o644) & 0o7777,
    uid: st.uid,
    gid: st.gid,
  };
}

/** What resolvers read at `path` now (through a symlink); empty when nothing is there. */
export async function readThrough(path: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return new Uint8Array(0); // absent or dangling
    throw e;
  }
}

/**
 * Is `path` a mount point of its own (a file bind-mounted over it)? Renaming over it fails, and
 * a symlink whose target is one must be written through, not replaced: replacing the link would
 * edit the file system the bind mount was meant to shield.
 */
export function isMountPoint(path: string, mountinfo = "/proc/self/mountinfo"): boolean {
  let text: string;
  try {
    text = Deno.readTextFileSync(mountinfo);
  } catch {
    return false; // not Linux, or no /proc: the rename's EBUSY still tells us
  }
  for (const line of text.split("\n")) {
    // Field 5 is the mount point, with space, tab, newline and backslash octal-escaped.
    const field = line.split(" ")[4];
    if (
      field &&
      field.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8))) === path
    ) {
      return true;
    }
  }
  return false;
}

/** Where to act for `path`: the file a symlink points to when that file is a mount point. */
export async function actingPath(path: string): Promise<string> {
  try {
    if (!(await Deno.lstat(path)).isSymlink) return path;
    const real = await Deno.realPath(path);
    return isMountPoint(real) ? real : path;
  } catch {
    return path; // absent or dangling: replaced like any other
  }
}

function tempBeside(path: string): string {
  const base = path.slice(dirname(path).length + 1);
  return `${dirname(path)}/.${base}.ssm-proxy-${Deno.pid}.tmp`;
}

async function removeQuietly(path: string): Promise<void> {
  await Deno.remove(path).catch(() => {});
}

/** Create `path` with exactly these bytes, mode and owner, flushed to disk. */
async function writeDurably(
  path: string,
  bytes: Uint8Array,
  mode: number,
  owner?: { uid: number | null; gid: number | null },
): Promise<void> {
  const f = await Deno.open(path, { write: true, createNew: true, mode });
  try {
    for (let o = 0; o < bytes.length;) o += await f.write(bytes.subarray(o));
    await f.sync();
  } finally {
    f.close();
  }
  await Deno.chmod(path, mode); // the umask trimmed the mode given to open
  if (owner?.uid != null && owner.gid != null) await Deno.chown(path, owner.uid, owner.gid);
}

/** Put `make(tmp)`'s result at `path` by rename; a failed rename leaves no temp file behind. */
async function renameInto(path: string, make: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = tempBeside(path);
  await removeQuietly(tmp); // left by a crash of a process with our pid
  try {
    await make(tmp);
    await Deno.rename(tmp, path);
  } catch (e) {
    await removeQuietly(tmp);
    throw e;
  }
}

/**
 * Replace `path` with a regular file holding `bytes`. Atomic by rename; when the path is a mount
 * point the rename fails with EBUSY and the file is rewritten in place instead (readers may then
 * see it half-written for a moment, which a bind mount leaves no way around). Says which it did.
 */
export async function replaceFile(
  path: string,
  bytes: Uint8Array,
  mode = 0o644,
  owner?: { uid: number | null; gid: number | null },
): Promise<"renamed" | "in-place"> {
  try {
    await renameInto(path, (tmp) => writeDurably(tmp, bytes, mode, owner));
    return "renamed";
  } catch (e) {
    if (!isBusy(e)) throw e;
  }
  await rewriteInPlace(path, bytes);
  return "in-place";
}

/** EBUSY: Deno has no error class for it, only the code (Deno.errors.Busy is another errno). */
function isBusy(e: unknown): boolean {
  return e instanceof Deno.errors.Busy || (e as { code?: string })?.code === "EBUSY";
}

/** Truncate and write through the existing inode (its mode and owner stay). */
export async function rewriteInPlace(path: string, bytes: Uint8Array): Promise<void> {
  const f = await Deno.open(path, { write: true, truncate: true });
  try {
    for (let o = 0; o < bytes.length;) o += await f.write(bytes.subarray(o));
    await f.sync();
  } finally {
    f.close();
  }
}

/** Put back what `snapshot` saw; `inPlace` when the path had to be rewritten in place. */
export async function restore(path: string, o: Original, inPlace: boolean): Promise<void> {
  switch (o.kind) {
    case "file":
      if (inPlace) await rewriteInPlace(path, o.bytes);
      else await replaceFile(path, o.bytes, o.mode, o);
      return;
    case "symlink":
      await renameInto(path, (tmp) => Deno.symlink(o.target, tmp));
      return;
    case "absent":
      await Deno.remove(path).catch((e) => {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      });
  }
}
