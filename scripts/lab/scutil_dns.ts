/**
 * Reading macOS's DNS and primary-service state from `scutil` text, for the full-tunnel DNS
 * smoke test (scripts/macos_dns_smoke.ts), and the one DNS answer that test gives through its
 * utun. Pure: text or bytes in, facts out, so the formats are tested on Linux against samples
 * shaped by configd's sources (dnsinfo/dnsinfo_logging.h, nwi/network_state_information_logging.h,
 * scutil.tproj's `show`).
 */

export interface ScutilResolver {
  /** "resolver #N". */
  index: number;
  domain?: string;
  searchDomains: string[];
  nameservers: string[];
  /** `if_index : 24 (utun5)`: the interface the resolver's queries are bound to. */
  ifIndex?: number;
  ifName?: string;
  /** `flags : Scoped, Supplemental, Request A records, …`. */
  flags: string[];
  order?: number;
}

/**
 * The resolvers of the first section of `scutil --dns` ("DNS configuration"), in order; the
 * scoped and service-specific sections that follow are left out.
 */
export function parseScutilDns(text: string): ScutilResolver[] {
  const main = text.split(/^DNS configuration \(for /m)[0];
  const out: ScutilResolver[] = [];
  let r: ScutilResolver | undefined;
  for (const line of main.split("\n")) {
    const head = /^resolver #(\d+)\s*$/.exec(line);
    if (head) {
      r = { index: Number(head[1]), searchDomains: [], nameservers: [], flags: [] };
      out.push(r);
      continue;
    }
    if (!r) continue;
    const m = /^\s+([a-z_ ]+?)(?:\[\d+\])?\s*:\s*(.*?)\s*$/.exec(line);
    if (!m) continue;
    const [, key, value] = m;
    if (key === "domain") r.domain = value;
    else if (key === "search domain") r.searchDomains.push(value);
    else if (key === "nameserver") r.nameservers.push(value);
    else if (key === "order") r.order = Number(value);
    else if (key === "flags") r.flags = value ? value.split(/,\s*/) : [];
    else if (key === "if_index") {
      const i = /^(\d+)(?:\s+\((\S+)\))?/.exec(value);
      if (i) {
        r.ifIndex = Number(i[1]);
        if (i[2]) r.ifName = i[2];
      }
    }
  }
  return out;
}

/**
 * The top-level scalar entries of `scutil`'s `show KEY` (`<dictionary> { Key : value … }`);
 * arrays become their elements in order. Undefined for "No such key".
 */
export function parseScutilShow(text: string): Record<string, string | string[]> | undefined {
  if (/No such key/.test(text) || !/<dictionary>/.test(text)) return undefined;
  const out: Record<string, string | string[]> = {};
  let array: string[] | undefined;
  let depth = 0;
  for (const line of text.split("\n")) {
    const t = line.trim();
    if (t === "}") {
      depth--;
      if (depth === 1) array = undefined;
      continue;
    }
    const m = /^(\S+)\s*:\s*(.*)$/.exec(t);
    if (t.startsWith("<dictionary>")) {
      depth++;
      continue;
    }
    if (!m) continue;
    if (depth === 1) {
      if (m[2].startsWith("<array>")) {
        out[m[1]] = array = [];
        depth++;
      } else if (m[2].startsWith("<dictionary>")) depth++;
      else out[m[1]] = m[2];
    } else if (depth === 2 && array) array.push(m[2]);
    else if (m[2].startsWith("<")) depth++;
  }
  return out;
}

/** The IPv4 interfaces of `scutil --nwi`, in rank order (the primary first). */
export function parseNwiIPv4(text: string): string[] {
  const section = text.split(/^IPv4 network interface information\s*$/m)[1]?.split(
    /^IPv6 network interface information\s*$/m,
  )[0] ?? "";
  return [...section.matchAll(/^\s*(\S+) : flags\s*:/gm)].map((m) => m[1]);
}

/** The nameservers of /etc/resolv.conf. */
export function resolvConfServers(text: string): string[] {
  return [...text.matchAll(/^\s*nameserver\s+(\S+)/gm)].map((m) => m[1]);
}

const u16 = (b: Uint8Array, at: number) => (b[at] << 8) | b[at + 1];

/** The question of a standard query: name (lower case, no trailing dot), type, end offset. */
export function dnsQuestion(
  q: Uint8Array,
): { name: string; type: number; end: number } | undefined {
  if (q.length < 12 || q[2] & 0x80 || u16(q, 4) !== 1) return undefined;
  const labels: string[] = [];
  let at = 12;
  while (at < q.length && q[at] !== 0) {
    const len = q[at];
    if (len & 0xc0 || at + 1 + len > q.length) return undefined;
    labels.push(new TextDecoder().decode(q.subarray(at + 1, at + 1 + len)).toLowerCase());
    at += 1 + len;
  }
  if (at + 5 > q.length) return undefined;
  return { name: labels.join("."), type: u16(q, at + 1), end: at + 5 };
}

/**
 * The answer to `query`: one A record (TTL 5) when it asks A for `name`, an empty NOERROR for
 * other types of `name`, REFUSED for any other name (so nothing else waits on a timeout).
 * Additional records (EDNS) of the query are dropped. Undefined when it is not a query.
 */
export function dnsAnswer(query: Uint8Array, name: string, a: string): Uint8Array | undefined {
  const q = dnsQuestion(query);
  if (!q) return undefined;
  const ours = q.name === name.toLowerCase();
  const answer = ours && q.type === 1;
  const out = new Uint8Array(q.end + (answer ? 16 : 0));
  out.set(query.subarray(0, q.end));
  out[2] = 0x80 | (query[2] & 0x79); // QR, keep opcode and RD; AA and TC clear
  out[3] = 0x80 | (ours ? 0 : 5); // RA; NOERROR or REFUSED
  out.set([0, 1, 0, answer ? 1 : 0, 0, 0, 0, 0], 4);
  if (answer) {
    const ip = a.split(".").map(Number);
    out.set([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, ...ip], q.end);
  }
  return out;
}
