import assert from "node:assert/strict";
import { Policy } from "../../agent/policy.ts";
import { cidrContains, formatCidr, parseCidr, parseIpv4 } from "../../agent/cidr.ts";

const ip = (s: string) => parseIpv4(s)!;
const pool = parseCidr("100.64.0.0/16")!;

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
