/** Pure struct helpers, the TUNSETIFF ifreq (os-ffi §10.2), errno names and error mapping. */
import assert from "node:assert/strict";
import fc from "fast-check";
import { errnoName, OsError } from "../../ffi/libc.ts";
import { encodeTunSetIff } from "../../ffi/linux/tun.ts";
import {
  formatIP,
  ifName,
  parseCidr,
  parseIP,
  parseIPv4,
  parseIPv6,
  readCString,
  StructError,
} from "../../ffi/struct.ts";
import { UserError } from "../../src/errors.ts";
import { resolvectlHint, toUserError } from "../../src/net/linux.ts";

Deno.test("TUNSETIFF ifreq for tun%d (golden)", () => {
  const want = new Uint8Array(40);
  want.set([0x74, 0x75, 0x6e, 0x25, 0x64]);
  want.set([0x01, 0x10], 16);
  assert.deepEqual(encodeTunSetIff("tun%d"), want);
  assert.throws(() => encodeTunSetIff("a-name-of-16-chr"), StructError);
  assert.throws(() => ifName(""), StructError);
  assert.equal(readCString(ifName("ssmp0")), "ssmp0");
});

Deno.test("IPv4 and IPv6 parsing and formatting", () => {
  assert.deepEqual(parseIP("10.199.5.9"), new Uint8Array([10, 199, 5, 9]));
  for (const bad of ["10.1.2", "10.1.2.256", "1.2.3.4.5", "a.b.c.d", " 1.2.3.4", ""]) {
    assert.equal(parseIPv4(bad), undefined, bad);
  }
  assert.deepEqual(
    parseIP("fd7a:115c:a1e0::1"),
    new Uint8Array([0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
  );
  assert.deepEqual(
    parseIP("::ffff:10.0.0.1").subarray(10),
    new Uint8Array([255, 255, 10, 0, 0, 1]),
  );
  assert.deepEqual(parseIP("::"), new Uint8Array(16));
  for (const bad of ["1::2::3", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "12345::", "::g"]) {
    assert.equal(parseIPv6(bad), undefined, bad);
  }
  assert.throws(() => parseIP("nope"), StructError);
  assert.equal(formatIP(parseIP("fd7a:0:0:1::1")), "fd7a:0:0:1::1");
  assert.equal(formatIP(parseIP("::1")), "::1");
  assert.equal(formatIP(parseIP("1:0:0:2:0:0:0:3")), "1:0:0:2::3");
});

Deno.test("property: formatIP(parseIP(x)) round-trips", () => {
  fc.assert(
    fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (s) => {
      const b = parseIP(s);
      assert.deepEqual(parseIP(formatIP(b)), b);
    }),
    { numRuns: 1000 },
  );
});

Deno.test("CIDRs clear host bits; bad prefixes are StructErrors", () => {
  const c = parseCidr("10.199.5.77/24");
  assert.deepEqual([formatIP(c.address), c.prefixLength], ["10.199.5.0", 24]);
  assert.equal(parseCidr("10.1.2.3").prefixLength, 32);
  assert.equal(formatIP(parseCidr("fd00:1::5/16").address), "fd00::");
  assert.throws(() => parseCidr("10.0.0.0/33"), StructError);
  assert.throws(() => parseCidr("10.0.0.0/x"), StructError);
});

Deno.test("errno names per OS", () => {
  assert.equal(errnoName(1, "linux"), "EPERM");
  assert.equal(errnoName(11, "linux"), "EAGAIN");
  assert.equal(errnoName(35, "darwin"), "EAGAIN");
  assert.equal(errnoName(9999, "linux"), "E9999");
  const e = new OsError("ioctl TUNSETIFF", 16, "EBUSY");
  assert.equal(e.message, "ioctl TUNSETIFF: EBUSY (errno 16)");
});

Deno.test("OS errors map to one clear line (non-root, missing driver, duplicates)", () => {
  const tun = { op: "tun", name: "ssmp%d" } as const;
  const msg = (e: Error) => {
    assert.ok(e instanceof UserError, String(e));
    return e.message;
  };
  assert.equal(
    msg(toUserError(tun, new OsError("open /dev/net/tun", 1, "EPERM"))),
    "creating a tunnel needs root: run with sudo",
  );
  assert.equal(
    msg(toUserError(tun, new OsError("open /dev/net/tun", 13, "EACCES"))),
    "creating a tunnel needs root: run with sudo",
  );
  assert.equal(
    msg(toUserError(tun, new OsError("open /dev/net/tun", 2, "ENOENT"))),
    "the TUN driver is not available (modprobe tun)",
  );
  assert.match(msg(toUserError(tun, new OsError("ioctl TUNSETIFF", 16, "EBUSY"))), /in use/);
  const addr = {
    op: "address",
    ifname: "ssmp0",
    address: "100.64.0.2",
    peer: "100.64.0.1",
    prefixLength: 32,
  } as const;
  assert.equal(
    msg(toUserError(addr, new OsError("add address", 17, "EEXIST"))),
    "address 100.64.0.2 peer 100.64.0.1/32 already exists on ssmp0",
  );
  assert.equal(
    msg(
      toUserError(
        { op: "route", cidr: "10.0.0.0/8", ifname: "ssmp0" },
        new OsError("r", 1, "EPERM"),
      ),
    ),
    "configuring ssmp0 needs root: run with sudo",
  );
  // Not actionable → the original error (a bug keeps its stack).
  const weird = new OsError("ioctl TUNSETIFF", 14, "EFAULT");
  assert.equal(toUserError(tun, weird), weird);
  const bug = new TypeError("x");
  assert.equal(toUserError(tun, bug), bug);
});

Deno.test("resolvectl hint names the link, server and routing-only domains", () => {
  assert.equal(
    resolvectlHint({
      ifname: "ssmp0",
      server: "10.0.0.2",
      domains: ["ec2.internal", "corp.example"],
    }),
    "resolvectl dns ssmp0 10.0.0.2; resolvectl domain ssmp0 ~ec2.internal ~corp.example",
  );
});
