import assert from "node:assert/strict";
import fc from "fast-check";
import {
  getId,
  isRelayableQuery,
  maxUdpSize,
  optUdpSize,
  servfail,
  setId,
  truncate,
  withId,
} from "../../src/netstack/dns_message.ts";

import { answer, opt, qname, query, u16 } from "./support/dns_wire.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

Deno.test("dns message: a plain query and an EDNS query are relayable", () => {
  assert.equal(isRelayableQuery(query(0x1234, "example.com")), true);
  assert.equal(isRelayableQuery(query(0, "example.com", { edns: 1232 })), true);
  assert.equal(isRelayableQuery(query(0, ".")), true, "the root name");
});

Deno.test("dns message: every truncation of a query is refused", () => {
  const q = query(7, "www.example.com");
  for (let n = 0; n < q.length; n++) {
    assert.equal(isRelayableQuery(q.subarray(0, n)), false, `${n}`);
  }
});

Deno.test("dns message: responses, other opcodes, QDCOUNT ≠ 1 and pointers are refused", () => {
  const q = query(7, "example.com");
  const with_ = (at: number, v: number) => {
    const m = q.slice();
    m[at] = v;
    return m;
  };
  assert.equal(isRelayableQuery(with_(2, 0x81)), false, "QR = 1");
  assert.equal(isRelayableQuery(with_(2, 0x10)), false, "opcode 2 (STATUS)");
  assert.equal(isRelayableQuery(with_(2, 0x28)), false, "opcode 5 (UPDATE)");
  assert.equal(isRelayableQuery(with_(5, 0)), false, "QDCOUNT 0");
  assert.equal(isRelayableQuery(with_(5, 2)), false, "QDCOUNT 2");
  const ptr = new Uint8Array([...q.subarray(0, 12), 3, 0x77, 0x77, 0x77, 0xc0, 12, 0, 1, 0, 1]);
  assert.equal(isRelayableQuery(ptr), false, "compression pointer in the question");
  const ext = new Uint8Array([...q.subarray(0, 12), 0x41, 0, 0, 1, 0, 1]);
  assert.equal(isRelayableQuery(ext), false, "extended label type 0x40");
  // 4 labels of 63 + length bytes = 256 > 254: one byte over the RFC 1035 limit.
  const l63 = "a".repeat(63);
  assert.equal(isRelayableQuery(query(1, [l63, l63, l63, l63].join("."))), false);
  assert.equal(isRelayableQuery(query(1, [l63, l63, l63, "a".repeat(61)].join("."))), true);
});

Deno.test("dns message: maxUdp is 512 without OPT, max(512, CLASS) with it, capped by the MTU", () => {
  assert.equal(maxUdpSize(query(1, "a.example"), 1500, 4), 512);
  assert.equal(maxUdpSize(query(1, "a.example", { edns: 1232 }), 1500, 4), 1232);
  assert.equal(maxUdpSize(query(1, "a.example", { edns: 4096 }), 1500, 4), 1472);
  assert.equal(maxUdpSize(query(1, "a.example", { edns: 4096 }), 1500, 6), 1452);
  assert.equal(maxUdpSize(query(1, "a.example", { edns: 4096 }), 1280, 6), 1232);
  assert.equal(
    maxUdpSize(query(1, "a.example", { edns: 100 }), 1500, 4),
    512,
    "below 512 means 512",
  );
  assert.equal(optUdpSize(query(1, "a.example")), undefined);
});

Deno.test("dns message: the OPT RR is found after other additional records, not in the answer section", () => {
  const q = query(1, "a.example");
  const other = [0xc0, 12, ...u16(1), ...u16(1), 0, 0, 0, 0, ...u16(4), 10, 0, 0, 1];
  const arFirst = new Uint8Array([...q, ...other, ...opt(1400)]);
  arFirst[11] = 2;
  assert.equal(optUdpSize(arFirst), 1400);
  const inAnswer = new Uint8Array([...q, ...opt(1400)]);
  inAnswer[7] = 1;
  assert.equal(optUdpSize(inAnswer), undefined);
  assert.equal(maxUdpSize(inAnswer, 1500, 4), 512);
  const lying = new Uint8Array([...q, ...other]);
  lying[11] = 2; // claims a second additional record that is not there
  assert.equal(optUdpSize(lying), undefined);
});

Deno.test("dns message: IDs are read, set in place and copied", () => {
  const q = query(0xbeef, "example.com");
  assert.equal(getId(q), 0xbeef);
  const c = withId(q, 0x0102)!;
  assert.equal(getId(c), 0x0102);
  assert.equal(getId(q), 0xbeef, "withId copies");
  assert.deepEqual(c.subarray(2), q.subarray(2));
  assert.equal(setId(q, 0xffff), true);
  assert.equal(hex(q.subarray(0, 2)), "ffff");
  assert.equal(getId(new Uint8Array(1)), undefined);
  assert.equal(setId(new Uint8Array(1), 1), false);
  assert.equal(withId(new Uint8Array(0), 1), undefined);
});

Deno.test("dns message: a 3000-byte answer truncates to header + question with TC", () => {
  const q = query(0x4242, "big.example.com", { edns: 1232 });
  const a = answer(q, 3000);
  assert.equal(a.length, 3000);
  const t = truncate(a)!;
  const qLen = 12 + qname("big.example.com").length + 4;
  assert.equal(t.length, qLen);
  assert.equal(getId(t), 0x4242);
  assert.equal(t[2], 0x81 | 0x02, "QR, RD kept; TC set");
  assert.equal(t[3], 0x80, "RA and RCODE kept");
  assert.equal(hex(t.subarray(4, 12)), "0001000000000000");
  assert.deepEqual(t.subarray(12), q.subarray(12, qLen), "question kept");
  assert.equal(a[2], 0x81, "the input is not modified");
});

Deno.test("dns message: truncate keeps a header-only answer (QDCOUNT 0) and refuses a broken one", () => {
  const formerr = new Uint8Array([0, 1, 0x80, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(hex(truncate(formerr)!), "0001820100000000" + "00000000");
  assert.equal(truncate(new Uint8Array(11)), undefined);
  const a = answer(query(1, "example.com"), 600);
  assert.equal(truncate(a.subarray(0, 20)), undefined, "question cut off");
});

Deno.test("dns message: servfail echoes ID, RD, CD and the question; sets QR, RA, RCODE 2", () => {
  const q = query(0xabcd, "example.com", { edns: 1232, flags: 0x0110 }); // RD + CD
  const s = servfail(q)!;
  const qLen = 12 + qname("example.com").length + 4;
  assert.equal(
    hex(s),
    "abcd" + "81" + "92" + "0001000000000000" + hex(q.subarray(12, qLen)),
  );
  assert.equal(servfail(new Uint8Array(5)), undefined);
  const noRd = servfail(query(1, "x", { flags: 0 }))!;
  assert.equal(hex(noRd.subarray(2, 4)), "8082");
});

Deno.test("dns message property: garbage never throws and yields the documented shapes", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), fc.integer({ min: 0, max: 9000 }), (m, mtu) => {
      const ok = isRelayableQuery(m);
      assert.equal(typeof ok, "boolean");
      const max = maxUdpSize(m, mtu, 4);
      assert.ok(max <= 512 || max <= mtu - 28);
      assert.ok(maxUdpSize(m, mtu, 6) <= Math.max(512, 0xffff));
      const t = truncate(m);
      if (t) assert.ok(t.length <= m.length && (t[2] & 0x02) === 0x02);
      const s = servfail(m);
      if (s) assert.ok(s.length <= m.length && (s[3] & 0x0f) === 2);
      if (ok) assert.ok(t && s, "a relayable query always has a question to copy");
    }),
    { numRuns: 2000 },
  );
});

Deno.test("dns message property: mutated queries never throw", () => {
  const base = fc.tuple(
    fc.integer({ min: 0, max: 0xffff }),
    fc.stringMatching(/^[a-z0-9]{1,20}(\.[a-z0-9]{1,20}){0,4}$/),
    fc.option(fc.integer({ min: 0, max: 0xffff }), { nil: undefined }),
  ).map(([id, name, edns]) => query(id, name, { edns }));
  fc.assert(
    fc.property(
      base,
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
      fc.nat(),
      (q, flips, cut) => {
        assert.equal(isRelayableQuery(q), true);
        const m = q.slice(0, q.length - (cut % 4));
        for (const [at, v] of flips) m[at % m.length] = v;
        isRelayableQuery(m);
        maxUdpSize(m, 1500, 6);
        truncate(m);
        servfail(m);
      },
    ),
    { numRuns: 2000 },
  );
});
