/**
 * PF_ROUTE messages for a full tunnel: the half-default routes of macos-dns-routes §5.2 through the
 * existing interface-route encoder, and the endpoint pins of §5.3. Where the spec gives bytes they
 * are copied from it; the rest (marked "derived") are built byte by byte from os-ffi §7.2/§4.1:
 * rt_msghdr of 92 bytes (msglen u16 @0, version 5 @2, type @3, flags i32 @8, addrs i32 @12, seq
 * i32 @20), then sockaddrs in RTAX order, each padded to 4.
 */
import assert from "node:assert/strict";
import * as C from "../../ffi/darwin/constants.ts";
import {
  decodeRtMsg,
  encodePinAdd,
  encodePinDelete,
  encodeRouteAdd,
  encodeRouteDelete,
} from "../../ffi/darwin/route_msg.ts";
import { parseCidr, parseIP, StructError } from "../../ffi/struct.ts";

function hex(s: string): Uint8Array {
  const t = s.replace(/\s+/g, "");
  return new Uint8Array(t.match(/../g)!.map((b) => parseInt(b, 16)));
}
const zeros = (n: number) => " 00".repeat(n);
/** rt_msghdr: the first 24 bytes given (through rtm_seq), the rest zero. */
const header = (first24: string) => first24 + zeros(92 - 24);
const UTUN5 = { ifindex: 24, ifname: "utun5" };
/** sockaddr_dl of utun5 (ifindex 24, IFT_OTHER, "utun5"), as in os-ffi §10.1 a1. */
const DL_UTUN5 = "14 12 18 00 01 05 00 00 75 74 75 6e 35 00 00 00 00 00 00 00";

Deno.test("§5.2: 0.0.0.0/1 and 128.0.0.0/1 via utun5 with the existing encoder (spec bytes)", () => {
  const low = hex(
    header("88 00 05 01 00 00 00 00 01 08 00 00 07 00 00 00 00 00 00 00 01 00 00 00") +
      "10 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00" + DL_UTUN5 + "05 02 00 00 80 00 00 00",
  );
  const high = low.slice();
  high[0x14] = 2; // seq 2
  high[0x5c + 4] = 0x80; // DST 128.0.0.0
  assert.deepEqual(encodeRouteAdd({ dst: parseCidr("0.0.0.0/1"), ...UTUN5, seq: 1 }), low);
  assert.deepEqual(encodeRouteAdd({ dst: parseCidr("128.0.0.0/1"), ...UTUN5, seq: 2 }), high);
  // Deleting is the same message with type 2 (§5.2, os-ffi §7.5).
  const del = low.slice();
  del[3] = C.RTM_DELETE;
  assert.deepEqual(encodeRouteDelete({ dst: parseCidr("0.0.0.0/1"), ...UTUN5, seq: 1 }), del);
});

Deno.test("§5.2: ::/1 and 8000::/1 via utun5 (spec bytes)", () => {
  const v6 = (seq: number, first: string) =>
    hex(
      header(`98 00 05 01 00 00 00 00 01 08 00 00 07 00 00 00 00 00 00 00 0${seq} 00 00 00`) +
        `1c 1e 00 00 00 00 00 00 ${first}` + zeros(19) + DL_UTUN5 +
        "09 1e 00 00 00 00 00 00 80 00 00 00",
    );
  const a = encodeRouteAdd({ dst: parseCidr("::/1"), ...UTUN5, seq: 5 });
  const b = encodeRouteAdd({ dst: parseCidr("8000::/1"), ...UTUN5, seq: 6 });
  assert.equal(a.length, 152);
  assert.deepEqual(a, v6(5, "00"));
  assert.deepEqual(b, v6(6, "80"));
});

const PIN_GOLDEN = hex(
  header("7c 00 05 01 00 00 00 00 07 08 00 00 03 00 00 00 00 00 00 00 03 00 00 00") +
    "10 02 00 00 34 5e 00 0a 00 00 00 00 00 00 00 00" +
    "10 02 00 00 c0 a8 01 01 00 00 00 00 00 00 00 00",
);
const EN0 = { ifindex: 4, ifname: "en0" };

Deno.test("§5.3: pin 52.94.0.10 via 192.168.1.1 (spec bytes: 0x807, DST|GATEWAY, 124 B)", () => {
  const pin = { dst: parseCidr("52.94.0.10/32"), gateway: parseIP("192.168.1.1"), ...EN0, seq: 3 };
  const add = encodePinAdd(pin);
  assert.deepEqual(add, PIN_GOLDEN);
  const m = decodeRtMsg(add);
  assert.equal(m.flags, C.RTF_UP | C.RTF_GATEWAY | C.RTF_HOST | C.RTF_STATIC);
  assert.equal(m.flags & C.RTF_IFSCOPE, 0); // unscoped: unbound sockets must see it (trap 12)
  assert.equal(m.index, 0);
  // Delete: the same message with type 2 (derived from §5.2's rule).
  const del = PIN_GOLDEN.slice();
  del[3] = C.RTM_DELETE;
  assert.deepEqual(encodePinDelete(pin), del);
});

Deno.test("on-link pin: the interface form, RTF_HOST, no netmask (derived)", () => {
  // `route -n add -host 192.168.1.50 -interface en0`: flags UP|HOST|STATIC 0x805, addrs 0x3,
  // 92 + 16 + 20 = 128 bytes; GATEWAY = en0's sockaddr_dl (index 4, IFT_OTHER, nlen 3, "en0").
  const want = hex(
    header("80 00 05 01 00 00 00 00 05 08 00 00 03 00 00 00 00 00 00 00 07 00 00 00") +
      "10 02 00 00 c0 a8 01 32 00 00 00 00 00 00 00 00" +
      "14 12 04 00 01 03 00 00 65 6e 30 00 00 00 00 00 00 00 00 00",
  );
  const pin = { dst: parseCidr("192.168.1.50/32"), ...EN0, seq: 7 };
  assert.deepEqual(encodePinAdd(pin), want);
  assert.deepEqual(encodePinAdd(pin), encodeRouteAdd(pin));
  const del = want.slice();
  del[3] = C.RTM_DELETE;
  assert.deepEqual(encodePinDelete(pin), del);
});

Deno.test("a pinned prefix keeps its netmask and drops RTF_HOST (derived)", () => {
  // 52.94.0.0/16 via 192.168.1.1: flags UP|GATEWAY|STATIC 0x803, addrs 0x7, mask trimmed to 6.
  const want = hex(
    header("84 00 05 01 00 00 00 00 03 08 00 00 07 00 00 00 00 00 00 00 08 00 00 00") +
      "10 02 00 00 34 5e 00 00 00 00 00 00 00 00 00 00" +
      "10 02 00 00 c0 a8 01 01 00 00 00 00 00 00 00 00" +
      "06 02 00 00 ff ff 00 00",
  );
  const pin = { dst: parseCidr("52.94.0.0/16"), gateway: parseIP("192.168.1.1"), ...EN0, seq: 8 };
  assert.deepEqual(encodePinAdd(pin), want);
});

Deno.test("IPv6 pin: sockaddr_in6 DST and GATEWAY (28 B each); mixed families refused", () => {
  const gateway = parseIP("2001:db8:1::1");
  const m = encodePinAdd({ dst: parseCidr("2001:db8::7/128"), gateway, ...EN0, seq: 9 });
  assert.equal(m.length, 92 + 28 + 28);
  assert.deepEqual(m.subarray(0, 16), hex("94 00 05 01 00 00 00 00 07 08 00 00 03 00 00 00"));
  assert.deepEqual(m.subarray(92 + 28, 92 + 36), hex("1c 1e 00 00 00 00 00 00"));
  assert.deepEqual(m.subarray(92 + 36, 92 + 52), gateway);
  assert.throws(
    () => encodePinAdd({ dst: parseCidr("52.94.0.10/32"), gateway, ...EN0, seq: 1 }),
    StructError,
  );
});
