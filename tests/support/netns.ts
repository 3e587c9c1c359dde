/**
 * Throwaway network namespaces for tests (root only). Names start with `ssmpt-`; code runs inside
 * by spawning `ip netns exec <ns> deno run -A <script>`, the simplest way to get a whole process
 * (and its FFI calls) into the namespace. `withNetns` always deletes what it created.
 */

export interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(cmd: string, args: string[]): Promise<Output> {
  const o = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
}

/** `ip ARGS`, throwing with stderr on failure; returns stdout. */
export async function ip(...args: string[]): Promise<string> {
  const o = await run("ip", args);
  if (o.code !== 0) throw new Error(`ip ${args.join(" ")}: ${o.stderr.trim()}`);
  return o.stdout;
}

/** `ip -n NS ARGS` (inspect or configure inside a namespace). */
export function ipIn(ns: string, ...args: string[]): Promise<string> {
  return ip("-n", ns, ...args);
}

/** Can this process create namespaces and TUNs? (root + /dev/net/tun). */
export function netnsAvailable(): { ok: boolean; why?: string } {
  if (Deno.build.os !== "linux") return { ok: false, why: "not Linux" };
  if (Deno.uid() !== 0) return { ok: false, why: "not root" };
  try {
    Deno.statSync("/dev/net/tun");
  } catch {
    return { ok: false, why: "/dev/net/tun is missing (modprobe tun)" };
  }
  return { ok: true };
}

let counter = 0;

/** A unique `ssmpt-<pid>-<n>` namespace with loopback up. */
export async function createNetns(tag = "t"): Promise<string> {
  const name = `ssmpt-${tag}-${Deno.pid}-${counter++}`;
  await ip("netns", "add", name);
  try {
    await ipIn(name, "link", "set", "lo", "up");
  } catch (e) {
    await deleteNetns(name);
    throw e;
  }
  return name;
}

/** Delete a namespace (and with it every interface inside); missing is fine. */
export async function deleteNetns(name: string): Promise<void> {
  if (!name.startsWith("ssmpt-")) throw new Error(`refusing to delete namespace ${name}`);
  await run("ip", ["netns", "del", name]);
}

/** Run `fn` with fresh namespaces (one per tag), deleting them afterwards even on failure. */
export async function withNetns<T>(
  tags: string[],
  fn: (...names: string[]) => Promise<T>,
): Promise<T> {
  const names: string[] = [];
  try {
    for (const t of tags) names.push(await createNetns(t));
    return await fn(...names);
  } finally {
    for (const n of names) await deleteNetns(n);
  }
}

/** `deno run -A <script> ...args` inside the namespace; resolves with its output. */
export function inNetns(ns: string, scriptUrl: string | URL, args: string[] = []): Promise<Output> {
  const script = scriptUrl instanceof URL ? scriptUrl : new URL(scriptUrl);
  const path = script.protocol === "file:" ? decodeURIComponent(script.pathname) : script.href;
  return run("ip", [
    "netns",
    "exec",
    ns,
    Deno.execPath(),
    "run",
    "-A",
    "--no-check",
    path,
    ...args,
  ]);
}

/**
 * A veth pair `a` ⇄ `b`, `a` moved into `nsA` and `b` into `nsB`, each addressed (CIDR, e.g.
 * "10.199.1.1/24") and up.
 */
export async function addVethPair(
  a: { ns: string; name: string; cidr: string },
  b: { ns: string; name: string; cidr: string },
): Promise<void> {
  // Created inside nsA directly so nothing ever appears in the host namespace.
  await ipIn(a.ns, "link", "add", a.name, "type", "veth", "peer", "name", b.name, "netns", b.ns);
  for (const end of [a, b]) {
    await ipIn(end.ns, "addr", "add", end.cidr, "dev", end.name);
    await ipIn(end.ns, "link", "set", end.name, "up");
  }
}

/** Does `ifname` exist in the namespace? */
export async function linkExists(ns: string, ifname: string): Promise<boolean> {
  const o = await run("ip", ["-n", ns, "link", "show", "dev", ifname]);
  return o.code === 0;
}
