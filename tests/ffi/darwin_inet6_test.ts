/**
 * IPv6 on a utun, below the platform: the in6_aliasreq for our own /128 (golden bytes), the
 * SIOCAIFADDR_IN6 call against the fake libc, and the 4-byte family header of IPv6 packets on
 * write and read. Pure or fake-backed: runs on any OS.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { DARWIN_E, OsError } from "../../ffi/libc.ts";
import * as C from "../../ffi/darwin/constants.ts";
import { FakeDarwinLibc } from "../../ffi/darwin/fake_libc.ts";
import { addAddress6 } from "../../ffi/darwin/ifconfig.ts";
import { encodeIn6Aliasreq } from "../../ffi/darwin/structs.ts";
import { ioctl } from "../../ffi/darwin/sys.ts";
import { UtunDevice } from "../../ffi/darwin/utun.ts";
import { parseIP } from "../../ffi/struct.ts";

function hex(s: string): Uint8Array {
  return new Uint8Array(s.replace(/\s+/g, "").match(/../g)!.map((b) => parseInt(b, 16)));
}

const A6 = parseIP("fd7a:5353:5d8b::2");

/**
 * in6_aliasreq for utun5 fd7a:5353:5d8b::2/128, no destination, IN6_IFF_NODAD, infinite
 * lifetimes. The spec has no capture of this variant: these bytes are derived by hand, byte by
 * byte, from os-ffi §4.1's layout (in6_aliasreq 128 bytes; sockaddr_in6 28 bytes: len @0, family
 * @1, port @2, flowinfo @4, addr @8, scope_id @24; in6_addrlifetime 24 bytes @104) and §3.1's
 * constants (AF_INET6 30, IN6_IFF_NODAD 0x20, ND6_INFINITE_LIFETIME 0xffffffff).
 */
const GOLDEN = hex(`
  75 74 75 6e 35 00 00 00 00 00 00 00 00 00 00 00
  1c 1e 00 00 00 00 00 00 fd 7a 53 53 5d 8b 00 00
  00 00 00 00 00 00 00 02 00 00 00 00 00 00 00 00
  00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  00 00 00 00 00 00 00 00 1c 1e 00 00 00 00 00 00
  ff ff ff ff ff ff ff ff ff ff ff ff ff ff ff ff
  00 00 00 00 20 00 00 00 00 00 00 00 00 00 00 00
  00 00 00 00 00 00 00 00 ff ff ff ff ff ff ff ff`);
// 0x00 ifra_name "utun5" · 0x10 ifra_addr (len 28, AF_INET6, port 0, flowinfo 0, address, scope
// 0 @0x28) · 0x2c ifra_dstaddr: 28 zero bytes = AF_UNSPEC (os-ffi §6: any prefix on a p2p
// interface) · 0x48 ifra_prefixmask (len 28, AF_INET6, 16 × ff = /128, scope 0) · 0x64
// ifra_flags 0x20 · 0x68 ia6t_expire 0 · 0x70 ia6t_preferred 0 · 0x78 vltime · 0x7c pltime.

Deno.test("in6_aliasreq for our /128 with no destination: golden bytes from the §4.1 layout", () => {
  const b = encodeIn6Aliasreq("utun5", A6, undefined, 128, C.IN6_IFF_NODAD);
  assert.equal(b.length, 128);
  assert.deepEqual(b, GOLDEN);
});

Deno.test("it differs from the spec's §10.1 (c2) vector only in dstaddr and flags", () => {
  // c2: fd7a:115c:a1e0::1/128 with itself as destination, flags 0 (os-ffi §10.1).
  const a = parseIP("fd7a:115c:a1e0::1");
  const c2 = hex(`
    75 74 75 6e 35 00 00 00 00 00 00 00 00 00 00 00
    1c 1e 00 00 00 00 00 00 fd 7a 11 5c a1 e0 00 00
    00 00 00 00 00 00 00 01 00 00 00 00 1c 1e 00 00
    00 00 00 00 fd 7a 11 5c a1 e0 00 00 00 00 00 00
    00 00 00 01 00 00 00 00 1c 1e 00 00 00 00 00 00
    ff ff ff ff ff ff ff ff ff ff ff ff ff ff ff ff
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
    00 00 00 00 00 00 00 00 ff ff ff ff ff ff ff ff`);
  const ours = encodeIn6Aliasreq("utun5", a, undefined, 128, C.IN6_IFF_NODAD);
  const differ = [...ours.keys()].filter((i) => ours[i] !== c2[i]);
  const inDst = (i: number) => i >= 0x2c && i < 0x48;
  assert.ok(differ.length > 0 && differ.every((i) => inDst(i) || i === 0x64), `${differ}`);
  assert.deepEqual(ours.subarray(0x2c, 0x48), new Uint8Array(28));
  assert.equal(ours[0x64], 0x20);
});

Deno.test("addAddress6: AF_INET6 scratch socket, SIOCAIFADDR_IN6 with the 128 bytes, close", () => {
  const sys = new FakeDarwinLibc();
  const dev = UtunDevice.open(sys);
  sys.calls.length = 0;
  addAddress6(sys, "utun5", A6);
  assert.deepEqual(sys.names, ["socket", "ioctl SIOCAIFADDR_IN6", "close"]);
  const [sock, io, close] = sys.calls;
  assert.deepEqual([sock.domain, sock.type, sock.protocol], [C.AF_INET6, C.SOCK_DGRAM, 0]);
  assert.equal(io.fd, close.fd);
  assert.deepEqual(io.arg, GOLDEN);
  assert.equal(io.ninthIsArg, true); // pointer 3rd and 9th (os-ffi §2.3)
  assert.deepEqual(io.middle, [0n, 0n, 0n, 0n, 0n]);
  assert.deepEqual(sys.ifs.get("utun5")!.addrs, [
    { local: "fd7a:5353:5d8b::2", peer: "", mask: "/128" },
  ]);
  dev.close();
  assert.deepEqual(sys.openFds, []);
});

Deno.test("a refused SIOCAIFADDR_IN6 is an OsError naming the call; the socket is closed", () => {
  const sys = new FakeDarwinLibc();
  const dev = UtunDevice.open(sys);
  sys.fail("ioctl", DARWIN_E.EINVAL, (c) => c.req === "SIOCAIFADDR_IN6");
  assert.throws(
    () => addAddress6(sys, "utun5", A6),
    (e) => e instanceof OsError && e.code === "EINVAL" && e.call === "SIOCAIFADDR_IN6 utun5",
  );
  dev.close();
  assert.deepEqual(sys.openFds, []);
});

Deno.test("the fake applies xnu's in6_update_ifa rules, so a wrong request cannot pass", () => {
  const sys = new FakeDarwinLibc();
  const dev = UtunDevice.open(sys);
  const try6 = (req: Uint8Array<ArrayBuffer>, af = C.AF_INET6) => {
    const fd = sys.socket(af, C.SOCK_DGRAM, 0);
    try {
      ioctl(sys, fd, C.SIOCAIFADDR_IN6, req);
      return "ok";
    } catch (e) {
      return (e as OsError).code;
    } finally {
      sys.close(fd);
    }
  };
  const ours = () => encodeIn6Aliasreq("utun5", A6, undefined, 128, C.IN6_IFF_NODAD);
  assert.equal(try6(ours(), C.AF_INET), "ENOTTY"); // an _IN6 ioctl on an IPv4 socket
  assert.equal(try6(encodeIn6Aliasreq("utun5", A6, A6, 64)), "EINVAL"); // p2p dst needs /128
  const badLife = ours();
  new DataView(badLife.buffer).setUint32(120, 10, true); // pltime > vltime
  assert.equal(try6(badLife), "EINVAL");
  const noMask = ours();
  noMask[72] = 0;
  assert.equal(try6(noMask), "EINVAL");
  assert.equal(try6(ours()), "ok");
  dev.close();
});

/** A minimal IPv6 header (40 bytes) + payload, UDP, hop limit 64, fd7a:5353:5d8b::2 → 2001:db8::1. */
function v6(payload: number[]): Uint8Array {
  const p = new Uint8Array(40 + payload.length);
  p[0] = 0x60;
  new DataView(p.buffer).setUint16(4, payload.length);
  p[6] = 17;
  p[7] = 64;
  p.set(A6, 8);
  p.set(parseIP("2001:db8::1"), 24);
  p.set(payload, 40);
  return p;
}

Deno.test("utun write: an IPv6 packet goes out as 00 00 00 1e + the packet, unchanged", () => {
  const sys = new FakeDarwinLibc();
  const dev = UtunDevice.open(sys);
  const pkt = v6([1, 2, 3, 4]);
  assert.equal(dev.write(pkt), true);
  const [frame] = sys.sent.get("utun5")!;
  assert.deepEqual(frame, new Uint8Array([0x00, 0x00, 0x00, 0x1e, ...pkt]));
  dev.close();
});

Deno.test("utun read: the header is stripped whatever the family", async () => {
  const sys = new FakeDarwinLibc();
  const dev = UtunDevice.open(sys);
  const p6 = v6([9, 9]);
  const p4 = new Uint8Array([0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1]);
  sys.inject("utun5", new Uint8Array([0, 0, 0, 0x1e, ...p6]));
  sys.inject("utun5", new Uint8Array([0, 0, 0, 2, ...p4]));
  const got = await dev.read(100);
  assert.deepEqual(got.map((p) => Array.from(p)), [Array.from(p6), Array.from(p4)]);
  dev.close();
});

Deno.test("property: the header follows the version nibble; anything else is not written", () => {
  const sys = new FakeDarwinLibc();
  const dev = UtunDevice.open(sys);
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 1500 }), (pkt) => {
      sys.sent.delete("utun5");
      const v = pkt[0] >> 4;
      const written = dev.write(pkt);
      const sent = sys.sent.get("utun5") ?? [];
      if (v !== 4 && v !== 6) return !written && sent.length === 0;
      const af = v === 6 ? 0x1e : 0x02;
      return written && sent.length === 1 &&
        sent[0].length === pkt.length + 4 &&
        sent[0][0] === 0 && sent[0][1] === 0 && sent[0][2] === 0 && sent[0][3] === af &&
        sent[0].subarray(4).every((b, i) => b === pkt[i]);
    }),
  );
  dev.close();
});
