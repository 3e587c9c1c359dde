/**
 * darwin ioctl structs and constants against os-ffi §3.1 and the golden bytes of §10.1. Pure: runs
 * on any OS.
 */
import assert from "node:assert/strict";
import * as C from "../../ffi/darwin/constants.ts";
import {
  decodeCtlId,
  decodeIfreqFlags,
  decodeIfreqMtu,
  encodeCtlInfo,
  encodeIfreqAddr,
  encodeIfreqFlags,
  encodeIfreqMtu,
  encodeIn6Aliasreq,
  encodeInAliasreq,
  encodeSockaddrCtl,
  frameUtunPacket,
  utunFamily,
} from "../../ffi/darwin/structs.ts";
import { sockaddrDl, sockaddrMask } from "../../ffi/darwin/sockaddr.ts";
import { parseIP, StructError } from "../../ffi/struct.ts";

/** "88 00 05 …" (any whitespace) → bytes. */
function hex(s: string): Uint8Array {
  const t = s.replace(/\s+/g, "");
  return new Uint8Array(t.match(/../g)!.map((b) => parseInt(b, 16)));
}
const zeros = (n: number) => " 00".repeat(n);

Deno.test("darwin ioctl numbers match os-ffi §3.1", () => {
  assert.deepEqual(C.CTLIOCGINFO, 0xC0644E03);
  assert.deepEqual(C.SIOCSIFFLAGS, 0x80206910);
  assert.deepEqual(C.SIOCGIFFLAGS, 0xC0206911);
  assert.deepEqual(C.SIOCDIFADDR, 0x80206919);
  assert.deepEqual(C.SIOCAIFADDR, 0x8040691A);
  assert.deepEqual(C.SIOCGIFMTU, 0xC0206933);
  assert.deepEqual(C.SIOCSIFMTU, 0x80206934);
  assert.deepEqual(C.SIOCDIFADDR_IN6, 0x81206919);
  assert.deepEqual(C.SIOCAIFADDR_IN6, 0x8080691A);
  // FIONBIO = _IOW('f', 126, int): the same helper reproduces the table's other rows.
  assert.deepEqual(C.ioc(0x80000000, "f", 126, 4), 0x8004667E);
});

Deno.test("ctl_info for CTLIOCGINFO (100 bytes)", () => {
  const b = encodeCtlInfo();
  assert.deepEqual(
    b,
    hex(
      "00 00 00 00 63 6f 6d 2e 61 70 70 6c 65 2e 6e 65 74 2e 75 74 75 6e 5f 63 6f 6e 74 72 6f 6c" +
        zeros(70),
    ),
  );
  new DataView(b.buffer).setUint32(0, 0x1234, true);
  assert.deepEqual(decodeCtlId(b), 0x1234);
});

Deno.test("sockaddr_ctl: sc_unit 0 (kernel picks) and 6 (utun5)", () => {
  assert.deepEqual(encodeSockaddrCtl(0x0a), hex("20 20 02 00 0a 00 00 00" + zeros(24)));
  assert.deepEqual(
    encodeSockaddrCtl(0x0a, 6),
    hex("20 20 02 00 0a 00 00 00 06 00 00 00" + zeros(20)),
  );
});

Deno.test("in_aliasreq for SIOCAIFADDR: utun5 169.254.169.1 → .2 /30", () => {
  const b = encodeInAliasreq("utun5", parseIP("169.254.169.1"), parseIP("169.254.169.2"), 30);
  assert.deepEqual(
    b,
    hex(`
      75 74 75 6e 35 00 00 00 00 00 00 00 00 00 00 00
      10 02 00 00 a9 fe a9 01 00 00 00 00 00 00 00 00
      10 02 00 00 a9 fe a9 02 00 00 00 00 00 00 00 00
      10 02 00 00 ff ff ff fc 00 00 00 00 00 00 00 00`),
  );
});

Deno.test("in_aliasreq refuses a zero peer (EDESTADDRREQ on a p2p interface)", () => {
  assert.throws(
    () => encodeInAliasreq("utun5", parseIP("10.0.0.1"), parseIP("0.0.0.0"), 32),
    StructError,
  );
});

Deno.test("in6_aliasreq for SIOCAIFADDR_IN6: fd7a:115c:a1e0::1/128, infinite lifetimes", () => {
  const a = parseIP("fd7a:115c:a1e0::1");
  assert.deepEqual(
    encodeIn6Aliasreq("utun5", a, a, 128),
    hex(`
      75 74 75 6e 35 00 00 00 00 00 00 00 00 00 00 00
      1c 1e 00 00 00 00 00 00 fd 7a 11 5c a1 e0 00 00
      00 00 00 00 00 00 00 01 00 00 00 00 1c 1e 00 00
      00 00 00 00 fd 7a 11 5c a1 e0 00 00 00 00 00 00
      00 00 00 01 00 00 00 00 1c 1e 00 00 00 00 00 00
      ff ff ff ff ff ff ff ff ff ff ff ff ff ff ff ff
      00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
      00 00 00 00 00 00 00 00 ff ff ff ff ff ff ff ff`),
  );
});

Deno.test("ifreq: SIOCSIFMTU 1400, SIOCDIFADDR, flags as u16", () => {
  assert.deepEqual(
    encodeIfreqMtu("utun5", 1400),
    hex("75 74 75 6e 35" + zeros(11) + " 78 05 00 00" + zeros(12)),
  );
  assert.deepEqual(decodeIfreqMtu(encodeIfreqMtu("utun5", 1400)), 1400);
  assert.deepEqual(
    encodeIfreqAddr("utun5", parseIP("169.254.169.1")),
    hex("75 74 75 6e 35" + zeros(11) + " 10 02 00 00 a9 fe a9 01" + zeros(8)),
  );
  // IFF_MULTICAST is bit 15: must read back positive, not as a negative i16.
  const f = encodeIfreqFlags("utun5", 0x8051);
  assert.deepEqual(f.length, 32);
  assert.deepEqual(Array.from(f.subarray(16, 18)), [0x51, 0x80]);
  assert.deepEqual(decodeIfreqFlags(f), 0x8051);
  assert.throws(() => encodeIfreqMtu("a-name-longer-than-15", 1400), StructError);
});

Deno.test("utun packet header is the BIG-endian address family", () => {
  const v4 = new Uint8Array([0x45, 0, 0, 20]);
  const v6 = new Uint8Array([0x60, 0, 0, 0]);
  const out = new Uint8Array(16);
  assert.deepEqual(frameUtunPacket(v4, out), 8);
  assert.deepEqual(out.subarray(0, 8), hex("00 00 00 02 45 00 00 14"));
  assert.deepEqual(frameUtunPacket(v6, out), 8);
  assert.deepEqual(out.subarray(0, 4), hex("00 00 00 1e"));
  assert.deepEqual(utunFamily(new Uint8Array([0x10])), undefined);
  assert.deepEqual(frameUtunPacket(new Uint8Array(13).fill(0x45), out), 0); // does not fit
});

Deno.test("sockaddr_dl and trimmed netmasks as route(8) sends them", () => {
  assert.deepEqual(
    sockaddrDl(24, "utun5"),
    hex("14 12 18 00 01 05 00 00 75 74 75 6e 35 00 00 00 00 00 00 00"),
  );
  assert.deepEqual(sockaddrDl(), hex("14 12" + zeros(18)));
  assert.deepEqual(sockaddrMask(8, 4), hex("05 02 00 00 ff"));
  assert.deepEqual(sockaddrMask(16, 4), hex("06 02 00 00 ff ff"));
  assert.deepEqual(sockaddrMask(8, 16), hex("09 1e 00 00 00 00 00 00 ff"));
  // /0 keeps its full length: a zero-length sockaddr would end the kernel's parse.
  assert.deepEqual(sockaddrMask(0, 4), hex("10 02" + zeros(14)));
});
