/**
 * Address rewriting for spread tunnels: the IPv4, TCP and UDP checksums stay valid (checked from
 * scratch, not by the same incremental arithmetic), ICMP errors' quoted headers follow, and
 * packets not from the address asked for are left alone.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  adjustChecksum,
  fromInstance,
  ipv4Number,
  rewriteAddress,
  toInstance,
} from "../../src/tunnel/nat.ts";

const A = ipv4Number("100.64.0.2");
const B = ipv4Number("100.65.0.7");
const VPC = ipv4Number("10.99.3.10");

function sum(b: Uint8Array, s = 0): number {
  for (let i = 0; i < b.length; i += 2) s += (b[i] << 8) | (b[i + 1] ?? 0);
  return s;
}

function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

function checksum(b: Uint8Array, s = 0): number {
  return ~fold(sum(b, s)) & 0xffff;
}

/** The pseudo-header sum of the IPv4 packet at `ip` for `len` bytes of its transport. */
function pseudo(p: Uint8Array, ip: number, len: number): number {
  return sum(p.subarray(ip + 12, ip + 20)) + p[ip + 9] + len;
}

const put16 = (p: Uint8Array, at: number, v: number) => {
  p[at] = v >> 8;
  p[at + 1] = v & 0xff;
};
const put32 = (p: Uint8Array, at: number, v: number) => {
  put16(p, at, v >>> 16);
  put16(p, at + 2, v & 0xffff);
};
const get32 = (p: Uint8Array, at: number) =>
  ((p[at] << 24) | (p[at + 1] << 16) | (p[at + 2] << 8) | p[at + 3]) >>> 0;

interface Spec {
  proto: 1 | 6 | 17;
  src: number;
  dst: number;
  payload: Uint8Array;
  /** UDP only: send without a checksum (0). */
  noUdpSum?: boolean;
  /** IPv4 options (multiple of 4 bytes). */
  options?: number;
  icmpType?: number;
}

/** A packet with every checksum right, computed from scratch. */
function build(s: Spec): Uint8Array {
  const ihl = 20 + (s.options ?? 0);
  const l4len = (s.proto === 6 ? 20 : 8) + s.payload.length;
  const p = new Uint8Array(ihl + l4len);
  p[0] = 0x40 | (ihl / 4);
  put16(p, 2, p.length);
  put16(p, 4, 0x4242);
  p[8] = 64;
  p[9] = s.proto;
  put32(p, 12, s.src);
  put32(p, 16, s.dst);
  for (let i = 20; i < ihl; i++) p[i] = 1; // NOP options
  p.set(s.payload, ihl + l4len - s.payload.length);
  if (s.proto === 6) {
    put16(p, ihl, 40000);
    put16(p, ihl + 2, 5432);
    p[ihl + 12] = 0x50;
    p[ihl + 13] = 0x18;
    put16(p, ihl + 16, checksum(p.subarray(ihl), pseudo(p, 0, l4len)));
  } else if (s.proto === 17) {
    put16(p, ihl, 40000);
    put16(p, ihl + 2, 53);
    put16(p, ihl + 4, l4len);
    if (!s.noUdpSum) put16(p, ihl + 6, checksum(p.subarray(ihl), pseudo(p, 0, l4len)) || 0xffff);
  } else {
    p[ihl] = s.icmpType ?? 8;
    put16(p, ihl + 2, checksum(p.subarray(ihl)));
  }
  put16(p, 10, checksum(p.subarray(0, ihl)));
  return p;
}

/** An ICMP error from `from` to `to`, quoting `original` whole. */
function icmpError(from: number, to: number, original: Uint8Array, type = 3): Uint8Array {
  const p = new Uint8Array(20 + 8 + original.length);
  p[0] = 0x45;
  put16(p, 2, p.length);
  p[8] = 64;
  p[9] = 1;
  put32(p, 12, from);
  put32(p, 16, to);
  p[20] = type;
  p[21] = type === 3 ? 4 : 0; // fragmentation needed
  put16(p, 26, 1300);
  p.set(original, 28);
  put16(p, 22, checksum(p.subarray(20)));
  put16(p, 10, checksum(p.subarray(0, 20)));
  return p;
}

/** Every checksum in the packet verifies (and the quoted datagram's, for an ICMP error). */
function assertValid(p: Uint8Array, ip = 0, end = p.length, quote = false): void {
  const ihl = (p[ip] & 0x0f) * 4;
  assert.equal(fold(sum(p.subarray(ip, ip + ihl))), 0xffff, "IPv4 header checksum");
  const frag = ((p[ip + 6] & 0x1f) << 8) | p[ip + 7];
  const l4 = p.subarray(ip + ihl, end);
  const proto = p[ip + 9];
  if (frag !== 0) return;
  // A quoted datagram is the whole original here, so its transport checksum verifies too.
  if (proto === 6) {
    assert.equal(fold(sum(l4, pseudo(p, ip, l4.length))), 0xffff, "TCP checksum");
  } else if (proto === 17) {
    const c = (l4[6] << 8) | l4[7];
    if (c !== 0) assert.equal(fold(sum(l4, pseudo(p, ip, l4.length))), 0xffff, "UDP checksum");
  } else if (proto === 1 && !quote) {
    assert.equal(fold(sum(l4)), 0xffff, "ICMP checksum");
    if ([3, 11].includes(l4[0])) assertValid(p, ip + ihl + 8, end, true);
  }
}

Deno.test("nat: adjustChecksum matches a checksum computed from scratch", () => {
  const p = build({ proto: 17, src: A, dst: VPC, payload: new Uint8Array([1, 2, 3]) });
  const before = (p[10] << 8) | p[11];
  const after = adjustChecksum(before, [A >>> 16, A & 0xffff], [B >>> 16, B & 0xffff]);
  put32(p, 12, B);
  put16(p, 10, 0);
  assert.equal(after, checksum(p.subarray(0, 20)));
});

Deno.test("nat: TCP out and back: addresses swapped, checksums valid, payload untouched", () => {
  const payload = new TextEncoder().encode("SELECT 1;");
  const p = build({ proto: 6, src: A, dst: VPC, payload });
  const orig = p.slice();
  assert.equal(toInstance(p, A, B), true);
  assert.equal(get32(p, 12), B);
  assert.equal(get32(p, 16), VPC);
  assertValid(p);
  assert.deepEqual(p.subarray(40), orig.subarray(40));
  // The answer comes back to B and is handed to the tun as A.
  const answer = build({ proto: 6, src: VPC, dst: B, payload });
  assert.equal(fromInstance(answer, B, A), true);
  assert.equal(get32(answer, 16), A);
  assertValid(answer);
  // Rewriting back restores the original bytes exactly.
  assert.equal(toInstance(p, B, A), true);
  assert.deepEqual(p, orig);
});

Deno.test("nat: UDP without a checksum keeps none; with one it never becomes 0", () => {
  const none = build({ proto: 17, src: A, dst: VPC, payload: new Uint8Array(5), noUdpSum: true });
  toInstance(none, A, B);
  assert.equal((none[26] << 8) | none[27], 0);
  assertValid(none);
  // Find a payload whose UDP checksum after the rewrite would be 0: it must go out as 0xffff.
  let hit = false;
  for (let n = 0; n < 70_000 && !hit; n++) {
    const p = build({ proto: 17, src: A, dst: VPC, payload: new Uint8Array([n >> 8, n & 0xff]) });
    toInstance(p, A, B);
    assert.notEqual((p[26] << 8) | p[27], 0, "a UDP checksum of 0 means none");
    assertValid(p);
    const scratch = p.slice();
    put16(scratch, 26, 0);
    hit = checksum(scratch.subarray(20), pseudo(scratch, 0, 10)) === 0;
  }
  assert.ok(hit, "some payload computes to a zero checksum");
});

Deno.test("nat: a packet not from the address asked for is left alone", () => {
  const p = build({ proto: 6, src: VPC, dst: A, payload: new Uint8Array(4) });
  const orig = p.slice();
  assert.equal(toInstance(p, A, B), false);
  assert.equal(fromInstance(p, B, A), false);
  assert.equal(toInstance(p, A, A), false);
  assert.deepEqual(p, orig);
  assert.equal(rewriteAddress(new Uint8Array(10), 12, 0, 1), false, "short: not IPv4");
});

Deno.test("nat: a later fragment gets its IPv4 header fixed only", () => {
  const p = build({ proto: 17, src: A, dst: VPC, payload: new Uint8Array(16).fill(7) });
  put16(p, 6, 185); // offset 185*8, no transport header in this fragment
  put16(p, 10, 0);
  put16(p, 10, checksum(p.subarray(0, 20)));
  const l4 = p.slice(20);
  toInstance(p, A, B);
  assert.deepEqual(p.subarray(20), l4);
  assertValid(p);
});

Deno.test("nat: ICMP fragmentation-needed for a flow on B: quote rewritten to A, all valid", () => {
  const sent = build({ proto: 6, src: B, dst: VPC, payload: new Uint8Array(100).fill(9) });
  const router = ipv4Number("10.99.3.1");
  const err = icmpError(router, B, sent);
  assert.equal(fromInstance(err, B, A), true);
  assert.equal(get32(err, 16), A, "outer destination");
  assert.equal(get32(err, 28 + 12), A, "quoted source: the laptop's socket matches it");
  assert.equal(get32(err, 28 + 16), VPC);
  assertValid(err);
  // And the laptop's own ICMP error about a packet from the VPC goes out with the quote's dst B.
  const got = build({ proto: 17, src: VPC, dst: A, payload: new Uint8Array(3) });
  const mine = icmpError(A, VPC, got);
  assert.equal(toInstance(mine, A, B), true);
  assert.equal(get32(mine, 12), B);
  assert.equal(get32(mine, 28 + 16), B);
  assertValid(mine);
});

Deno.test("nat: property: any TCP/UDP/ICMP packet stays valid both ways", () => {
  const addr = fc.integer({ min: 1, max: 0xffffffff });
  fc.assert(
    fc.property(
      fc.record({
        proto: fc.constantFrom(1 as const, 6 as const, 17 as const),
        a: addr,
        b: addr,
        peer: addr,
        payload: fc.uint8Array({ maxLength: 300 }),
        noUdpSum: fc.boolean(),
        options: fc.constantFrom(0, 4, 8, 40),
        quoteIt: fc.boolean(),
      }),
      (r) => {
        fc.pre(r.a !== r.b && r.peer !== r.a && r.peer !== r.b);
        const { proto, payload, noUdpSum, options } = r;
        const mk = (src: number, dst: number) =>
          build({ proto, payload, noUdpSum, options, src, dst });
        const out = r.quoteIt ? icmpError(r.a, r.peer, mk(r.peer, r.a)) : mk(r.a, r.peer);
        const orig = out.slice();
        assert.equal(toInstance(out, r.a, r.b), true);
        assert.equal(get32(out, 12), r.b);
        if (r.quoteIt) assert.equal(get32(out, 28 + 16), r.b);
        assertValid(out);
        const back = r.quoteIt ? icmpError(r.peer, r.b, mk(r.b, r.peer), 11) : mk(r.peer, r.b);
        assert.equal(fromInstance(back, r.b, r.a), true);
        assert.equal(get32(back, 16), r.a);
        if (r.quoteIt) assert.equal(get32(back, 28 + 12), r.a);
        assertValid(back);
        // Out and back again: valid, and the same addresses and payload as sent.
        toInstance(out, r.b, r.a);
        assertValid(out);
        assert.deepEqual(out.subarray(12, 20), orig.subarray(12, 20));
        assert.deepEqual(
          out.subarray(-payload.length || out.length),
          orig.subarray(-payload.length || orig.length),
        );
      },
    ),
    { numRuns: 2000 },
  );
});
