/**
 * The pin keeper on macOS, end to end through darwinPlatform() and the fake libc: the "network
 * change" scenario of macos-dns-routes §7. Our utun is primary (configd moved the unscoped default
 * to it and keeps en0's scoped), a fallback pin holds the endpoint via 192.168.1.1; Wi-Fi joins
 * a network whose router is 10.1.0.1, with routing-socket noise about. Expected on the wire: the
 * scoped RTM_GETs, RTM_DELETE of the old /32, RTM_ADD of the /32 via 10.1.0.1 (0x807, §5.3).
 */
import assert from "node:assert/strict";
import * as C from "../../ffi/darwin/constants.ts";
import type { RtMsg } from "../../ffi/darwin/route_msg.ts";
import type { PinRoute } from "../../src/net/types.ts";
import { PinKeeper } from "../../src/start/pin_keeper.ts";
import { darwinWithTun } from "../support/darwin_fake_tun.ts";

function hex(s: string): Uint8Array {
  return new Uint8Array(s.replace(/\s+/g, "").match(/../g)!.map((b) => parseInt(b, 16)));
}
const zeros = (n: number) => " 00".repeat(n);
const SCOPED = C.RTF_UP | C.RTF_GATEWAY | C.RTF_STATIC | C.RTF_IFSCOPE;

/** §5.3's pin message with the gateway given, sequence number zeroed. */
const pinMsg = (type: number, gw: string) =>
  hex(
    `7c 00 05 0${type} 00 00 00 00 07 08 00 00 03 00 00 00` + zeros(92 - 16) +
      "10 02 00 00 34 5e 00 0a 00 00 00 00 00 00 00 00" +
      "10 02 00 00 " + gw.split(".").map((b) => Number(b).toString(16).padStart(2, "0")).join(" ") +
      zeros(8),
  );
const unseq = (b: Uint8Array) => {
  const c = b.slice();
  c.fill(0, 0x14, 0x18);
  return c;
};

Deno.test("§7 network change: the fallback pin is deleted and re-added via the new router", async () => {
  const { sys, net, tun } = await darwinWithTun();
  const before = await net.routes.get("52.94.0.10");
  const pin: PinRoute = { cidr: "52.94.0.10/32", gateway: before!.gateway, ifname: "en0" };
  await net.routes.addPin(pin);
  await net.routes.add("0.0.0.0/1", tun.name);
  await net.routes.add("128.0.0.0/1", tun.name);
  // IPMonitor makes the utun primary.
  sys.routes.set("0.0.0.0/0", {
    ifname: "utun5",
    index: 24,
    gateway: "169.254.169.2",
    flags: 0x803,
  });
  sys.routes.set("0.0.0.0/0%4", { ifname: "en0", index: 4, gateway: "192.168.1.1", flags: SCOPED });

  const lines: string[] = [];
  const reported: PinRoute[][] = [];
  const keeper = new PinKeeper({
    routes: net.routes,
    pins: [pin],
    onChange: (l) => lines.push(l),
    onPins: (p) => reported.push(p),
  });
  sys.calls.length = 0;
  await keeper.check();
  // Nothing changed: lookups only.
  assert.deepEqual(
    sys.calls.filter((c) => c.rtm).map((c) => (c.rtm as RtMsg).type),
    [C.RTM_GET, C.RTM_GET, C.RTM_GET],
  );
  assert.deepEqual(lines, []);

  // Wi-Fi joins another network; other routing events are in flight meanwhile.
  sys.routes.delete("192.168.1.0/24");
  sys.routes.set("10.1.0.0/24", { ifname: "en0", index: 4, flags: 0x1 });
  sys.routes.set("0.0.0.0/0%4", { ifname: "en0", index: 4, gateway: "10.1.0.1", flags: SCOPED });
  sys.noise = [
    hex("10 00 05 0e" + zeros(12)), // RTM_IFINFO
    hex("5c 00 05 01 00 00 00 00 00 00 00 00 00 00 00 00 07 00 00 00" + zeros(72)), // an RTM_ADD
  ];
  sys.calls.length = 0;
  await keeper.check();
  const changes = sys.calls.filter((c) => c.rtm && (c.rtm as RtMsg).type !== C.RTM_GET);
  assert.deepEqual(changes.map((c) => unseq(c.bytes as Uint8Array)), [
    pinMsg(C.RTM_DELETE, "192.168.1.1"),
    pinMsg(C.RTM_ADD, "10.1.0.1"),
  ]);
  assert.deepEqual(sys.routes.get("52.94.0.10/32"), {
    ifname: "en0",
    index: 4,
    gateway: "10.1.0.1",
    flags: 0x807,
  });
  assert.deepEqual(lines, ["network changed: endpoints now pinned via 10.1.0.1 on en0"]);
  assert.deepEqual(reported, [[{ ...pin, gateway: "10.1.0.1" }]]);
  // The half-defaults were not touched.
  assert.equal(sys.routes.get("0.0.0.0/1")?.ifname, "utun5");
  assert.equal(sys.routes.get("128.0.0.0/1")?.ifname, "utun5");

  // Settled.
  sys.calls.length = 0;
  await keeper.check();
  assert.equal(sys.calls.some((c) => c.rtm && (c.rtm as RtMsg).type !== C.RTM_GET), false);
  tun.close();
  assert.deepEqual(sys.openFds, []);
});
