import assert from "node:assert/strict";
import fc from "fast-check";
import { contains6, overlaps6, parseCidr6 } from "../../src/net/cidr6.ts";
import { UserError } from "../../src/errors.ts";
import { formatIP } from "../../ffi/struct.ts";

Deno.test("parseCidr6: canonical text, a bare address is /128, host bits refused with the fix", () => {
  assert.equal(parseCidr6("2001:DB8:10:0::/56").text, "2001:db8:10::/56");
  assert.equal(parseCidr6("fd7a::5").text, "fd7a::5/128");
  assert.equal(parseCidr6("::/0").prefix, 0);
  assert.throws(
    () => parseCidr6("2001:db8::1/64"),
    (e) => e instanceof UserError && /did you mean 2001:db8::\/64\?/.test(e.message),
  );
  for (const bad of ["2001:db8::/129", "10.0.0.0/8", "2001:db8::/x", "fe80::1%en0/64", "1:2:3"]) {
    assert.throws(() => parseCidr6(bad), /not an IPv6 CIDR/, bad);
  }
});

Deno.test("contains6 and overlaps6 agree with the prefix bits", () => {
  const c = parseCidr6("2001:db8:10::/44");
  assert.ok(contains6(c, parseCidr6("2001:db8:1f:ffff::1").bytes));
  assert.ok(!contains6(c, parseCidr6("2001:db8:20::1").bytes));
  assert.ok(overlaps6(c, parseCidr6("2001:db8:18::/48")));
  assert.ok(overlaps6(parseCidr6("::/1"), c));
  assert.ok(!overlaps6(parseCidr6("8000::/1"), c));
  fc.assert(fc.property(
    fc.uint8Array({ minLength: 16, maxLength: 16 }),
    fc.integer({ min: 0, max: 128 }),
    (bytes, prefix) => {
      // Any address, masked to any prefix, is a network that contains the address.
      const masked = bytes.map((b, i) =>
        b & ((0xff00 >> Math.max(0, Math.min(8, prefix - i * 8))) & 0xff)
      );
      const net = parseCidr6(`${formatIP(masked)}/${prefix}`);
      return contains6(net, bytes) && overlaps6(net, parseCidr6(`${formatIP(bytes)}/128`));
    },
  ));
});
