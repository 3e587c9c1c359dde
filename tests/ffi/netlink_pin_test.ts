/**
 * Full-tunnel endpoint pins on Linux: the gateway-route encoders against what iproute2 6.1 sends,
 * captured with `strace -e trace=sendmsg -e write=3 ip route add|del 192.0.2.7/32 via 10.0.0.1
 * dev X` in a throwaway namespace (X = ifindex 3, ip's sequence number 0x6b147269). The on-link
 * pin is the existing dev-route form; its capture is here too.
 */
import assert from "node:assert/strict";
import {
  encodeDelGatewayRoute,
  encodeDelRoute,
  encodeNewGatewayRoute,
  encodeNewRoute,
} from "../../ffi/linux/netlink.ts";
import { parseIP, StructError } from "../../ffi/struct.ts";

const hex = (s: string) => new Uint8Array(s.trim().split(/\s+/).map((x) => parseInt(x, 16)));
const SEQ = 0x6b147269;
const PIN = { seq: SEQ, dst: parseIP("192.0.2.7"), dstLen: 32, index: 3 };
const GW = parseIP("10.0.0.1");

Deno.test("RTM_NEWROUTE 192.0.2.7/32 via 10.0.0.1 dev 3 = `ip route add` (captured)", () => {
  const captured = hex(`
    34 00 00 00 18 00 05 06 69 72 14 6b 00 00 00 00
    02 20 00 00 fe 03 00 01 00 00 00 00 08 00 01 00
    c0 00 02 07 08 00 05 00 0a 00 00 01 08 00 04 00
    03 00 00 00`);
  // rtmsg: AF_INET, /32, MAIN, BOOT, scope UNIVERSE (0, not LINK: the next hop is a router),
  // UNICAST; then DST, GATEWAY, OIF in iproute2's order.
  assert.deepEqual(encodeNewGatewayRoute({ ...PIN, gateway: GW }), captured);
});

Deno.test("RTM_DELROUTE 192.0.2.7/32 via 10.0.0.1 dev 3 = `ip route del` (captured)", () => {
  const captured = hex(`
    34 00 00 00 19 00 05 00 69 72 14 6b 00 00 00 00
    02 20 00 00 fe 00 ff 00 00 00 00 00 08 00 01 00
    c0 00 02 07 08 00 05 00 0a 00 00 01 08 00 04 00
    03 00 00 00`);
  assert.deepEqual(encodeDelGatewayRoute({ ...PIN, gateway: GW }), captured);
});

Deno.test("on-link pin 192.0.2.8/32 dev 3 = `ip route add|del 192.0.2.8/32 dev X` (captured)", () => {
  const add = hex(`
    2c 00 00 00 18 00 05 06 69 72 14 6b 00 00 00 00
    02 20 00 00 fe 03 fd 01 00 00 00 00 08 00 01 00
    c0 00 02 08 08 00 04 00 03 00 00 00`);
  const del = hex(`
    2c 00 00 00 19 00 05 00 69 72 14 6b 00 00 00 00
    02 20 00 00 fe 00 ff 00 00 00 00 00 08 00 01 00
    c0 00 02 08 08 00 04 00 03 00 00 00`);
  const onLink = { ...PIN, dst: parseIP("192.0.2.8") };
  assert.deepEqual(encodeNewRoute(onLink), add);
  assert.deepEqual(encodeDelRoute(onLink), del);
});

Deno.test("IPv6 gateway route: 16-byte DST and GATEWAY, scope UNIVERSE; mixed families refused", () => {
  const dst = parseIP("2001:db8::7");
  const gateway = parseIP("fe80::1");
  const m = encodeNewGatewayRoute({ seq: 1, dst, dstLen: 128, index: 3, gateway });
  assert.equal(m.length, 16 + 12 + 20 + 20 + 8);
  assert.deepEqual(m.subarray(16, 28), hex("0a 80 00 00 fe 03 00 01 00 00 00 00"));
  assert.deepEqual(m.subarray(28, 32), hex("14 00 01 00"));
  assert.deepEqual(m.subarray(32, 48), dst);
  assert.deepEqual(m.subarray(48, 52), hex("14 00 05 00"));
  assert.deepEqual(m.subarray(52, 68), gateway);
  assert.deepEqual(m.subarray(68), hex("08 00 04 00 03 00 00 00"));
  assert.throws(() => encodeNewGatewayRoute({ ...PIN, gateway }), StructError);
  assert.throws(() => encodeDelGatewayRoute({ ...PIN, gateway }), StructError);
});
