/**
 * Full-tunnel routing through darwinPlatform() against the fake libc (a toy xnu, macos-dns-routes
 * §7): the pin is taken from a lookup before the half-defaults, the call sequence and bytes that
 * reach the routing socket, and what is (not) deleted: a pin that now goes another way is left
 * alone, and a pin survives the utun's close (a crash), so the next run must remove it.
 */
import assert from "node:assert/strict";
import type { FakeDarwinLibc } from "../../ffi/darwin/fake_libc.ts";
import { darwinWithTun } from "../support/darwin_fake_tun.ts";
import type { RtMsg } from "../../ffi/darwin/route_msg.ts";
import { UserError } from "../../src/errors.ts";
import { type PinRoute, RouteExistsError } from "../../src/net/types.ts";

function hex(s: string): Uint8Array {
  return new Uint8Array(s.replace(/\s+/g, "").match(/../g)!.map((b) => parseInt(b, 16)));
}
const zeros = (n: number) => " 00".repeat(n);

const setup = darwinWithTun;

const writes = (sys: FakeDarwinLibc) => sys.calls.filter((c) => c.rtm);
const types = (sys: FakeDarwinLibc) => writes(sys).map((c) => (c.rtm as RtMsg).type);
/** A written message with its sequence number (@0x14) zeroed, to compare with golden bytes. */
const unseq = (b: Uint8Array) => {
  const c = b.slice();
  c.fill(0, 0x14, 0x18);
  return c;
};

/** macos-dns-routes §5.3: 52.94.0.10 via 192.168.1.1, with seq zeroed. */
const PIN_ADD = hex(
  "7c 00 05 01 00 00 00 00 07 08 00 00 03 00 00 00" + zeros(92 - 16) +
    "10 02 00 00 34 5e 00 0a 00 00 00 00 00 00 00 00" +
    "10 02 00 00 c0 a8 01 01 00 00 00 00 00 00 00 00",
);

Deno.test("full tunnel: half-defaults (§5.2 bytes) and a pin from the earlier lookup", async () => {
  const { sys, net, tun } = await setup();
  const before = await net.routes.get("52.94.0.10");
  assert.deepEqual(before, { interface: "en0", gateway: "192.168.1.1", source: "192.168.1.23" });
  const pin: PinRoute = {
    cidr: "52.94.0.10/32",
    gateway: before!.gateway,
    ifname: before!.interface,
  };

  sys.calls.length = 0;
  await net.routes.add("0.0.0.0/1", tun.name);
  await net.routes.add("128.0.0.0/1", tun.name);
  const [low, high] = writes(sys).map((c) => unseq(c.bytes as Uint8Array));
  const half = hex(
    "88 00 05 01 00 00 00 00 01 08 00 00 07 00 00 00" + zeros(92 - 16) +
      "10 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00" +
      "14 12 18 00 01 05 00 00 75 74 75 6e 35 00 00 00 00 00 00 00" +
      "05 02 00 00 80 00 00 00",
  );
  assert.deepEqual(low, half);
  half[0x5c + 4] = 0x80;
  assert.deepEqual(high, half);
  assert.equal((await net.routes.get("52.94.0.10"))?.interface, "utun5"); // captured

  sys.calls.length = 0;
  await net.routes.addPin(pin);
  assert.deepEqual(sys.names, ["if_nametoindex", "socket", "write", "close"]);
  assert.deepEqual(unseq(sys.calls[2].bytes as Uint8Array), PIN_ADD);
  assert.deepEqual(sys.routes.get("52.94.0.10/32"), {
    ifname: "en0",
    index: 4,
    gateway: "192.168.1.1",
    flags: 0x807,
  });
  assert.deepEqual(await net.routes.get("52.94.0.10"), before);
  assert.equal((await net.routes.get("52.94.0.11"))?.interface, "utun5");
  await assert.rejects(
    net.routes.addPin(pin),
    (e) => e instanceof RouteExistsError && e.message === "a route to 52.94.0.10/32 already exists",
  );

  // Delete: RTM_GET (is it ours?), then RTM_DELETE = the add with type 2.
  sys.calls.length = 0;
  await net.routes.deletePin(pin);
  assert.deepEqual(types(sys), [4, 2]);
  const del = PIN_ADD.slice();
  del[3] = 2;
  assert.deepEqual(unseq(writes(sys)[1].bytes as Uint8Array), del);
  assert.equal(sys.routes.has("52.94.0.10/32"), false);
  assert.equal((await net.routes.get("52.94.0.10"))?.interface, "utun5");
  // Gone: the lookup now finds the half-default through utun5, which is not the pin.
  sys.calls.length = 0;
  await net.routes.deletePin(pin);
  assert.deepEqual(types(sys), [4]);

  // Half-defaults off in teardown order, then the tunnel.
  await net.routes.delete("128.0.0.0/1", tun.name);
  await net.routes.delete("0.0.0.0/1", tun.name);
  assert.deepEqual([...sys.routes.keys()].sort(), [
    "0.0.0.0/0",
    "169.254.169.2/32",
    "192.168.1.0/24",
  ]);
  tun.close();
  assert.deepEqual(sys.openFds, []);
});

Deno.test("a pin to the same endpoint that now goes another way is left alone", async () => {
  const { sys, net } = await setup();
  const pin: PinRoute = { cidr: "52.94.0.10/32", gateway: "192.168.1.1", ifname: "en0" };
  // Another gateway on the same interface (the network changed, someone re-pinned).
  sys.routes.set("52.94.0.10/32", {
    ifname: "en0",
    index: 4,
    gateway: "192.168.1.9",
    flags: 0x807,
  });
  sys.calls.length = 0;
  await net.routes.deletePin(pin);
  assert.deepEqual(types(sys), [4]);
  assert.equal(sys.routes.get("52.94.0.10/32")?.gateway, "192.168.1.9");
  // Through the tunnel (another VPN's, or an interface route): not ours either.
  sys.routes.set("52.94.0.10/32", { ifname: "utun5", index: 24, flags: 0x805 });
  await net.routes.deletePin(pin);
  assert.equal(sys.routes.get("52.94.0.10/32")?.ifname, "utun5");
  // A race where it vanishes between the check and the delete (ESRCH) is fine.
  sys.routes.set("52.94.0.10/32", {
    ifname: "en0",
    index: 4,
    gateway: "192.168.1.1",
    flags: 0x807,
  });
  sys.fail("write", 3, (c) => (c.rtm as RtMsg | undefined)?.type === 2);
  await net.routes.deletePin(pin);
});

Deno.test("on-link pin: sockaddr_dl gateway, RTF_HOST; deleted only while it is a host route", async () => {
  const { sys, net } = await setup();
  const before = await net.routes.get("192.168.1.50");
  assert.deepEqual(before, { interface: "en0", gateway: undefined, source: "192.168.1.23" });
  const pin: PinRoute = { cidr: "192.168.1.50/32", ifname: before!.interface };
  sys.calls.length = 0;
  await net.routes.addPin(pin);
  const m = writes(sys)[0].rtm as RtMsg;
  assert.equal(m.flags, 0x805);
  assert.equal(m.addrs, 0x3);
  assert.deepEqual(sys.routes.get("192.168.1.50/32"), { ifname: "en0", index: 4, flags: 0x805 });
  await assert.rejects(net.routes.addPin(pin), RouteExistsError);
  sys.calls.length = 0;
  await net.routes.deletePin(pin);
  assert.deepEqual(types(sys), [4, 2]);
  assert.equal(sys.routes.has("192.168.1.50/32"), false);
  // Now the lookup falls back to en0's subnet route: same interface, no gateway, but not the pin.
  sys.calls.length = 0;
  await net.routes.deletePin(pin);
  assert.deepEqual(types(sys), [4]);
  assert.ok(sys.routes.has("192.168.1.0/24"));
});

Deno.test("a pin survives the utun's close (crash), so the next run removes it", async () => {
  const { sys, net, tun } = await setup();
  const pin: PinRoute = { cidr: "52.94.0.10/32", gateway: "192.168.1.1", ifname: "en0" };
  await net.routes.add("0.0.0.0/1", tun.name);
  await net.routes.addPin(pin);
  tun.close(); // the kernel purges the utun's routes, not en0's
  assert.equal(sys.routes.has("0.0.0.0/1"), false);
  assert.equal(sys.routes.get("52.94.0.10/32")?.gateway, "192.168.1.1");
  await net.routes.deletePin(pin);
  assert.equal(sys.routes.has("52.94.0.10/32"), false);
});

Deno.test("pin failures: one clear line, nothing sent or left behind", async () => {
  const { sys, net } = await setup();
  const fds = sys.openFds; // the utun's
  const pin: PinRoute = { cidr: "52.94.0.10/32", gateway: "192.168.1.1", ifname: "en0" };
  // The gateway is not on a connected network (the default route's own gateway is 192.168.1.1).
  await assert.rejects(
    net.routes.addPin({ ...pin, gateway: "10.9.9.9" }),
    (e) =>
      e instanceof UserError &&
      e.message ===
        "cannot pin 52.94.0.10/32 via 10.9.9.9: the gateway is not reachable on en0 (did the network change?)",
  );
  sys.calls.length = 0;
  await assert.rejects(
    net.routes.addPin({ ...pin, ifname: "en7" }),
    (e) => e instanceof UserError && e.message === "cannot pin 52.94.0.10/32: no interface en7",
  );
  await net.routes.deletePin({ ...pin, ifname: "en7" });
  await assert.rejects(net.routes.addPin({ ...pin, gateway: "fe80::1" }), UserError);
  await assert.rejects(net.routes.addPin({ ...pin, gateway: "gw" }), UserError);
  assert.deepEqual(writes(sys), []);
  sys.root = false;
  await assert.rejects(
    net.routes.addPin(pin),
    (e) => e instanceof UserError && e.message === "configuring en0 needs root: run with sudo",
  );
  assert.equal(sys.routes.has("52.94.0.10/32"), false);
  assert.deepEqual(sys.openFds, fds); // every routing socket closed
});
