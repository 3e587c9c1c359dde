/** The audit's flow table (agent/audit.ts): flows from crafted packets, one line each. */
import assert from "node:assert/strict";
import fc from "fast-check";
import { type AuditLimits, type AuditRecord, FlowAudit } from "../../agent/audit.ts";
import { parseIPv6 } from "../../ffi/struct.ts";
import { ipv4, udpPacket } from "./helpers.ts";
import { icmp6Echo } from "./helpers6.ts";

const T0 = Date.parse("2025-01-02T03:04:05.000Z");
const ALICE = { arn: "arn:aws:sts::123456789012:assumed-role/Dev/alice" };
const TUNNEL = { id: "0123456789abcdef0123456789abcdef", principal: ALICE };
const OTHER = { id: "fedcba9876543210fedcba9876543210" };

/** A FlowAudit on a clock the test moves, collecting parsed lines. */
function setup(limits?: Partial<AuditLimits>) {
  const clock = { t: T0 };
  const lines: AuditRecord[] = [];
  const audit = new FlowAudit({
    write: (l) => lines.push(JSON.parse(l)),
    now: () => clock.t,
    limits,
  });
  return { audit, lines, clock, at: (ms: number) => (clock.t = T0 + ms) };
}

const SYN = 0x02, ACK = 0x10, FIN = 0x01, RST = 0x04, PSH = 0x08;

/** IPv4 TCP: a 20-byte header, then `data` bytes. Checksums are not the audit's business. */
function tcp4(src: string, dst: string, sport: number, dport: number, flags: number, data = 0) {
  const p = new Uint8Array(40 + data);
  p[0] = 0x45;
  new DataView(p.buffer).setUint16(2, p.length);
  p[8] = 64;
  p[9] = 6;
  p.set(ipv4(src), 12);
  p.set(ipv4(dst), 16);
  l4tcp(p, 20, sport, dport, flags);
  return p;
}

function l4tcp(p: Uint8Array, at: number, sport: number, dport: number, flags: number) {
  const v = new DataView(p.buffer, p.byteOffset);
  v.setUint16(at, sport);
  v.setUint16(at + 2, dport);
  p[at + 12] = 0x50;
  p[at + 13] = flags;
}

/** IPv6 TCP, with a hop-by-hop options header in front when `hop`. */
function tcp6(src: string, dst: string, sport: number, dport: number, flags: number, hop = false) {
  const ext = hop ? 8 : 0;
  const p = new Uint8Array(40 + ext + 20 + 10);
  p[0] = 0x60;
  new DataView(p.buffer).setUint16(4, p.length - 40);
  p[6] = hop ? 0 : 6;
  p[7] = 64;
  p.set(parseIPv6(src)!, 8);
  p.set(parseIPv6(dst)!, 24);
  if (hop) p[40] = 6;
  l4tcp(p, 40 + ext, sport, dport, flags);
  return p;
}

function icmp4Echo(src: string, dst: string, id: number, seq: number, type = 8) {
  const p = new Uint8Array(20 + 8 + 32);
  p[0] = 0x45;
  new DataView(p.buffer).setUint16(2, p.length);
  p[9] = 1;
  p.set(ipv4(src), 12);
  p.set(ipv4(dst), 16);
  p[20] = type;
  new DataView(p.buffer).setUint16(24, id);
  new DataView(p.buffer).setUint16(26, seq);
  return p;
}

const C = "100.64.0.2", S = "10.0.1.5";

Deno.test("a TCP connection: handshake, data, FIN both ways → one line, 10 s after the last", () => {
  const { audit, lines, at } = setup();
  const up = (flags: number, data = 0) =>
    audit.packet(TUNNEL, tcp4(C, S, 40000, 443, flags, data), "up", "allow");
  const down = (flags: number, data = 0) =>
    audit.packet(TUNNEL, tcp4(S, C, 443, 40000, flags, data), "down", "allow");
  up(SYN);
  at(10);
  down(SYN | ACK);
  at(20);
  up(ACK);
  up(ACK | PSH, 300);
  at(50);
  down(ACK | PSH, 1000);
  down(ACK | PSH, 1000);
  at(60);
  up(ACK | FIN);
  at(70);
  down(ACK | FIN);
  at(80);
  up(ACK);
  assert.equal(audit.flows, 1);
  at(80 + 9_999);
  audit.sweep();
  assert.equal(lines.length, 0, "closed flows linger 10 s for stray packets");
  at(80 + 10_000);
  audit.sweep();
  assert.deepEqual(lines, [{
    time: new Date(T0 + 80).toISOString(),
    principal: ALICE.arn,
    tunnel: "01234567",
    proto: "tcp",
    src: C,
    sport: 40000,
    dst: S,
    dport: 443,
    start: new Date(T0).toISOString(),
    end: new Date(T0 + 80).toISOString(),
    bytesUp: 40 * 5 + 300,
    bytesDown: 40 * 4 + 2000,
    packetsUp: 5,
    packetsDown: 4,
    verdict: "allow",
  }]);
  assert.equal(audit.flows, 0);
});

Deno.test("TCP without FIN lasts 5 min idle; an RST ends it 10 s later", () => {
  const { audit, lines, at } = setup();
  audit.packet(TUNNEL, tcp4(C, S, 40001, 22, SYN), "up", "allow");
  audit.packet(TUNNEL, tcp4(C, S, 40002, 22, SYN), "up", "allow");
  at(1_000);
  audit.packet(TUNNEL, tcp4(S, C, 22, 40002, RST | ACK), "down", "allow");
  at(11_000);
  audit.sweep();
  assert.deepEqual(lines.map((l) => l.sport), [40002]);
  at(300_000 - 1);
  audit.sweep();
  assert.equal(lines.length, 1);
  at(300_000);
  audit.sweep();
  assert.deepEqual(lines.map((l) => l.sport), [40002, 40001]);
  // FIN one way only is a half-close, not the end.
  audit.packet(TUNNEL, tcp4(C, S, 40003, 22, FIN | ACK), "up", "allow");
  at(300_000 + 60_000);
  audit.sweep();
  assert.equal(lines.length, 2);
});

Deno.test("UDP flows end after 60 s idle, each on its own clock", () => {
  const { audit, lines, at } = setup();
  const query = (sport: number, payload = "q") =>
    audit.packet(TUNNEL, udpPacket(C, "10.0.0.2", sport, 53, payload), "up", "allow");
  query(5000);
  query(5001);
  audit.packet(TUNNEL, udpPacket("10.0.0.2", C, 53, 5000, "answer"), "down", "allow");
  for (let s = 10; s <= 70; s += 10) {
    at(s * 1000);
    query(5001);
    audit.sweep();
  }
  assert.equal(lines.length, 1);
  assert.equal(lines[0].sport, 5000);
  assert.equal(lines[0].proto, "udp");
  assert.equal(lines[0].bytesUp, 29);
  assert.equal(lines[0].bytesDown, 34);
  assert.equal(lines[0].end, new Date(T0).toISOString());
  at(70_000 + 59_999);
  audit.sweep();
  assert.equal(lines.length, 1);
  at(70_000 + 60_000);
  audit.sweep();
  assert.equal(lines[1].sport, 5001);
  assert.equal(lines[1].packetsUp, 8);
});

Deno.test("a denied SYN retransmitted is one deny line; allowed packets of the tuple another", () => {
  const { audit, lines, at } = setup();
  for (const s of [0, 1, 3, 7]) {
    at(s * 1000);
    audit.packet(TUNNEL, tcp4(C, "169.254.169.254", 41000, 80, SYN), "up", "deny");
    audit.sweep();
  }
  assert.equal(lines.length, 0);
  at(7_000 + 300_000);
  audit.sweep();
  assert.equal(lines.length, 1);
  assert.equal(lines[0].verdict, "deny");
  assert.equal(lines[0].packetsUp, 4);
  assert.equal(lines[0].bytesUp, 160);
  assert.equal(lines[0].bytesDown, 0);
  assert.equal(lines[0].dst, "169.254.169.254");

  // A policy refresh halfway: the same tuple's allowed and denied packets are two flows.
  audit.packet(TUNNEL, tcp4(C, S, 42000, 443, SYN), "up", "allow");
  audit.packet(TUNNEL, tcp4(C, S, 42000, 443, ACK), "up", "deny");
  audit.packet(TUNNEL, tcp4(C, S, 42000, 443, ACK), "up", "allow");
  audit.packet(TUNNEL, tcp4(C, S, 42000, 443, ACK), "up", "deny");
  audit.close();
  assert.deepEqual(lines.slice(1).map((l) => [l.verdict, l.packetsUp]), [["allow", 2], [
    "deny",
    2,
  ]]);
});

Deno.test("ICMP echo: request and reply are one flow per echo id", () => {
  const { audit, lines, at } = setup();
  for (let seq = 1; seq <= 3; seq++) {
    at(seq * 1000);
    audit.packet(TUNNEL, icmp4Echo(C, S, 77, seq), "up", "allow");
    audit.packet(TUNNEL, icmp4Echo(S, C, 77, seq, 0), "down", "allow");
  }
  audit.packet(TUNNEL, icmp4Echo(C, S, 78, 1), "up", "allow");
  const a = "fd7a:5353:5d8b::2", b = "2600:1f18::1";
  audit.packet(TUNNEL, icmp6Echo(a, b, 9, 1), "up", "allow");
  audit.packet(TUNNEL, icmp6Echo(b, a, 9, 1, "ping6", 129), "down", "allow");
  assert.equal(audit.flows, 3);
  at(3_000 + 29_999);
  audit.sweep();
  assert.equal(lines.length, 0);
  at(3_000 + 30_000);
  audit.sweep();
  assert.deepEqual(
    lines.map((l) => [l.proto, l.src, l.sport, l.dst, l.dport, l.packetsUp, l.packetsDown]),
    [
      ["icmp", C, 77, S, null, 3, 3],
      ["icmp", C, 78, S, null, 1, 0],
      ["icmpv6", a, 9, b, null, 1, 1],
    ],
  );
});

Deno.test("IPv6 TCP behind a hop-by-hop header: one flow both ways, addresses compressed", () => {
  const { audit, lines } = setup();
  const a = "fd7a:5353:5d8b:0:0:0:0:2", b = "2600:1f18:0:0:0:0:0:1";
  audit.packet(TUNNEL, tcp6(a, b, 50000, 443, SYN, true), "up", "allow");
  audit.packet(TUNNEL, tcp6(b, a, 443, 50000, SYN | ACK), "down", "allow");
  audit.packet(TUNNEL, tcp6(a, b, 50000, 443, ACK), "up", "allow");
  // Same ports, other address: another flow.
  audit.packet(TUNNEL, tcp6(a, "2600:1f18::2", 50000, 443, SYN), "up", "allow");
  audit.close();
  assert.deepEqual(lines.map((l) => [l.src, l.sport, l.dst, l.dport, l.packetsUp, l.packetsDown]), [
    ["fd7a:5353:5d8b::2", 50000, "2600:1f18::1", 443, 2, 1],
    ["fd7a:5353:5d8b::2", 50000, "2600:1f18::2", 443, 1, 0],
  ]);
  assert.equal(lines[0].bytesUp, 78 + 70);
});

Deno.test("IPv4 fragments: later fragments join their first fragment's flow", () => {
  const { audit, lines } = setup();
  const first = udpPacket(C, S, 6000, 4789, new Uint8Array(1000));
  first[4] = 0x12, first[5] = 0x34;
  first[6] = 0x20; // more fragments
  const later = new Uint8Array(500);
  later.set(first.subarray(0, 20));
  later[6] = 0x00, later[7] = 1000 / 8; // offset, last fragment
  audit.packet(TUNNEL, first, "up", "allow");
  audit.packet(TUNNEL, later, "up", "allow");
  // A fragment whose first we never saw: a flow without ports.
  const orphan = later.slice();
  orphan[5] = 0x99;
  audit.packet(TUNNEL, orphan, "up", "allow");
  audit.close();
  assert.deepEqual(lines.map((l) => [l.sport, l.dport, l.packetsUp, l.bytesUp]), [
    [6000, 4789, 2, first.length + 500],
    [null, null, 1, 500],
  ]);
});

/** IPv6 fragment of a UDP datagram: offset in 8-byte units; the first carries the UDP ports. */
function frag6(id: number, offset: number, more: boolean, size: number) {
  const p = new Uint8Array(size);
  p[0] = 0x60;
  new DataView(p.buffer).setUint16(4, size - 40);
  p[6] = 44;
  p.set(parseIPv6("fd7a::2")!, 8);
  p.set(parseIPv6("2600::53")!, 24);
  p[40] = 17;
  new DataView(p.buffer).setUint16(42, (offset << 3) | (more ? 1 : 0));
  new DataView(p.buffer).setUint32(44, id);
  if (offset === 0) new DataView(p.buffer).setUint16(48, 7000), p[51] = 53;
  return p;
}

Deno.test("IPv6 fragments: the fragment header's id links later fragments to the first", () => {
  const { audit, lines } = setup();
  audit.packet(TUNNEL, frag6(0xdeadbeef, 0, true, 1280), "up", "allow");
  audit.packet(TUNNEL, frag6(0xdeadbeef, 154, false, 300), "up", "allow");
  audit.packet(TUNNEL, frag6(0xdeadbeee, 154, false, 200), "up", "allow");
  // Denied later fragment (a port rule cannot judge it): its own, portless deny flow.
  audit.packet(TUNNEL, frag6(0xdeadbeef, 154, false, 100), "up", "deny");
  audit.close();
  assert.deepEqual(lines.map((l) => [l.proto, l.sport, l.dport, l.bytesUp, l.verdict]), [
    ["udp", 7000, 53, 1580, "allow"],
    ["udp", null, null, 200, "allow"],
    ["udp", null, null, 100, "deny"],
  ]);
});

Deno.test("the table is bounded: the least recently active flow ends early, and is counted", () => {
  const { audit, lines } = setup({ maxFlows: 3 });
  const syn = (port: number) => audit.packet(TUNNEL, tcp4(C, S, 30000, port, SYN), "up", "deny");
  syn(1);
  syn(2);
  syn(3);
  syn(1); // 1 is now the most recent
  syn(4);
  syn(5);
  assert.equal(audit.flows, 3);
  assert.equal(audit.evicted, 2);
  assert.deepEqual(lines.map((l) => l.dport), [2, 3]);
  for (let port = 100; port < 1100; port++) syn(port);
  assert.equal(audit.flows, 3);
  assert.equal(audit.evicted, 1002);
  audit.close();
  assert.equal(lines.length, 1005);
  assert.equal(lines.reduce((n, l) => n + l.packetsUp, 0), 1006);
});

Deno.test("end(tunnel) writes that tunnel's flows only; close() writes the rest and stops", () => {
  const { audit, lines } = setup();
  audit.packet(TUNNEL, udpPacket(C, S, 1, 2), "up", "allow");
  audit.packet(OTHER, udpPacket("100.64.0.3", S, 1, 2), "up", "allow");
  // Unsolicited from the VPC: still a flow, with the tunnel's side as src.
  audit.packet(OTHER, udpPacket(S, "100.64.0.3", 9, 7), "down", "allow");
  audit.end(OTHER.id);
  assert.deepEqual(lines.map((l) => [l.tunnel, l.principal, l.src, l.sport, l.bytesDown]), [
    ["fedcba98", null, "100.64.0.3", 1, 0],
    ["fedcba98", null, "100.64.0.3", 7, 29],
  ]);
  audit.end("no such tunnel");
  audit.close();
  assert.equal(lines.length, 3);
  assert.equal(lines[2].principal, ALICE.arn);
  audit.packet(TUNNEL, udpPacket(C, S, 1, 2), "up", "allow");
  audit.close();
  assert.equal(lines.length, 3);
});

Deno.test("bytes that are not IP still count, in a flow without addresses", () => {
  const { audit, lines } = setup();
  audit.packet(TUNNEL, new Uint8Array([0x45, 1, 2]), "up", "allow");
  audit.packet(TUNNEL, new Uint8Array(0), "up", "allow");
  audit.close();
  assert.deepEqual(lines.map((l) => [l.proto, l.src, l.dst, l.bytesUp, l.packetsUp]), [
    [null, null, null, 3, 2],
  ]);
});

Deno.test("the default clock is read once per batch and again in the next one", async () => {
  const lines: AuditRecord[] = [];
  const audit = new FlowAudit({ write: (l) => lines.push(JSON.parse(l)) });
  const before = Date.now();
  audit.packet(TUNNEL, udpPacket(C, S, 1, 2), "up", "allow");
  await new Promise((r) => setTimeout(r, 30));
  audit.packet(TUNNEL, udpPacket(C, S, 1, 2), "up", "allow");
  audit.close();
  const start = Date.parse(lines[0].start), end = Date.parse(lines[0].end);
  assert.ok(start >= before && start <= before + 20, `${start - before}`);
  assert.ok(end - start >= 25, `a later batch got a fresh time: ${end - start} ms`);
});

// Arbitrary bytes, and real packets mutated, in both directions, from two tunnels.
const arbPacket = fc.oneof(
  fc.uint8Array({ maxLength: 80 }),
  fc.tuple(
    fc.constantFrom(
      tcp4(C, S, 1, 2, SYN),
      udpPacket(C, S, 3, 4),
      icmp4Echo(C, S, 5, 6),
      tcp6("fd7a::2", "2600::1", 7, 8, ACK, true),
      icmp6Echo("fd7a::2", "2600::1", 9, 10),
    ),
    fc.array(fc.tuple(fc.nat(100), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
    fc.nat(120),
  ).map(([p, edits, cut]) => {
    const q = p.slice(0, cut);
    for (const [i, b] of edits) if (i < q.length) q[i] = b;
    return q;
  }),
);
const arbStep = fc.record({
  p: arbPacket,
  other: fc.boolean(),
  down: fc.boolean(),
  deny: fc.boolean(),
  advance: fc.nat(40_000),
  sweep: fc.boolean(),
  end: fc.nat(30),
});

Deno.test("property: never throws, and every byte and packet fed is in exactly one line", () => {
  fc.assert(
    fc.property(fc.array(arbStep, { maxLength: 60 }), fc.integer({ min: 1, max: 8 }), (
      steps,
      maxFlows,
    ) => {
      const { audit, lines, clock } = setup({ maxFlows });
      let bytes = 0;
      for (const s of steps) {
        clock.t += s.advance;
        const t = s.other ? OTHER : TUNNEL;
        audit.packet(t, s.p, s.down ? "down" : "up", s.deny ? "deny" : "allow");
        bytes += s.p.length;
        if (s.sweep) audit.sweep();
        if (s.end === 0) audit.end(t.id);
        assert.ok(audit.flows <= maxFlows);
      }
      audit.close();
      assert.equal(audit.flows, 0);
      assert.equal(lines.reduce((n, l) => n + l.bytesUp + l.bytesDown, 0), bytes);
      assert.equal(lines.reduce((n, l) => n + l.packetsUp + l.packetsDown, 0), steps.length);
      for (const l of lines) {
        assert.ok(l.packetsUp + l.packetsDown > 0);
        assert.ok(l.start <= l.end && l.time === l.end);
        assert.match(l.tunnel, /^[0-9a-f]{8}$/);
      }
    }),
    { numRuns: 300 },
  );
});
