/** rtnetlink encoders against the golden bytes of os-ffi §10.2; decoders against replies and junk. */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodeError,
  decodeRoute,
  encodeDelRoute,
  encodeGetRoute,
  encodeNewAddr,
  encodeNewLink,
  encodeNewRoute,
  NetlinkDecodeError,
  splitMessages,
} from "../../ffi/linux/netlink.ts";
import { parseIP } from "../../ffi/struct.ts";

const hex = (s: string) => new Uint8Array(s.trim().split(/\s+/).map((x) => parseInt(x, 16)));

Deno.test("RTM_NEWROUTE 10.0.0.0/8 dev 5, seq 1 (golden d)", () => {
  const want = hex(`
    2c 00 00 00 18 00 05 06 01 00 00 00 00 00 00 00
    02 08 00 00 fe 03 fd 01 00 00 00 00
    08 00 01 00 0a 00 00 00
    08 00 04 00 05 00 00 00`);
  assert.deepEqual(encodeNewRoute({ seq: 1, dst: parseIP("10.0.0.0"), dstLen: 8, index: 5 }), want);
});

Deno.test("RTM_DELROUTE, same route, seq 2 (golden)", () => {
  const want = hex(`
    2c 00 00 00 19 00 05 00 02 00 00 00 00 00 00 00
    02 08 00 00 fe 00 ff 00 00 00 00 00
    08 00 01 00 0a 00 00 00 08 00 04 00 05 00 00 00`);
  assert.deepEqual(encodeDelRoute({ seq: 2, dst: parseIP("10.0.0.0"), dstLen: 8, index: 5 }), want);
});

Deno.test("RTM_NEWADDR 169.254.169.2 peer 169.254.169.1/30 idx 5 seq 3 (golden)", () => {
  const want = hex(`
    28 00 00 00 14 00 05 06 03 00 00 00 00 00 00 00
    02 1e 00 00 05 00 00 00
    08 00 02 00 a9 fe a9 02  08 00 01 00 a9 fe a9 01`);
  const got = encodeNewAddr({
    seq: 3,
    index: 5,
    local: parseIP("169.254.169.2"),
    peer: parseIP("169.254.169.1"),
    prefixLength: 30,
  });
  assert.deepEqual(got, want);
});

Deno.test("RTM_NEWADDR IPv6 matches the iproute2 capture (nodad)", () => {
  const a = parseIP("fd7a::1");
  const got = encodeNewAddr({ seq: 9, index: 2, local: a, peer: a, prefixLength: 64 });
  assert.deepEqual(got.subarray(0, 8), hex("40 00 00 00 14 00 05 06"));
  assert.deepEqual(got.subarray(16, 24), hex("0a 40 02 00 02 00 00 00"));
  assert.deepEqual(got.subarray(24, 28), hex("14 00 02 00"));
  assert.deepEqual(got.subarray(28, 44), a);
  assert.deepEqual(got.subarray(44, 48), hex("14 00 01 00"));
  assert.equal(got.length, 64);
});

Deno.test("RTM_NEWLINK idx 5 up + MTU 1400 seq 4 (golden)", () => {
  const want = hex(`
    28 00 00 00 10 00 05 00 04 00 00 00 00 00 00 00
    00 00 00 00 05 00 00 00 01 00 00 00 01 00 00 00
    08 00 04 00 78 05 00 00`);
  assert.deepEqual(encodeNewLink({ seq: 4, index: 5, mtu: 1400, up: true }), want);
});

Deno.test("RTM_GETROUTE 10.1.2.3: REQUEST only, /32, RTM_F_LOOKUP_TABLE", () => {
  const want = hex(`
    24 00 00 00 1a 00 01 00 07 00 00 00 00 00 00 00
    02 20 00 00 00 00 00 00 00 10 00 00
    08 00 01 00 0a 01 02 03`);
  assert.deepEqual(encodeGetRoute({ seq: 7, dst: parseIP("10.1.2.3") }), want);
});

Deno.test("NLMSG_ERROR: the kernel's ACK (golden) and a -EEXIST reply", () => {
  const ack = hex(`
    24 00 00 00 02 00 00 01 03 00 00 00 13 7c 00 00
    00 00 00 00
    2c 00 00 00 18 00 05 06 03 00 00 00 00 00 00 00`);
  const [m] = splitMessages(ack);
  assert.equal(m.seq, 3);
  assert.equal(m.pid, 0x7c13);
  assert.equal(decodeError(m), 0);

  const req = encodeNewRoute({ seq: 3, dst: parseIP("10.0.0.0"), dstLen: 8, index: 5 });
  const nack = new Uint8Array(64);
  nack.set(hex("40 00 00 00 02 00 00 00 03 00 00 00 13 7c 00 00 ef ff ff ff"));
  nack.set(req, 20);
  const [e] = splitMessages(nack);
  assert.equal(decodeError(e), 17);
});

Deno.test("RTM_NEWROUTE reply: OIF, GATEWAY, PREFSRC, TABLE", () => {
  // What `ip route get 10.199.5.9` returns, trimmed: rtmsg + DST, OIF, GATEWAY, PREFSRC, TABLE.
  const body = hex(`
    02 20 00 00 fe 00 00 01 00 02 00 00
    08 00 0f 00 fe 00 00 00
    08 00 01 00 0a c7 05 09
    08 00 04 00 07 00 00 00
    08 00 05 00 0a c7 00 01
    08 00 07 00 0a c7 00 02`);
  const msg = new Uint8Array(16 + body.length);
  const dv = new DataView(msg.buffer);
  dv.setUint32(0, msg.length, true);
  dv.setUint16(4, 24, true);
  dv.setUint32(8, 42, true);
  msg.set(body, 16);
  const [m] = splitMessages(msg);
  const r = decodeRoute(m);
  assert.equal(r.oif, 7);
  assert.equal(r.table, 254);
  assert.deepEqual(r.dst, parseIP("10.199.5.9"));
  assert.deepEqual(r.gateway, parseIP("10.199.0.1"));
  assert.deepEqual(r.prefsrc, parseIP("10.199.0.2"));
});

Deno.test("decoders reject malformed input with NetlinkDecodeError", () => {
  assert.throws(() => splitMessages(hex("10 00 00")), NetlinkDecodeError);
  assert.throws(
    () => splitMessages(hex("ff 00 00 00 02 00 00 00 00 00 00 00 00 00 00 00")),
    NetlinkDecodeError,
  );
  assert.throws(
    () => splitMessages(hex("04 00 00 00 02 00 00 00 00 00 00 00 00 00 00 00")),
    NetlinkDecodeError,
  );
  const [short] = splitMessages(hex("12 00 00 00 02 00 00 00 00 00 00 00 00 00 00 00 00 00"));
  assert.throws(() => decodeError(short), NetlinkDecodeError);
  const [route] = splitMessages(hex("14 00 00 00 18 00 00 00 00 00 00 00 00 00 00 00 02 00 00 00"));
  assert.throws(() => decodeRoute(route), NetlinkDecodeError);
});

Deno.test("property: garbage into the decoders → values or NetlinkDecodeError, never a crash", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (bytes, realHeader) => {
      if (realHeader && bytes.length >= 16) {
        // Make the outer length plausible so the inner decoders get exercised too.
        new DataView(bytes.buffer, bytes.byteOffset).setUint32(0, bytes.length, true);
        bytes[4] = bytes[5] & 1 ? 24 : 2;
        bytes[5] = 0;
      }
      try {
        for (const m of splitMessages(bytes)) {
          if (m.type === 2) decodeError(m);
          if (m.type === 24) decodeRoute(m);
        }
      } catch (e) {
        if (!(e instanceof NetlinkDecodeError)) throw e;
      }
    }),
    { numRuns: 2000 },
  );
});
