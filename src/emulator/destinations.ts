/**
 * The destination map: where the emulated agent really dials a Port session's destination. The
 * agent dials from wherever the emulator runs, so a "VPC" address such as 10.99.0.10:80 exists
 * only inside the lab's network namespaces. On a machine without them (macOS CI) the map sends
 * that destination to a local service (127.0.0.1:8080), and an agentless tunnel still runs end
 * to end. Pure: parsing, validation and lookup.
 *
 * Keys and values are `a.b.c.d:port` or `[v6]:port`. Addresses are compared in one canonical
 * form (RFC 5952 for IPv6), so any spelling of an address in a document matches its key.
 */
import { formatIP, parseIPv4, parseIPv6 } from "../../ffi/struct.ts";

export interface HostPort {
  hostname: string;
  port: number;
}

/** Canonical `host:port` of the destination a document names → the address dialled instead. */
export type DestinationMap = ReadonlyMap<string, HostPort>;

const SHAPE = "address:port like 10.0.0.1:80 or [fd00::1]:80";

/** `a.b.c.d:port` or `[v6]:port` with the address in canonical form; a string is the problem. */
export function parseHostPort(text: string): HostPort | string {
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  if (!m) return `"${text}" is not an ${SHAPE}`;
  const [, v6, v4, portText] = m;
  const bytes = v6 !== undefined ? parseIPv6(v6) : parseIPv4(v4);
  if (!bytes) {
    return v6 !== undefined
      ? `"${v6}" is not an IPv6 address`
      : `"${v4}" is not an IPv4 address (IPv6 goes in brackets: [fd00::1]:80)`;
  }
  const port = Number(portText);
  if (port < 1 || port > 65535) return `port ${portText} is not in 1-65535`;
  return { hostname: formatIP(bytes), port };
}

export function formatHostPort(d: HostPort): string {
  return d.hostname.includes(":") ? `[${d.hostname}]:${d.port}` : `${d.hostname}:${d.port}`;
}

/** One entry checked: the canonical key and target, or which side is wrong and why. */
export function parseDestination(
  from: string,
  to: string,
): { key: string; to: HostPort } | { side: "key" | "value"; problem: string } {
  const f = parseHostPort(from);
  if (typeof f === "string") return { side: "key", problem: f };
  const t = parseHostPort(to);
  if (typeof t === "string") return { side: "value", problem: t };
  return { key: formatHostPort(f), to: t };
}

/**
 * The map of one or more `from → to` records (a fixtures file's, a caller's), later records
 * overriding earlier ones. A malformed entry, or two spellings of one destination in the same
 * record, throws an Error naming the entry.
 */
export function destinationMap(...records: Record<string, string>[]): Map<string, HostPort> {
  const out = new Map<string, HostPort>();
  for (const record of records) {
    const seen = new Map<string, string>();
    for (const [from, to] of Object.entries(record)) {
      const where = `destinations[${JSON.stringify(from)}]`;
      const d = parseDestination(from, to);
      if ("problem" in d) throw new Error(`${where}: ${d.side}: ${d.problem}`);
      const earlier = seen.get(d.key);
      if (earlier !== undefined) {
        throw new Error(`${where}: the same destination as ${JSON.stringify(earlier)}`);
      }
      seen.set(d.key, from);
      out.set(d.key, d.to);
    }
  }
  return out;
}

/**
 * Where the agent dials `d`: the mapped address, or `d` itself. A host name, or an address
 * spelled in a way the real agent could not dial (bracketed), is never mapped.
 */
export function mapDestination(map: DestinationMap | undefined, d: HostPort): HostPort {
  if (!map || map.size === 0) return d;
  const bytes = parseIPv4(d.hostname) ?? (d.hostname.includes(":") ? parseIPv6(d.hostname) : null);
  if (!bytes) return d;
  return map.get(formatHostPort({ hostname: formatIP(bytes), port: d.port })) ?? d;
}
