/**
 * Reading this machine's interfaces, routes and resolvers from the OS tools' text, for the smoke
 * tests' "what is there / what is left" checks: BSD `ifconfig -l`, `netstat -rn -f inet`,
 * `route -n get`, `scutil --dns` on macOS; iproute2 on Linux. Pure: text in, facts out, so the
 * macOS formats are tested on Linux against samples shaped by Apple's sources (network_cmds
 * netstat.tproj/route.c, route.tproj/route.c; configd dnsinfo_logging.h).
 */

export interface Net {
  /** IPv4 address as an unsigned 32-bit number. */
  base: number;
  prefix: number;
}

function ipv4(text: string): number | undefined {
  const p = text.split(".");
  if (p.length !== 4 || p.some((x) => !/^\d{1,3}$/.test(x) || Number(x) > 255)) return undefined;
  return p.reduce((n, x) => n * 256 + Number(x), 0);
}

function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function parseCidr(text: string): Net {
  const [a, p] = text.split("/");
  const base = ipv4(a);
  const prefix = p === undefined ? 32 : Number(p);
  if (base === undefined || !Number.isInteger(prefix) || prefix < 0 || prefix > 32) {
    throw new Error(`not an IPv4 CIDR: ${text}`);
  }
  return { base: (base & mask(prefix)) >>> 0, prefix };
}

/** Is `inner` (a network or a host) inside `outer`? */
export function within(inner: Net, outer: Net): boolean {
  return inner.prefix >= outer.prefix && ((inner.base & mask(outer.prefix)) >>> 0) === outer.base;
}

/**
 * A destination as BSD netstat prints it (netname/domask): trailing zero octets dropped and
 * the prefix shown only when it is not the class's natural one, so 10.99.0.0/24 is "10.99/24",
 * 198.18.250.0/24 is "198.18.250" and 10.0.0.0/8 is "10"; hosts are dotted quads; "default";
 * an interface scope may follow after "%".
 */
export function parseBsdDestination(token: string): Net | undefined {
  const t = token.replace(/%.*$/, "");
  if (t === "default") return { base: 0, prefix: 0 };
  const [addr, p] = t.split("/");
  const octets = addr.split(".");
  if (octets.length < 1 || octets.length > 4) return undefined;
  while (octets.length < 4) octets.push("0");
  const base = ipv4(octets.join("."));
  if (base === undefined) return undefined;
  let prefix: number;
  if (p !== undefined) {
    prefix = Number(p);
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) return undefined;
  } else if (addr.split(".").length === 4) {
    prefix = 32; // a host: a network shown without "/" has zero octets dropped
  } else {
    const first = base >>> 24;
    prefix = first < 128 ? 8 : first < 192 ? 16 : 24; // the natural (classful) mask
  }
  return { base: (base & mask(prefix)) >>> 0, prefix };
}

/** `ifconfig -l`: names on one line. */
export function parseIfconfigList(text: string): string[] {
  return text.trim().split(/\s+/).filter(Boolean).sort();
}

/** `ip -o link show`: "N: name[@peer]: <...> ...", one per line. */
export function parseIpLinkNames(text: string): string[] {
  return text.trim().split("\n").map((l) => l.split(":")[1]?.trim().split("@")[0] ?? "")
    .filter(Boolean).sort();
}

/** Lines of `netstat -rn -f inet` for destinations inside `cidr`, or on interface `ifname`. */
export function netstatLines(table: string, cidr: Net, ifname?: string): string[] {
  return table.split("\n").filter((l) => {
    const w = l.trim().split(/\s+/);
    if (w.length < 2) return false;
    const dst = parseBsdDestination(w[0]);
    if (dst && dst.prefix > 0 && within(dst, cidr)) return true;
    return ifname !== undefined && w.includes(ifname);
  });
}

/** Route types iproute2 may print before the destination. */
const IP_ROUTE_TYPES = new Set([
  "unicast",
  "local",
  "broadcast",
  "multicast",
  "throw",
  "unreachable",
  "prohibit",
  "blackhole",
  "nat",
  "anycast",
]);

/** Lines of `ip -4 route show [table all]` inside `cidr`, or with `dev ifname`. */
export function ipRouteLines(table: string, cidr: Net, ifname?: string): string[] {
  return table.split("\n").filter((l) => {
    const w = l.trim().split(/\s+/);
    const d = IP_ROUTE_TYPES.has(w[0]) ? w[1] : w[0];
    if (!d) return false;
    let dst: Net | undefined;
    try {
      dst = d === "default" ? undefined : parseCidr(d);
    } catch {
      dst = undefined;
    }
    if (dst && within(dst, cidr)) return true;
    const dev = w.indexOf("dev");
    return ifname !== undefined && dev >= 0 && w[dev + 1] === ifname;
  });
}

/** `route -n get ADDRESS` (macOS): the interface, and the gateway when the route has one. */
export function parseRouteGet(text: string): { interface?: string; gateway?: string } {
  const ifname = /^\s*interface:\s*(\S+)/m.exec(text)?.[1];
  const gateway = /^\s*gateway:\s*(\S+)/m.exec(text)?.[1];
  return { ...(ifname ? { interface: ifname } : {}), ...(gateway ? { gateway } : {}) };
}

/** `ip -4 route get ADDRESS` (Linux): the device, and the gateway ("via") when there is one. */
export function parseIpRouteGet(text: string): { interface?: string; gateway?: string } {
  const dev = /\bdev\s+(\S+)/.exec(text)?.[1];
  const via = /\bvia\s+(\S+)/.exec(text)?.[1];
  return { ...(dev ? { interface: dev } : {}), ...(via ? { gateway: via } : {}) };
}

/** The domains of `scutil --dns` ("  domain   : corp.example" lines), lower-cased. */
export function scutilDomains(text: string): string[] {
  const out = new Set<string>();
  for (const m of text.matchAll(/^\s*domain\s*:\s*(\S+)\s*$/gm)) out.add(m[1].toLowerCase());
  return [...out].sort();
}
