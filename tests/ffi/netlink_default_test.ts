/**
 * The system's default route on Linux, pure side: the dump request against what iproute2 6.1 sends
 * for `ip route show default`, and the choice among dumped routes, on the kernel's own answer.
 * Both captured with `strace -e trace=sendto,recvmsg -e read=all -e write=all ip route show
 * default` in a throwaway namespace with two uplinks: lana (ifindex 2) default via 10.0.0.1
 * metric 100, lanb (ifindex 3) default via 10.1.0.1 metric 50 (ip's sequence number 0x6b14797f).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodeRoutes,
  encodeDumpRoutes,
  type NlMessage,
  pickDefaultRoute,
  type RouteReply,
  splitMessages,
} from "../../ffi/linux/netlink.ts";
import { parseIP } from "../../ffi/struct.ts";

const hex = (s: string) => new Uint8Array(s.trim().split(/\s+/).map((x) => parseInt(x, 16)));
const SEQ = 0x6b14797f;

Deno.test("RTM_GETROUTE dump of the main table = `ip route show default` (captured)", () => {
  // NLM_F_REQUEST|NLM_F_DUMP (0x301), rtmsg AF_INET with every field 0, then RTA_TABLE = 254.
  // iproute2 writes 156 bytes from its request buffer; nlmsg_len says 36 and the rest is zeros.
  const captured = hex(`
    24 00 00 00 1a 00 01 03 7f 79 14 6b 00 00 00 00
    02 00 00 00 00 00 00 00 00 00 00 00 08 00 0f 00
    fe 00 00 00`);
  assert.deepEqual(encodeDumpRoutes({ seq: SEQ }), captured);
});

/** The kernel's first reply buffer to that request: four RTM_NEWROUTE, NLM_F_MULTI. */
const DUMP = hex(`
  3c 00 00 00 18 00 22 00 7f 79 14 6b ea 35 00 00
  02 00 00 00 fe 03 00 01 00 00 00 00 08 00 0f 00
  fe 00 00 00 08 00 06 00 32 00 00 00 08 00 05 00
  0a 01 00 01 08 00 04 00 03 00 00 00 3c 00 00 00
  18 00 22 00 7f 79 14 6b ea 35 00 00 02 00 00 00
  fe 03 00 01 00 00 00 00 08 00 0f 00 fe 00 00 00
  08 00 06 00 64 00 00 00 08 00 05 00 0a 00 00 01
  08 00 04 00 02 00 00 00 3c 00 00 00 18 00 22 00
  7f 79 14 6b ea 35 00 00 02 18 00 00 fe 02 fd 01
  00 00 00 00 08 00 0f 00 fe 00 00 00 08 00 01 00
  0a 00 00 00 08 00 07 00 0a 00 00 02 08 00 04 00
  02 00 00 00 3c 00 00 00 18 00 22 00 7f 79 14 6b
  ea 35 00 00 02 18 00 00 fe 02 fd 01 00 00 00 00
  08 00 0f 00 fe 00 00 00 08 00 01 00 0a 01 00 00
  08 00 07 00 0a 01 00 02 08 00 04 00 03 00 00 00`);

Deno.test("the captured dump decodes; the lower metric's default is the one picked", () => {
  const msgs = splitMessages(DUMP);
  assert.equal(msgs.length, 4);
  assert.ok(msgs.every((m) => m.seq === SEQ && m.type === 24));
  const routes = decodeRoutes(msgs);
  assert.deepEqual(
    routes.map((r) => [r.dstLen, r.priority, r.oif, r.gateway && [...r.gateway]]),
    [
      [0, 50, 3, [10, 1, 0, 1]],
      [0, 100, 2, [10, 0, 0, 1]],
      [24, undefined, 2, undefined],
      [24, undefined, 3, undefined],
    ],
  );
  const best = pickDefaultRoute(routes);
  assert.equal(best?.oif, 3);
  assert.deepEqual(best?.gateway, parseIP("10.1.0.1"));
  // The order of the dump does not matter.
  assert.equal(pickDefaultRoute([...routes].reverse())?.oif, 3);
});

const route = (o: Partial<RouteReply>): RouteReply => ({
  family: 2,
  dstLen: 0,
  table: 254,
  type: 1,
  flags: 0,
  oif: 2,
  ...o,
});

Deno.test("only a main-table unicast IPv4 default with an interface counts", () => {
  assert.equal(pickDefaultRoute([]), undefined);
  // Without a strict-check socket the kernel dumps every table: another table's default (a VPN's
  // policy table), the local table, an unreachable default, a multipath one (no top-level OIF).
  const others = [
    route({ table: 100, oif: 7 }),
    route({ table: 255, type: 2, dstLen: 32 }),
    route({ type: 7 }), // RTN_UNREACHABLE
    route({ oif: undefined }),
    route({ dstLen: 1, oif: 9 }), // a half-default: more specific, not the default
    route({ family: 10, oif: 8 }),
  ];
  assert.equal(pickDefaultRoute(others), undefined);
  assert.equal(pickDefaultRoute([...others, route({ oif: 4 })])?.oif, 4);
});

Deno.test("a default whose link is down loses to one whose link is up, whatever the metrics", () => {
  const down = route({ oif: 2, priority: 10, flags: 0x10 }); // RTNH_F_LINKDOWN
  const dead = route({ oif: 3, priority: 20, flags: 0x1 }); // RTNH_F_DEAD
  const up = route({ oif: 4, priority: 600 });
  assert.equal(pickDefaultRoute([down, dead, up])?.oif, 4);
  assert.equal(pickDefaultRoute([dead, down])?.oif, 2); // both down: the metric decides
});

Deno.test("property: the pick is an eligible route with no better eligible one", () => {
  const arb = fc.record({
    table: fc.constantFrom(254, 255, 100),
    type: fc.constantFrom(1, 2, 7),
    dstLen: fc.constantFrom(0, 0, 1, 24),
    oif: fc.option(fc.integer({ min: 1, max: 9 }), { nil: undefined }),
    priority: fc.option(fc.integer({ min: 0, max: 2000 }), { nil: undefined }),
    flags: fc.constantFrom(0, 0, 0x10, 0x1),
  });
  fc.assert(fc.property(fc.array(arb, { maxLength: 8 }), (parts) => {
    const rs = parts.map(route);
    const ok = (r: RouteReply) =>
      r.table === 254 && r.type === 1 && r.dstLen === 0 && r.oif !== undefined;
    const rank = (r: RouteReply) => (r.flags ? 1e6 : 0) + (r.priority ?? 0);
    const pick = pickDefaultRoute(rs);
    const eligible = rs.filter(ok);
    if (eligible.length === 0) return pick === undefined;
    return pick !== undefined && ok(pick) && eligible.every((r) => rank(pick) <= rank(r));
  }));
});

Deno.test("a dump entry that does not parse is left out, not fatal", () => {
  const good = splitMessages(DUMP)[0];
  // An entry whose RTA_GATEWAY is not 4 bytes (RTA_VIA-style routes carry odd payloads).
  const body = hex(`
    02 00 00 00 fe 03 00 01 00 00 00 00
    0a 00 05 00 0a 00 00 01 00 00 00 00`);
  const bad: NlMessage = { type: 24, flags: 2, seq: SEQ, pid: 0, body };
  assert.deepEqual(decodeRoutes([bad, good]).map((r) => r.oif), [3]);
});
