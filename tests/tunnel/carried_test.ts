import assert from "node:assert/strict";
import { carried } from "../../src/tunnel/packet.ts";
import { parseIPv6 } from "../../ffi/struct.ts";

function v6(src: string, dst: string): Uint8Array {
  const p = new Uint8Array(48);
  p[0] = 0x60;
  p[6] = 58; // ICMPv6
  p[7] = 255;
  p.set(parseIPv6(src)!, 8);
  p.set(parseIPv6(dst)!, 24);
  return p;
}

Deno.test("carried: IPv4 always; IPv6 only from the tunnel's own IPv6 address", () => {
  const v4 = new Uint8Array(20);
  v4[0] = 0x45;
  const mine = parseIPv6("fd7a:5353:5d8b::2")!;
  assert.ok(carried(v4, undefined));
  assert.ok(carried(v6("fd7a:5353:5d8b::2", "2001:db8::10"), mine));
  assert.ok(!carried(v6("fd7a:5353:5d8b::2", "2001:db8::10"), undefined), "no IPv6 on the link");
  // The kernel's router solicitation and MLD report, once the tun has IPv6.
  assert.ok(!carried(v6("fe80::1", "ff02::2"), mine));
  assert.ok(!carried(v6("::", "ff02::16"), mine));
  assert.ok(!carried(v6("fd7a:5353:5d8b::3", "2001:db8::10"), mine), "another tunnel's address");
  assert.ok(!carried(new Uint8Array([0x60, 0, 0]), mine), "truncated");
  assert.ok(!carried(new Uint8Array([0x50]), mine));
});
