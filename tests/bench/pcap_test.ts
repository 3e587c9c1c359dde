import assert from "node:assert/strict";
import { findEchoes, sightings, unmaskWebSocket } from "../../bench/pcap.ts";

const PATTERN = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);

/** An ICMP echo as iputils ping builds it: header, 16-byte timeval, then the pattern. */
function echo(type: number, seq: number): Uint8Array {
  const icmp = new Uint8Array(8 + 16 + 32);
  icmp[0] = type;
  icmp[6] = seq >> 8;
  icmp[7] = seq & 255;
  icmp.fill(7, 8, 24);
  icmp.set(PATTERN, 24);
  icmp.set(PATTERN, 40);
  return icmp;
}

function ipv4(proto: number, body: Uint8Array): Uint8Array {
  const p = new Uint8Array(20 + body.length);
  p[0] = 0x45;
  p[9] = proto;
  p.set(body, 20);
  return p;
}

function tcp(sport: number, dport: number, payload: Uint8Array): Uint8Array {
  const t = new Uint8Array(20 + payload.length);
  t.set([sport >> 8, sport & 255, dport >> 8, dport & 255]);
  t[12] = 5 << 4;
  t.set(payload, 20);
  return t;
}

/** A masked client WebSocket frame around `payload`. */
function maskedFrame(payload: Uint8Array): Uint8Array {
  const key = [0x11, 0x22, 0x33, 0x44];
  const f = new Uint8Array(2 + 2 + 4 + payload.length);
  f.set([0x82, 0x80 | 126, payload.length >> 8, payload.length & 255, ...key]);
  payload.forEach((b, i) => (f[8 + i] = b ^ key[i & 3]));
  return f;
}

Deno.test("pcap: a bare echo request is found with its sequence number", () => {
  assert.deepEqual(findEchoes(ipv4(1, echo(8, 513)), PATTERN), [
    { icmpType: 8, seq: 513, carrier: "icmp" },
  ]);
  assert.deepEqual(findEchoes(ipv4(1, echo(3, 1)), PATTERN), []); // not an echo
});

Deno.test("pcap: an echo inside a TCP stream and inside a masked WebSocket frame", () => {
  const inner = ipv4(1, echo(0, 9));
  const framed = new Uint8Array([0, 0, 0, 0, ...inner]); // our tunnel framing, say
  assert.deepEqual(findEchoes(ipv4(6, tcp(7797, 40000, framed)), PATTERN), [
    { icmpType: 0, seq: 9, carrier: "tcp", sport: 7797, dport: 40000 },
  ]);
  const masked = maskedFrame(framed);
  assert.deepEqual(unmaskWebSocket(masked), framed);
  assert.deepEqual(findEchoes(ipv4(6, tcp(40000, 4566, masked)), PATTERN), [
    { icmpType: 0, seq: 9, carrier: "tcp", sport: 40000, dport: 4566 },
  ]);
});

Deno.test("pcap: a nanosecond LINUX_SLL2 capture yields timestamps and interfaces", () => {
  const pkt = ipv4(1, echo(8, 4));
  const head = new Uint8Array(24);
  const hv = new DataView(head.buffer);
  hv.setUint32(0, 0xa1b23c4d, true);
  hv.setUint32(20, 276, true);
  const rec = new Uint8Array(16 + 20 + pkt.length);
  const rv = new DataView(rec.buffer);
  rv.setUint32(0, 1000, true);
  rv.setUint32(4, 123, true);
  rv.setUint32(8, 20 + pkt.length, true);
  rv.setUint32(12, 20 + pkt.length, true);
  rv.setUint16(16, 0x0800);
  rv.setInt32(20, 5);
  rec.set(pkt, 36);
  const file = new Uint8Array([...head, ...rec]);
  assert.deepEqual(sightings(file, PATTERN), [
    { ns: 1000_000_000_123n, ifindex: 5, icmpType: 8, seq: 4, carrier: "icmp" },
  ]);
});
