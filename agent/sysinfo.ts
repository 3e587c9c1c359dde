/**
 * Facts about the host the agent needs when the config leaves them out: the uplink (the default
 * route's interface) and the VPC resolver. Parsers are pure; the readers only read /proc and /etc.
 */

/**
 * The interface of the IPv4 default route in /proc/net/route text (lowest metric wins), or
 * undefined. Columns: Iface Destination Gateway Flags RefCnt Use Metric Mask …, hex in host order.
 */
export function defaultRouteInterface(procNetRoute: string): string | undefined {
  let best: { iface: string; metric: number } | undefined;
  for (const line of procNetRoute.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [iface, dest, , flags, , , metric, mask] = f;
    const up = (parseInt(flags, 16) & 0x1) !== 0;
    if (!up || parseInt(dest, 16) !== 0 || parseInt(mask, 16) !== 0) continue;
    const m = Number(metric);
    if (!best || m < best.metric) best = { iface, metric: m };
  }
  return best?.iface;
}

/** The first IPv4 `nameserver` in resolv.conf text, or undefined. */
export function firstNameserver(resolvConf: string): string | undefined {
  for (const line of resolvConf.split("\n")) {
    const m = /^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*(#.*)?$/.exec(line);
    if (m) return m[1];
  }
  return undefined;
}

async function readOr(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return undefined;
  }
}

export async function detectUplink(): Promise<string | undefined> {
  const text = await readOr("/proc/net/route");
  return text === undefined ? undefined : defaultRouteInterface(text);
}

/**
 * The resolver to tell clients. A loopback stub (systemd-resolved's 127.0.0.53) is useless to a
 * laptop, so then the stub's upstream list is read instead.
 */
export async function detectResolver(): Promise<string | undefined> {
  for (const path of ["/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"]) {
    const text = await readOr(path);
    const ns = text === undefined ? undefined : firstNameserver(text);
    if (ns && !ns.startsWith("127.")) return ns;
  }
  return undefined;
}
