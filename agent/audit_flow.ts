/**
 * One audited flow as the table (audit.ts) keeps it, and the JSON line it becomes. The line is
 * built only when the flow ends, so its formatting may allocate freely.
 */
import { formatIpv4 } from "./cidr.ts";
import { formatIpv6 } from "./cidr6.ts";
import { type FlowKey, ICMP, ICMP6, TCP, UDP } from "./audit_key.ts";

/** One line, parsed: "src"/"sport" are always the tunnel's side, "dst"/"dport" the VPC's. */
export interface AuditRecord {
  /** When the flow ended (its last packet), as is "end". */
  time: string;
  principal: string | null;
  /** The tunnel id's first 8 hex digits: the whole id would let a reader join the tunnel. */
  tunnel: string;
  /** "tcp", "udp", "icmp", "icmpv6", another IP protocol number, or null (not an IP packet). */
  proto: string | number | null;
  src: string | null;
  /** The client's port, or the echo id of an ICMP echo flow; null when none. */
  sport: number | null;
  dst: string | null;
  dport: number | null;
  start: string;
  end: string;
  bytesUp: number;
  bytesDown: number;
  packetsUp: number;
  packetsDown: number;
  verdict: "allow" | "deny";
}

export class TunnelEntry {
  constructor(readonly n: number, readonly id: string, readonly short: string) {}
}

/** FIN seen up, FIN seen down, RST seen either way. */
export const FIN_UP = 1, FIN_DOWN = 2, RESET = 4;

/**
 * No constructor parameter properties here: the transpiled class would define every field as
 * undefined first, and V8 would then box each number stored later (one allocation per packet).
 */
export class Flow {
  /** Next flow with the same hash. */
  chain: Flow | undefined = undefined;
  /** Neighbours in order of last activity. */
  older: Flow | undefined = undefined;
  newer: Flow | undefined = undefined;
  bytesUp = 0;
  bytesDown = 0;
  packetsUp = 0;
  packetsDown = 0;
  ends = 0;
  live = true;
  last = 0;
  readonly start: number = 0;
  readonly hash: number = 0;
  readonly deny: boolean = false;
  readonly v: number = 0;
  readonly proto: number = 0;
  readonly c0: number = 0;
  readonly c1: number = 0;
  readonly c2: number = 0;
  readonly c3: number = 0;
  readonly r0: number = 0;
  readonly r1: number = 0;
  readonly r2: number = 0;
  readonly r3: number = 0;
  readonly cport: number = 0;
  readonly rport: number = 0;
  readonly tunnel: TunnelEntry;
  readonly principal: string | null;

  constructor(
    hash: number,
    tunnel: TunnelEntry,
    principal: string | null,
    deny: boolean,
    start: number,
    k: FlowKey,
  ) {
    this.hash = hash;
    this.tunnel = tunnel;
    this.principal = principal;
    this.deny = deny;
    this.start = this.last = start;
    this.v = k.v;
    this.proto = k.proto;
    this.c0 = k.c0, this.c1 = k.c1, this.c2 = k.c2, this.c3 = k.c3;
    this.r0 = k.r0, this.r1 = k.r1, this.r2 = k.r2, this.r3 = k.r3;
    this.cport = k.cport;
    this.rport = k.rport;
  }
}

const PROTO_NAMES: Record<number, string> = { [TCP]: "tcp", [UDP]: "udp", [ICMP]: "icmp" };
PROTO_NAMES[ICMP6] = "icmpv6";

function address(v: number, w0: number, w1: number, w2: number, w3: number): string | null {
  if (v === 4) return formatIpv4(w0);
  if (v !== 6) return null;
  const b = new Uint8Array(16);
  const d = new DataView(b.buffer);
  d.setInt32(0, w0), d.setInt32(4, w1), d.setInt32(8, w2), d.setInt32(12, w3);
  return formatIpv6(b);
}

export function formatLine(f: Flow): string {
  const end = new Date(f.last).toISOString();
  const record: AuditRecord = {
    time: end,
    principal: f.principal,
    tunnel: f.tunnel.short,
    proto: f.v === 0 ? null : PROTO_NAMES[f.proto] ?? f.proto,
    src: address(f.v, f.c0, f.c1, f.c2, f.c3),
    sport: f.cport < 0 ? null : f.cport,
    dst: address(f.v, f.r0, f.r1, f.r2, f.r3),
    dport: f.rport < 0 ? null : f.rport,
    start: new Date(f.start).toISOString(),
    end,
    bytesUp: f.bytesUp,
    bytesDown: f.bytesDown,
    packetsUp: f.packetsUp,
    packetsDown: f.packetsDown,
    verdict: f.deny ? "deny" : "allow",
  };
  return JSON.stringify(record);
}
