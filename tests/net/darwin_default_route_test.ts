/**
 * `routes.defaultRoute()` on macOS against the fake libc (a toy xnu with scoped routes): the
 * physical uplink's default, first while configd still has it as the unscoped default, then while
 * our utun is primary and it survives only scoped to its interface (macos-dns-routes §5.1, §5.3),
 * where the message on the wire is the spec's scoped RTM_GET.
 */
import assert from "node:assert/strict";
import * as C from "../../ffi/darwin/constants.ts";
import { DARWIN_E } from "../../ffi/libc.ts";
import type { FakeDarwinLibc } from "../../ffi/darwin/fake_libc.ts";
import { darwinWithTun } from "../support/darwin_fake_tun.ts";
import { encodeDefaultGet, type RtMsg } from "../../ffi/darwin/route_msg.ts";

const SCOPED_UP = C.RTF_UP | C.RTF_GATEWAY | C.RTF_STATIC | C.RTF_IFSCOPE;

const setup = darwinWithTun;

/** What IPMonitor does when our service becomes primary: the unscoped default moves to the utun,
 * and en0 keeps its own, scoped (netstat's `I`). */
function becomePrimary(sys: FakeDarwinLibc, router = "192.168.1.1") {
  sys.routes.set("0.0.0.0/0", {
    ifname: "utun5",
    index: 24,
    gateway: "169.254.169.2",
    flags: 0x803,
  });
  sys.routes.set("0.0.0.0/0%4", { ifname: "en0", index: 4, gateway: router, flags: SCOPED_UP });
}

const gets = (sys: FakeDarwinLibc) =>
  sys.calls.filter((c) => c.rtm && (c.rtm as RtMsg).type === C.RTM_GET);
const unseq = (b: Uint8Array) => {
  const c = b.slice();
  c.fill(0, 0x14, 0x18);
  return c;
};

Deno.test("not primary yet: the unscoped 0.0.0.0/0 itself, not the half-defaults' longest match", async () => {
  const { sys, net, tun } = await setup();
  await net.routes.add("0.0.0.0/1", tun.name);
  await net.routes.add("128.0.0.0/1", tun.name);
  assert.equal((await net.routes.get("52.94.0.10"))?.interface, "utun5");
  sys.calls.length = 0;
  const def = await net.routes.defaultRoute();
  assert.deepEqual(def, { interface: "en0", gateway: "192.168.1.1", source: "192.168.1.23" });
  const [get] = gets(sys);
  assert.equal(gets(sys).length, 1);
  assert.deepEqual(unseq(get.bytes as Uint8Array), unseq(encodeDefaultGet(0)));
  tun.close();
  assert.deepEqual(sys.openFds, []);
});

Deno.test("utun primary: en0's scoped default, asked with the §5.3 message", async () => {
  const { sys, net, tun } = await setup();
  becomePrimary(sys);
  sys.calls.length = 0;
  assert.deepEqual(await net.routes.defaultRoute(), {
    interface: "en0",
    gateway: "192.168.1.1",
    source: "192.168.1.23",
  });
  // Unscoped first (it answers the utun: skipped), then the interfaces in index order: lo0 is
  // not asked, en0 (index 4) is, with exactly the spec's bytes but for the sequence number.
  const msgs = gets(sys).map((c) => c.bytes as Uint8Array);
  assert.equal(msgs.length, 2);
  assert.deepEqual(unseq(msgs[1]), unseq(encodeDefaultGet(0, 4)));
  assert.equal(msgs[1][3], C.RTM_GET);
  assert.equal(msgs[1][4], 4);

  // Wi-Fi joins another network: IPMonitor rewrites the scoped default.
  becomePrimary(sys, "10.1.0.1");
  assert.deepEqual((await net.routes.defaultRoute())?.gateway, "10.1.0.1");
  tun.close();
});

Deno.test("an interface the kernel refuses a scoped lookup for is skipped, not fatal", async () => {
  const { sys, net, tun } = await setup();
  sys.ifs.set("gif0", { index: 2, flags: 0x8010, mtu: 1280, addrs: [] });
  becomePrimary(sys);
  sys.fail("write", DARWIN_E.ENXIO, (c) => (c.rtm as RtMsg | undefined)?.index === 2);
  assert.equal((await net.routes.defaultRoute())?.interface, "en0");
  assert.deepEqual(gets(sys).map((c) => (c.bytes as Uint8Array)[4]), [0, 2, 4]);
  tun.close();
});

Deno.test("two uplinks: the one that answered keeps answering while it has a default", async () => {
  const { sys, net, tun } = await setup();
  sys.ifs.set("en5", { index: 5, flags: 0x8863, mtu: 1500, addrs: [] });
  becomePrimary(sys);
  sys.routes.set("0.0.0.0/0%5", {
    ifname: "en5",
    index: 5,
    gateway: "10.5.0.1",
    flags: SCOPED_UP,
  });
  assert.equal((await net.routes.defaultRoute())?.interface, "en0");
  sys.routes.delete("0.0.0.0/0%4"); // Wi-Fi gone
  assert.deepEqual(await net.routes.defaultRoute(), {
    interface: "en5",
    gateway: "10.5.0.1",
    source: "192.168.1.23",
  });
  becomePrimary(sys); // Wi-Fi back: en5 still works, so it stays the answer
  sys.calls.length = 0;
  assert.equal((await net.routes.defaultRoute())?.interface, "en5");
  assert.deepEqual(gets(sys).map((c) => (c.bytes as Uint8Array)[4]), [0, 5]);
  tun.close();
});

Deno.test("no physical default at all: undefined, the utun's own default is never the answer", async () => {
  const { sys, net, tun } = await setup();
  becomePrimary(sys);
  sys.routes.delete("0.0.0.0/0%4");
  assert.equal(await net.routes.defaultRoute(), undefined);
  sys.routes.delete("0.0.0.0/0");
  assert.equal(await net.routes.defaultRoute(), undefined);
  tun.close();
  assert.deepEqual(sys.openFds, []);
});
