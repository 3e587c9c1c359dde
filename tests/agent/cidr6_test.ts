/** IPv6 blocks and the pool ↔ pool6 mapping (agent/cidr6.ts). */
import assert from "node:assert/strict";
import fc from "fast-check";
import { formatIpv4, maskOf, parseCidr, parseIpv4 } from "../../agent/cidr.ts";
import {
  contains6,
  formatCidr6,
  formatIpv6,
  parseCidr6,
  Pool6,
  pool6Misfit,
} from "../../agent/cidr6.ts";
import { parseIPv6 } from "../../ffi/struct.ts";

const pool = parseCidr("100.64.0.0/16")!;
const pool6 = parseCidr6("fd7a:5353:5d8b::/48")!;
const ip6 = (s: string) => parseIPv6(s)!;

Deno.test("cidr6: parse, format, contains", () => {
  assert.equal(formatCidr6(parseCidr6("fd7a:5353:5d8b::/48")!), "fd7a:5353:5d8b::/48");
  assert.equal(formatCidr6(parseCidr6("::1")!), "::1/128");
  assert.equal(formatCidr6(parseCidr6("fe80::1/10", false)!), "fe80::/10");
  for (
    const bad of ["fe80::1/10", "fd00::/129", "fd00::/", "fd00::/x", "10.0.0.0/8", "fe80::1%eth0"]
  ) {
    assert.equal(parseCidr6(bad), undefined, bad);
  }
  const ll = parseCidr6("fe80::/10")!;
  assert.ok(contains6(ll, ip6("febf:ffff::1")));
  assert.ok(!contains6(ll, ip6("fec0::1")));
  assert.ok(contains6(parseCidr6("::/0")!, ip6("2001:db8::1")));
  assert.ok(contains6(parseCidr6("fd00:ec2::/32")!, ip6("fd00:ec2::254")));
  assert.ok(!contains6(parseCidr6("fd00:ec2::/32")!, ip6("fd00:ec3::254")));
});

Deno.test("pool6: a tunnel's IPv6 address has its IPv4 host index", () => {
  const p = new Pool6(pool6, pool);
  assert.equal(formatIpv6(p.addressOf(parseIpv4("100.64.0.2")!)), "fd7a:5353:5d8b::2");
  assert.equal(formatIpv6(p.addressOf(parseIpv4("100.64.1.7")!)), "fd7a:5353:5d8b::107");
  assert.equal(formatIpv6(p.agentAddress), "fd7a:5353:5d8b::1");
  const at = (s: string) => {
    const b = new Uint8Array(24);
    b.set(ip6(s), 8);
    return p.ipv4Of(b, 8);
  };
  assert.equal(formatIpv4(at("fd7a:5353:5d8b::107")), "100.64.1.7");
  assert.equal(at("fd7a:5353:5d8c::2"), -1, "outside pool6");
  assert.equal(at("fd7a:5353:5d8b::1:0:2"), -1, "host bits above the IPv4 pool's");
  assert.equal(at("fd7a:5353:5d8b::1:2"), -1, "index past a /16 pool");
  assert.equal(p.ipv4Of(ip6("fd7a:5353:5d8b::2").subarray(0, 15), 0), -1, "short");
});

Deno.test("pool6: addressOf and ipv4Of are inverse over any pool pair that fits", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 8, max: 30 }),
      fc.integer({ min: 48, max: 112 }),
      fc.nat(),
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      fc.nat(),
      (len4, len6, base4, raw6, host) => {
        const p4 = { base: (base4 & maskOf(len4)) >>> 0, prefix: len4 };
        const p6 = parseCidr6(`${formatIpv6(raw6)}/${len6}`, false)!;
        if (pool6Misfit(p6, p4)) {
          assert.throws(() => new Pool6(p6, p4), RangeError);
          return;
        }
        const p = new Pool6(p6, p4);
        const a4 = (p4.base + (host % 2 ** (32 - len4))) >>> 0;
        const a6 = p.addressOf(a4);
        assert.ok(contains6(p6, a6));
        assert.equal(p.ipv4Of(a6, 0), a4);
      },
    ),
  );
});

Deno.test("pool6: misfit names the host bits", () => {
  assert.equal(pool6Misfit(parseCidr6("fd00::/112")!, pool), undefined);
  assert.equal(
    pool6Misfit(parseCidr6("fd00::/112")!, parseCidr("10.0.0.0/15")!),
    "/112 leaves 16 host bits, fewer than pool /15 needs (17)",
  );
});
