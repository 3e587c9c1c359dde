/**
 * PF_ROUTE messages against os-ffi §10.1: the kernel's own RTM_ADD echo (golang/net PR #220), the
 * derived a1–a5 vectors, and the captured failed RTM_GET echo whose rtm_errno sits at offset 24.
 */
import assert from "node:assert/strict";
import * as C from "../../ffi/darwin/constants.ts";
import {
  decodeRouteReply,
  decodeRtMsg,
  encodeRouteAdd,
  encodeRouteDelete,
  encodeRouteGet,
  encodeRtMsg,
  isReplyTo,
  RouteDecodeError,
  splitRtMessages,
} from "../../ffi/darwin/route_msg.ts";
import { sockaddrDl, sockaddrIn, sockaddrMask } from "../../ffi/darwin/sockaddr.ts";
import { formatIP, parseCidr, parseIP } from "../../ffi/struct.ts";

function hex(s: string): Uint8Array {
  const t = s.replace(/\s+/g, "");
  return new Uint8Array(t.match(/../g)!.map((b) => parseInt(b, 16)));
}
const zeros = (n: number) => " 00".repeat(n);
/** 92-byte rt_msghdr: the first 28 bytes given, the rest zero. */
const header = (first28: string) => first28 + zeros(92 - 28);

const A1 = hex(
  header("88 00 05 01 00 00 00 00 01 08 00 00 07 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00") +
    "10 02 00 00 0a 00 00 00 00 00 00 00 00 00 00 00" +
    "14 12 18 00 01 05 00 00 75 74 75 6e 35 00 00 00 00 00 00 00" +
    "05 02 00 00 ff 00 00 00",
);

Deno.test("reproduces the kernel's RTM_ADD echo byte for byte (golang/net PR #220)", () => {
  const capture = hex(
    header("88 00 05 01 00 00 00 00 41 08 00 00 07 00 00 00 92 7b 00 00 01 00 00 00 00 00 00 00") +
      "10 02 00 00 64 71 00 00 00 00 00 00 00 00 00 00" +
      "14 12 21 00 01 08 00 00 75 74 75 6e 34 33 31 39 00 00 00 00" +
      "06 02 00 00 ff ff 00 00",
  );
  const dst = parseCidr("100.113.0.0/16");
  const built = encodeRtMsg({
    type: C.RTM_ADD,
    flags: C.RTF_UP | C.RTF_DONE | C.RTF_STATIC,
    seq: 1,
    pid: 0x7b92,
    addrs: [sockaddrIn(dst.address), sockaddrDl(33, "utun4319"), sockaddrMask(16, 4)],
  });
  assert.deepEqual(built, capture);
  assert.equal(built.length, 136);
});

Deno.test("a1: RTM_ADD 10.0.0.0/8 -interface utun5 (136 bytes)", () => {
  const msg = encodeRouteAdd({
    dst: parseCidr("10.0.0.0/8"),
    ifindex: 24,
    ifname: "utun5",
    seq: 1,
  });
  assert.deepEqual(msg, A1);
});

Deno.test("a3: RTM_DELETE is a1 with type 2 and seq 2", () => {
  const want = A1.slice();
  want[3] = 2;
  want[0x14] = 2;
  const msg = encodeRouteDelete({
    dst: parseCidr("10.0.0.0/8"),
    ifindex: 24,
    ifname: "utun5",
    seq: 2,
  });
  assert.deepEqual(msg, want);
});

Deno.test("a4: RTM_GET exact prefix 10.0.0.0/8 asking for IFP", () => {
  const want = hex(
    header("88 00 05 04 00 00 00 00 03 08 00 00 15 00 00 00 00 00 00 00 03 00 00 00 00 00 00 00") +
      "10 02 00 00 0a 00 00 00 00 00 00 00 00 00 00 00" +
      "05 02 00 00 ff 00 00 00" +
      "14 12" + zeros(18),
  );
  assert.deepEqual(encodeRouteGet(parseCidr("10.0.0.0/8"), 3), want);
  // A host lookup (longest-prefix match) has no NETMASK: DST|IFP = 0x11.
  const host = decodeRtMsg(encodeRouteGet(parseCidr("10.1.2.3"), 4));
  assert.equal(host.addrs, 0x11);
  assert.equal(host.msglen, 92 + 16 + 20);
});

Deno.test("a5: RTM_ADD fd00::/8 -interface utun5 (152 bytes)", () => {
  const msg = encodeRouteAdd({ dst: parseCidr("fd00::/8"), ifindex: 24, ifname: "utun5", seq: 1 });
  assert.equal(msg.length, 152);
  assert.deepEqual(msg.subarray(0, 16), hex("98 00 05 01 00 00 00 00 01 08 00 00 07 00 00 00"));
  assert.deepEqual(
    msg.subarray(92),
    hex(
      "1c 1e 00 00 00 00 00 00 fd 00" + zeros(18) +
        "14 12 18 00 01 05 00 00 75 74 75 6e 35 00 00 00 00 00 00 00" +
        "09 1e 00 00 00 00 00 00 ff 00 00 00",
    ),
  );
});

Deno.test("a host route carries RTF_HOST and no netmask", () => {
  const m = decodeRtMsg(
    encodeRouteAdd({ dst: parseCidr("10.9.9.9/32"), ifindex: 24, ifname: "utun5", seq: 9 }),
  );
  assert.equal(m.flags, C.RTF_UP | C.RTF_STATIC | C.RTF_HOST);
  assert.equal(m.addrs, 0x3);
});

Deno.test("failed RTM_GET echo: rtm_errno is read at offset 24, not 28 (golang/go#70593)", () => {
  const echo = hex(
    header("84 00 05 04 01 00 00 00 03 08 00 01 15 00 00 00 1b 01 00 00 f5 5a 00 00 03 00 00 00") +
      "10 02 00 00" + zeros(12) + "00 02 00 00" + "14 12 00 00" + zeros(16),
  );
  const m = decodeRtMsg(echo);
  assert.equal(m.msglen, 132);
  assert.equal(m.type, C.RTM_GET);
  assert.equal(m.index, 1);
  assert.equal(m.flags, 0x01000803);
  assert.equal(m.addrs, 0x15);
  assert.equal(m.pid, 283);
  assert.equal(m.seq, 23285);
  assert.equal(m.errno, 3); // ESRCH
  assert.equal(m.sockaddrs[C.RTAX_NETMASK]!.length, 0); // zero-length, still 4 bytes on the wire
  const r = decodeRouteReply(m);
  assert.equal(formatIP(r.dst!.ip!), "0.0.0.0");
  assert.equal(r.ifp!.link!.index, 0);
  assert.ok(isReplyTo(m, C.RTM_GET, 283, 23285));
  assert.ok(!isReplyTo(m, C.RTM_GET, 283, 23286));
});

Deno.test("decodes a reply with truncated masks and picks ours out of routing noise", () => {
  const reply = encodeRtMsg({
    type: C.RTM_GET,
    flags: 0x843,
    seq: 7,
    pid: 4242,
    index: 24,
    addrs: [
      sockaddrIn(parseIP("10.0.0.0")),
      sockaddrDl(24),
      hex("07 ff ff ff ff ff ff"), // 255.255.255.0 with family 0xff, as the kernel sends it
      undefined,
      sockaddrDl(24, "utun5"),
      sockaddrIn(parseIP("169.254.169.1")),
    ],
  });
  const ifinfo = hex("10 00 05 0e" + zeros(12)); // RTM_IFINFO, not an rt_msghdr
  const other = encodeRtMsg({ type: C.RTM_GET, flags: 0, seq: 7, pid: 99, addrs: [] });
  const msgs = splitRtMessages(new Uint8Array([...ifinfo, ...other, ...reply]));
  assert.equal(msgs.length, 3);
  const ours = msgs.filter((m) => isReplyTo(m, C.RTM_GET, 4242, 7));
  assert.equal(ours.length, 1);
  const r = decodeRouteReply(ours[0]);
  assert.equal(r.index, 24);
  assert.equal(formatIP(r.netmask!.ip!), "255.255.255.0");
  assert.equal(r.ifp!.link!.name, "utun5");
  assert.equal(formatIP(r.ifa!.ip!), "169.254.169.1");
  assert.equal(r.gateway!.link!.index, 24);
});

Deno.test("garbage is a RouteDecodeError, never a crash", () => {
  assert.throws(() => decodeRtMsg(hex("ff 00 05 04")), RouteDecodeError);
  const truncated = A1.slice(0, 100);
  truncated[0] = 100;
  assert.throws(() => decodeRtMsg(truncated), RouteDecodeError);
  for (let i = 0; i < 200; i++) {
    const junk = crypto.getRandomValues(new Uint8Array(1 + (i % 140)));
    try {
      splitRtMessages(junk);
    } catch (e) {
      assert.ok(e instanceof RouteDecodeError, String(e));
    }
  }
});
