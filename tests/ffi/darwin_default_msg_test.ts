/**
 * PF_ROUTE lookups of the default route itself (issue 14): the scoped RTM_GET of
 * macos-dns-routes §5.3 ("Physical router, while we are primary"), byte for byte from the spec,
 * and its unscoped twin (derived from it: no RTF_IFSCOPE, rtm_index 0).
 */
import assert from "node:assert/strict";
import * as C from "../../ffi/darwin/constants.ts";
import { decodeRouteReply, decodeRtMsg, encodeDefaultGet } from "../../ffi/darwin/route_msg.ts";

function hex(s: string): Uint8Array {
  const t = s.replace(/\s+/g, "");
  return new Uint8Array(t.match(/../g)!.map((b) => parseInt(b, 16)));
}
const zeros = (n: number) => " 00".repeat(n);

/** §5.3: seq 4, en0 = ifindex 4, 144 bytes. */
const SCOPED = hex(
  "90 00 05 04 04 00 00 00 03 00 00 01 15 00 00 00" + // len, v5, RTM_GET, index 4 | flags | addrs
    "00 00 00 00 04 00 00 00" + zeros(92 - 24) + // pid 0, seq 4, rest of the header
    "10 02 00 00" + zeros(12) + // DST 0.0.0.0
    "10 02 00 00" + zeros(12) + // NETMASK: a full-length zero sockaddr_in, not trimmed
    "14 12" + zeros(18), // IFP: the empty sockaddr_dl ("report the interface")
);

Deno.test("§5.3 scoped RTM_GET of 0.0.0.0/0 on en0 (spec bytes)", () => {
  assert.deepEqual(encodeDefaultGet(4, 4), SCOPED);
  const m = decodeRtMsg(SCOPED);
  assert.equal(m.flags, C.RTF_UP | C.RTF_GATEWAY | C.RTF_IFSCOPE);
  assert.equal(m.addrs, 0x15);
  assert.equal(m.index, 4);
});

Deno.test("unscoped RTM_GET of exactly 0.0.0.0/0: the same without RTF_IFSCOPE and index", () => {
  const want = SCOPED.slice();
  want[4] = 0; // rtm_index
  want[11] = 0; // RTF_IFSCOPE is 0x01000000: the high byte of rtm_flags
  want[0x14] = 7; // seq
  assert.deepEqual(encodeDefaultGet(7), want);
  // The mask keeps its length: a zero-length one would end the parse before IFP (os-ffi §7.2).
  const r = decodeRouteReply(decodeRtMsg(want));
  assert.deepEqual(r.netmask?.ip, new Uint8Array(4));
  assert.equal(r.ifp?.link?.index, 0);
});
