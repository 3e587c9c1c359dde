/**
 * macOS split DNS through `/etc/resolver/<domain>` files (os-ffi §8). configd watches the
 * directory and applies changes within about a second; no command is run. Every file we write
 * starts with a marker line naming its owner (tunnel interface and pid), and we only ever remove
 * files carrying that marker, like tailscale's "# Added by tailscaled". The directory is a
 * parameter so tests use a temp dir.
 */
import { formatIP, parseIP, StructError } from "../struct.ts";

export const RESOLVER_DIR = "/etc/resolver";
export const MARKER = "# Added by ssm-proxy";

/** A resolver file cannot be written or removed as asked (foreign file, bad domain, ...). */
export class ResolverError extends Error {
  override name = "ResolverError";
}

export interface ResolverOwner {
  /** The tunnel's interface (utunN): it exists exactly as long as the owning process holds it. */
  tunnel: string;
  pid: number;
}

/** The marker line for `owner`. */
export function markerLine(owner: ResolverOwner): string {
  return `${MARKER} (tunnel ${owner.tunnel}, pid ${owner.pid})`;
}

/**
 * What the first line of a file says: "foreign" (not ours: never touched), our owner, or
 * `{}` for a marker without a readable owner (ours, but we cannot tell whether it is stale).
 */
export function parseMarker(text: string): "foreign" | Partial<ResolverOwner> {
  const first = text.split("\n", 1)[0].trimEnd();
  if (!first.startsWith(MARKER)) return "foreign";
  const m = /^# Added by ssm-proxy \(tunnel ([^\s,()]+)(?:, pid (\d+))?\)$/.exec(first);
  if (!m) return {};
  return m[2] === undefined ? { tunnel: m[1] } : { tunnel: m[1], pid: Number(m[2]) };
}

/** The file body: marker, then the server reached through the tunnel. */
export function resolverFileText(server: string, owner: ResolverOwner): string {
  const addr = formatIP(parseIP(server)); // canonical form; throws StructError on junk
  return [
    markerLine(owner),
    "# Removed when that tunnel stops (ssm-proxy stop), or by the next ssm-proxy run if it died.",
    `nameserver ${addr}`,
    "port 53",
    "timeout 5",
    "",
  ].join("\n");
}

/**
 * A domain as a file name: lower case, no trailing dot, only LDH labels (and "_"). Anything else
 * could escape the directory or name a file configd would read as another domain.
 */
export function resolverFileName(domain: string): string {
  const d = domain.trim().toLowerCase().replace(/\.$/, "");
  const label = "[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?";
  if (d.length === 0 || d.length > 253 || !new RegExp(`^${label}(?:\\.${label})*$`).test(d)) {
    throw new ResolverError(`not a DNS domain: ${JSON.stringify(domain)}`);
  }
  return d;
}

/** The text of a regular file, or undefined if there is none; symlinks etc. count as foreign. */
async function readRegular(path: string): Promise<string | undefined | "not-regular"> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  if (!info.isFile) return "not-regular";
  return await Deno.readTextFile(path);
}

export interface ResolverFs {
  dir: string;
  /** Is the tunnel that wrote a marked file still running? */
  isAlive(owner: Partial<ResolverOwner>): boolean;
}

/** Our marked file whose owner is gone (or is us): safe to replace or remove. */
function ownedBy(text: string, fs: ResolverFs, me?: ResolverOwner): boolean {
  const o = parseMarker(text);
  if (o === "foreign") return false;
  if (me && o.tunnel === me.tunnel && o.pid === me.pid) return true;
  if (o.pid === Deno.pid) return true;
  return o.tunnel !== undefined && !fs.isAlive(o);
}

/**
 * Write one file per domain; returns the paths written (for DnsState). All-or-nothing: if a
 * domain's file is foreign or belongs to another running tunnel, nothing is left behind.
 */
export async function writeResolverFiles(
  fs: ResolverFs,
  domains: string[],
  server: string,
  owner: ResolverOwner,
): Promise<string[]> {
  let body: string;
  try {
    body = resolverFileText(server, owner);
  } catch (e) {
    if (e instanceof StructError) throw new ResolverError(`DNS server: ${e.message}`);
    throw e;
  }
  const names = [...new Set(domains.map(resolverFileName))];
  // Check every file before writing any, so a refusal changes nothing.
  for (const name of names) {
    const path = `${fs.dir}/${name}`;
    const text = await readRegular(path);
    if (text === undefined) continue;
    if (text === "not-regular" || parseMarker(text) === "foreign") {
      throw new ResolverError(
        `${path} exists and was not written by ssm-proxy: remove it, or drop the domain ${name}`,
      );
    }
    if (!ownedBy(text, fs, owner)) {
      const o = parseMarker(text) as Partial<ResolverOwner>;
      throw new ResolverError(
        `${path} belongs to another running ssm-proxy tunnel (${o.tunnel ?? "unknown"}${
          o.pid ? `, pid ${o.pid}` : ""
        }): stop it first, or drop the domain ${name}`,
      );
    }
  }
  await Deno.mkdir(fs.dir, { recursive: true, mode: 0o755 });
  const written: string[] = [];
  try {
    for (const name of names) {
      const path = `${fs.dir}/${name}`;
      // One small write: configd never sees a half-written file in practice.
      await Deno.writeTextFile(path, body, { mode: 0o644 });
      await Deno.chmod(path, 0o644); // mode on create is subject to umask
      written.push(path);
    }
  } catch (e) {
    await removeResolverFiles(fs, written).catch(() => {});
    throw e;
  }
  return written;
}

/**
 * Remove exactly the files listed that are still ours: inside `fs.dir`, carrying the marker, and
 * written by us or by a tunnel that is gone. Missing files are fine. Returns the paths removed.
 */
export async function removeResolverFiles(fs: ResolverFs, paths: string[]): Promise<string[]> {
  const removed: string[] = [];
  for (const path of paths) {
    const slash = path.lastIndexOf("/");
    // A tampered state file must not make root delete arbitrary paths.
    if (path.slice(0, slash) !== fs.dir) continue;
    try {
      resolverFileName(path.slice(slash + 1));
    } catch {
      continue;
    }
    const text = await readRegular(path);
    if (text === undefined || text === "not-regular" || !ownedBy(text, fs)) continue;
    try {
      await Deno.remove(path);
      removed.push(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  return removed;
}

/** Remove marked files whose owning tunnel is gone (a crash left them). Returns their paths. */
export async function removeStaleResolverFiles(fs: ResolverFs): Promise<string[]> {
  const candidates: string[] = [];
  try {
    for await (const e of Deno.readDir(fs.dir)) {
      if (e.isFile) candidates.push(`${fs.dir}/${e.name}`);
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  const stale: string[] = [];
  for (const path of candidates.sort()) {
    const text = await readRegular(path);
    if (typeof text !== "string" || text === "not-regular") continue;
    const o = parseMarker(text);
    // Only files that name an owner who is gone; our own live files (pid = us) stay.
    if (o !== "foreign" && o.tunnel !== undefined && o.pid !== Deno.pid && !fs.isAlive(o)) {
      stale.push(path);
    }
  }
  return await removeResolverFiles(fs, stale);
}
