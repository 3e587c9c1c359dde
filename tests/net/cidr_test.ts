import assert from "node:assert/strict";
import fc from "fast-check";
import {
  contains,
  formatIpv4,
  overlaps,
  parseCidr,
  parseIpv4,
  vpcResolverAddress,
} from "../../src/net/cidr.ts";
import { UserError } from "../../src/errors.ts";

Deno.test("cidr: parse, normalise, and reject with a hint", () => {
  assert.equal(parseCidr("10.0.0.0/16").text, "10.0.0.0/16");
  assert.equal(parseCidr("10.1.2.3").prefix, 32);
  assert.throws(() => parseCidr("10.0.0.1/16"), /did you mean 10.0.0.0\/16/);
  for (
    const bad of [
      "10.0.0/8",
      "300.0.0.0/8",
      "10.0.0.0/33",
      "10.0.0.0/-1",
      "x",
      "10.0.0.0/8/1",
      "10.0.0.0/ 8",
    ]
  ) {
    assert.throws(() => parseCidr(bad), UserError, bad);
  }
});

Deno.test("cidr: contains and overlaps", () => {
  const a = parseCidr("10.0.0.0/16");
  assert.ok(contains(a, parseIpv4("10.0.255.1")!));
  assert.ok(!contains(a, parseIpv4("10.1.0.1")!));
  assert.ok(overlaps(a, parseCidr("10.0.5.0/24")));
  assert.ok(overlaps(parseCidr("0.0.0.0/0"), a));
  assert.ok(!overlaps(a, parseCidr("10.1.0.0/16")));
});

Deno.test("cidr property: format/parse round trip; a network contains its own addresses", () => {
  fc.assert(fc.property(fc.nat({ max: 0xffffffff }), fc.integer({ min: 0, max: 32 }), (ip, p) => {
    assert.equal(parseIpv4(formatIpv4(ip)), ip);
    const m = p === 0 ? 0 : (0xffffffff << (32 - p)) >>> 0;
    const c = parseCidr(`${formatIpv4((ip & m) >>> 0)}/${p}`);
    assert.ok(contains(c, ip));
  }));
});

Deno.test("cidr: the VPC resolver is the VPC's base address + 2", () => {
  assert.equal(vpcResolverAddress("10.0.0.0/16"), "10.0.0.2");
  assert.equal(vpcResolverAddress("172.31.0.0/16"), "172.31.0.2");
  assert.equal(vpcResolverAddress("10.99.4.0/22"), "10.99.4.2");
  assert.equal(vpcResolverAddress("192.168.1.240/28"), "192.168.1.242");
  // Host bits are not EC2's to send, but the network is still the one meant.
  assert.equal(vpcResolverAddress("10.1.2.3/16"), "10.1.0.2");
  assert.equal(vpcResolverAddress("10.0.0.0/30"), "10.0.0.2");
  for (const bad of ["10.0.0.0/31", "10.0.0.0/32", "10.0.0.0", "fd00::/56", "10.0.0.0/33", ""]) {
    assert.equal(vpcResolverAddress(bad), undefined, bad);
  }
});

Deno.test("cidr property: the VPC resolver lies inside the VPC, two above its base", () => {
  fc.assert(fc.property(fc.nat({ max: 0xffffffff }), fc.integer({ min: 0, max: 30 }), (ip, p) => {
    const m = p === 0 ? 0 : (0xffffffff << (32 - p)) >>> 0;
    const c = parseCidr(`${formatIpv4((ip & m) >>> 0)}/${p}`);
    const resolver = parseIpv4(vpcResolverAddress(`${formatIpv4(ip)}/${p}`)!)!;
    assert.equal(resolver, c.base + 2);
    assert.ok(contains(c, resolver));
  }));
});
