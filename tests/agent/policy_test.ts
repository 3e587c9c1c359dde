/**
 * The old `policy: {allow, deny}` form as the agent now judges it (rules.ts rulesOf, then
 * rules_compile.ts), and as the WELCOME tells it (policy.ts wirePolicy).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { ALWAYS_DENIED6, wirePolicy } from "../../agent/policy.ts";
import { cidrContains, formatCidr, parseCidr, parseIpv4 } from "../../agent/cidr.ts";
import { type Cidr6, contains6, DEFAULT_POOL6, parseCidr6 } from "../../agent/cidr6.ts";
import { parseDest, rulesOf } from "../../agent/rules.ts";
import { compile } from "../../agent/rules_compile.ts";
import { parseIPv6 } from "../../ffi/struct.ts";
import { UDP, v4Packet, v6Packet } from "./policy_packets.ts";

const ip = (s: string) => parseIpv4(s)!;
const pool = parseCidr("100.64.0.0/16")!;
const defaultPool6 = parseCidr6(DEFAULT_POOL6)!;

/** The old form's judgement, asked the old way: by destination. */
class Policy {
  readonly #decide;
  readonly #wire;

  constructor(allow: string[], deny: string[], p: typeof pool, pool6: Cidr6 = defaultPool6) {
    const rules = rulesOf({ allow, deny });
    this.#decide = compile(rules, undefined, { pool: p, pool6 });
    this.#wire = (ipv6: boolean) => wirePolicy(rules.rules, { pool: p, pool6 }, ipv6);
  }

  allows(dst: number): boolean {
    const p = v4Packet("0.0.0.0", UDP, 53);
    new DataView(p.buffer).setUint32(16, dst);
    return this.#decide(p) === "allow";
  }

  /** The IPv6 destination at `b[off..off+16]`. */
  allows6(b: Uint8Array, off: number): boolean {
    const p = v6Packet("::", UDP, 53);
    p.set(b.subarray(off, off + 16), 24);
    return this.#decide(p) === "allow";
  }

  toWire(ipv6 = false) {
    return this.#wire(ipv6);
  }
}

Deno.test("cidr: parse, format, contains", () => {
  assert.deepEqual(formatCidr(parseCidr("10.0.0.0/8")!), "10.0.0.0/8");
  assert.deepEqual(formatCidr(parseCidr("10.1.2.3")!), "10.1.2.3/32");
  assert.deepEqual(parseCidr("10.0.0.1/8"), undefined, "host bits set");
  assert.deepEqual(formatCidr(parseCidr("10.0.0.1/8", false)!), "10.0.0.0/8");
  for (const bad of ["10.0.0.0/33", "10.0.0/8", "256.0.0.0/8", "10.0.0.0/", "x", "01.0.0.0/8"]) {
    assert.deepEqual(parseCidr(bad), undefined, bad);
  }
  assert.ok(cidrContains(parseCidr("0.0.0.0/0")!, ip("255.255.255.255")));
  assert.ok(cidrContains(parseCidr("10.0.0.0/8")!, ip("10.255.0.1")));
  assert.ok(!cidrContains(parseCidr("10.0.0.0/8")!, ip("11.0.0.0")));
  assert.ok(cidrContains(parseCidr("192.168.1.7/32")!, ip("192.168.1.7")));
});

Deno.test("policy: defaults allow everything but the always-denied blocks and the pool", () => {
  const p = new Policy([], [], pool);
  for (const ok of ["10.0.0.5", "172.31.1.1", "8.8.8.8", "100.128.0.1"]) {
    assert.ok(p.allows(ip(ok)), ok);
  }
  for (
    const no of [
      "169.254.169.254",
      "169.254.169.253",
      "127.0.0.1",
      "0.1.2.3",
      "224.0.0.251",
      "239.1.1.1",
      "100.64.0.1",
      "100.64.3.9",
    ]
  ) {
    assert.ok(!p.allows(ip(no)), no);
  }
  assert.deepEqual(p.toWire().allow, ["0.0.0.0/0"]);
  assert.deepEqual(p.toWire().deny, [
    "169.254.0.0/16",
    "127.0.0.0/8",
    "0.0.0.0/8",
    "224.0.0.0/4",
    "100.64.0.0/16",
  ]);
});

Deno.test("policy: allow narrows, deny wins, always-denied cannot be allowed", () => {
  const p = new Policy(["10.0.0.0/8", "169.254.169.254/32"], ["10.9.0.0/16"], pool);
  assert.ok(p.allows(ip("10.1.2.3")));
  assert.ok(!p.allows(ip("10.9.1.1")), "deny wins over allow");
  assert.ok(!p.allows(ip("172.16.0.1")), "outside allow");
  assert.ok(!p.allows(ip("169.254.169.254")), "metadata stays denied");
  assert.deepEqual(p.toWire().deny.at(-1), "10.9.0.0/16");
});

/** A destination as the data path sees it: 16 bytes inside a packet, at offset 24. */
function dst6(text: string): Uint8Array {
  const p = new Uint8Array(40);
  p.set(parseIPv6(text)!, 24);
  return p;
}

Deno.test("policy6: by default everywhere but the always-denied IPv6 blocks and pool6", () => {
  const p = new Policy([], [], pool);
  for (const ok of ["2600:1f18:1::5", "2001:db8::1", "fd12::1", "64:ff9b::a00:5"]) {
    assert.ok(p.allows6(dst6(ok), 24), ok);
  }
  for (
    const no of [
      "fe80::1",
      "febf::1",
      "ff02::1",
      "ff05::1:3",
      "::1",
      "::",
      "::ffff:10.0.0.5",
      "fd00:ec2::254",
      "fd00:ec2::253",
      "fd00:ec2::123",
      "fd00:ec2::240",
      "fd7a:5353:5d8b::1",
      "fd7a:5353:5d8b::2",
      "64:ff9b::a9fe:a9fe", // NAT64 of 169.254.169.254
      "64:ff9b::6440:2", // NAT64 of the pool
    ]
  ) {
    assert.ok(!p.allows6(dst6(no), 24), no);
  }
});

Deno.test("policy6: allow/deny take IPv6 CIDRs; one family's list allows nothing of the other", () => {
  const p = new Policy(
    ["10.0.0.0/8", "2600:1f18::/32", "fe80::/10"],
    ["2600:1f18:9::/48", "10.9.0.0/16"],
    pool,
    parseCidr6("fd01::/64")!,
  );
  assert.ok(p.allows6(dst6("2600:1f18:1::1"), 24));
  assert.ok(!p.allows6(dst6("2600:1f18:9::1"), 24), "deny wins");
  assert.ok(!p.allows6(dst6("2001:db8::1"), 24), "outside allow");
  assert.ok(!p.allows6(dst6("fe80::1"), 24), "link-local stays denied");
  assert.ok(!p.allows6(dst6("fd01::5"), 24), "pool6");
  assert.ok(p.allows(ip("10.1.1.1")) && !p.allows(ip("10.9.1.1")));
  const v6only = new Policy(["2600:1f18::/32"], [], pool);
  assert.ok(!v6only.allows(ip("10.1.1.1")), "an IPv6-only allow list allows no IPv4");
  const v4only = new Policy(["10.0.0.0/8"], [], pool);
  assert.ok(!v4only.allows6(dst6("2600:1f18::1"), 24), "an IPv4-only allow list allows no IPv6");
  // NAT64 follows the IPv4 rules too.
  assert.ok(!p.allows6(dst6("64:ff9b::a09:101"), 24), "NAT64 of a denied IPv4");
});

Deno.test("policy6: toWire adds IPv6 blocks only for a tunnel with IPv6", () => {
  const p = new Policy([], ["2600:1f18:9::/48"], pool);
  assert.deepEqual(p.toWire(), new Policy([], [], pool).toWire(), "IPv4 view unchanged");
  assert.deepEqual(p.toWire(true), {
    allow: ["0.0.0.0/0", "::/0"],
    deny: [
      "169.254.0.0/16",
      "127.0.0.0/8",
      "0.0.0.0/8",
      "224.0.0.0/4",
      "100.64.0.0/16",
      "fe80::/10",
      "ff00::/8",
      "::1/128",
      "::/128",
      "::ffff:0.0.0.0/96",
      "fd00:ec2::/32",
      "fd7a:5353:5d8b::/48",
      "2600:1f18:9::/48",
    ],
  });
});

Deno.test("policy6: nothing in an always-denied block is ever allowed, whatever allow says", () => {
  const p = new Policy(["::/0", "0.0.0.0/0", ...ALWAYS_DENIED6], [], pool);
  const denied = ALWAYS_DENIED6.map((c) => parseCidr6(c)!);
  const bytes = fc.uint8Array({ minLength: 16, maxLength: 16 });
  // Any address inside a denied block: its network bits, random host bits.
  fc.assert(
    fc.property(fc.constantFrom(...denied), bytes, (c, host) => {
      const b = new Uint8Array(40);
      for (let i = 0; i < 16; i++) {
        const keep = (0xff00 >> Math.max(0, Math.min(8, c.prefix - i * 8))) & 0xff;
        b[24 + i] = (c.bytes[i] & keep) | (host[i] & ~keep);
      }
      assert.ok(contains6(c, b.subarray(24)));
      assert.ok(!p.allows6(b, 24));
    }),
  );
  // And anything else is allowed by ::/0.
  fc.assert(
    fc.property(bytes, (a) => {
      fc.pre(!denied.some((c) => contains6(c, a)));
      fc.pre(!contains6(parseCidr6("64:ff9b::/96")!, a));
      const b = new Uint8Array(40);
      b.set(a, 24);
      assert.ok(p.allows6(b, 24));
    }),
  );
});

Deno.test("wirePolicy: a rule's ports and protocols, each family on its own, IPv6 only with IPv6", () => {
  const dest = (t: string) => parseDest(t) as Exclude<ReturnType<typeof parseDest>, string>;
  const rules = [
    { allow: [dest("10.0.5.0/24:443/tcp"), dest("any:22/tcp"), dest("fd00::/8/udp")], deny: [] },
    { allow: [dest("10.0.5.0/24:443/tcp")], deny: [dest("10.0.9.0/24:22")] },
  ];
  const scope = { pool, pool6: defaultPool6 };
  const v4 = wirePolicy(rules, scope);
  assert.deepEqual(v4.allow, ["10.0.5.0/24:443/tcp", "0.0.0.0/0:22/tcp"], "each text once");
  assert.deepEqual(v4.deny.slice(-2), ["100.64.0.0/16", "10.0.9.0/24:22"]);
  const both = wirePolicy(rules, scope, true);
  assert.deepEqual(both.allow, [
    "10.0.5.0/24:443/tcp",
    "0.0.0.0/0:22/tcp",
    "[::/0]:22/tcp",
    "fd00::/8/udp",
  ]);
  // Every text reads back as a destination.
  for (const t of [...both.allow, ...both.deny]) assert.equal(typeof parseDest(t), "object", t);
  assert.deepEqual(wirePolicy([], scope).allow, [], "no rule applies: nothing allowed");
});
