/**
 * darwinPlatform() end to end against the fake libc (a toy xnu): the exact call sequence of a
 * tunnel's bring-up and teardown, golden bytes of what reaches the kernel, and the failure paths
 * (EPERM, EEXIST, a route owned by another interface, EBUSY units, a rejected MTU).
 */
import assert from "node:assert/strict";
import { DARWIN_E } from "../../ffi/libc.ts";
import { FakeDarwinLibc } from "../../ffi/darwin/fake_libc.ts";
import type { RtMsg } from "../../ffi/darwin/route_msg.ts";
import { UserError } from "../../src/errors.ts";
import { darwinPlatform } from "../../src/net/darwin.ts";
import { RouteExistsError, type TunConfig } from "../../src/net/types.ts";

const CFG: TunConfig = {
  name: "ssmp%d",
  mtu: 1400,
  address: "169.254.169.1",
  peer: "169.254.169.2",
  prefixLength: 30,
};

function hex(s: string): Uint8Array {
  return new Uint8Array(s.replace(/\s+/g, "").match(/../g)!.map((b) => parseInt(b, 16)));
}

function setup() {
  const sys = new FakeDarwinLibc();
  const dir = Deno.makeTempDirSync();
  const net = darwinPlatform({ sys, resolverDir: dir, isAlive: () => false, routeTimeoutMs: 200 });
  return { sys, net, dir };
}

const routeWrites = (sys: FakeDarwinLibc) =>
  sys.calls.filter((c) => c.rtm).map((c) => c.rtm as RtMsg);

Deno.test("bring-up and teardown: exact call sequence, pointer 3rd and 9th on every ioctl", async () => {
  const { sys, net, dir } = setup();
  const tun = await net.openTun(CFG);
  assert.equal(tun.name, "utun5");
  assert.equal(tun.index, 24);
  assert.deepEqual(sys.names, [
    // utun (os-ffi §5)
    "socket",
    "ioctl CTLIOCGINFO",
    "connect",
    "getsockopt",
    "fcntl",
    "fcntl",
    "fcntl",
    "if_nametoindex",
    "pipe",
    // address, MTU, up (os-ffi §6), each on a scratch AF_INET socket
    "socket",
    "ioctl SIOCAIFADDR",
    "close",
    "socket",
    "ioctl SIOCSIFMTU",
    "close",
    "socket",
    "ioctl SIOCGIFFLAGS",
    "ioctl SIOCSIFFLAGS",
    "close",
  ]);
  const ioctls = sys.calls.filter((c) => c.name === "ioctl");
  for (const c of ioctls) {
    assert.equal(c.ninthIsArg, true, `${c.req}: pointer must be 3rd and 9th`);
    assert.deepEqual(c.middle, [0n, 0n, 0n, 0n, 0n]);
  }
  // SIOCAIFADDR carries exactly the golden in_aliasreq (os-ffi §10.1 c).
  assert.deepEqual(
    ioctls[1].arg,
    hex(`75 74 75 6e 35 00 00 00 00 00 00 00 00 00 00 00
         10 02 00 00 a9 fe a9 01 00 00 00 00 00 00 00 00
         10 02 00 00 a9 fe a9 02 00 00 00 00 00 00 00 00
         10 02 00 00 ff ff ff fc 00 00 00 00 00 00 00 00`),
  );
  assert.deepEqual(Array.from((ioctls[2].arg as Uint8Array).subarray(16, 20)), [0x78, 5, 0, 0]);
  assert.equal(sys.ifs.get("utun5")!.mtu, 1400);
  assert.equal(sys.ifs.get("utun5")!.flags & 1, 1);

  // Routes: RTM_ADD bytes = golden a1 apart from the sequence number.
  sys.calls.length = 0;
  await net.routes.add("10.0.0.0/8", "utun5");
  assert.deepEqual(sys.names, ["if_nametoindex", "socket", "write", "close"]);
  const add = sys.calls[2].bytes as Uint8Array;
  const a1 = hex(
    "88 00 05 01 00 00 00 00 01 08 00 00 07 00 00 00 00 00 00 00" + " 00".repeat(72) +
      "10 02 00 00 0a 00 00 00 00 00 00 00 00 00 00 00" +
      "14 12 18 00 01 05 00 00 75 74 75 6e 35 00 00 00 00 00 00 00 05 02 00 00 ff 00 00 00",
  );
  assert.deepEqual(add.subarray(0, 20), a1.subarray(0, 20));
  assert.deepEqual(add.subarray(24), a1.subarray(24));
  assert.equal(sys.routes.get("10.0.0.0/8")?.ifname, "utun5");

  // A lookup through the tunnel, and one through the default route.
  assert.deepEqual(await net.routes.get("10.1.2.3"), {
    interface: "utun5",
    gateway: undefined,
    source: "169.254.169.1",
  });
  assert.deepEqual(await net.routes.get("8.8.8.8"), {
    interface: "en0",
    gateway: "192.168.1.1",
    source: "192.168.1.23",
  });

  const state = await net.dns.apply({
    ifname: "utun5",
    server: "10.0.0.2",
    domains: ["corp.example"],
  });
  assert.deepEqual(state, { kind: "resolver-files", items: [`${dir}/corp.example`] });

  // Teardown in start.ts's order: routes, DNS, tun.
  sys.calls.length = 0;
  await net.routes.delete("10.0.0.0/8", "utun5");
  assert.deepEqual(routeWrites(sys).map((m) => m.type), [4, 2]); // RTM_GET (is it ours?), RTM_DELETE
  assert.equal(sys.routes.has("10.0.0.0/8"), false);
  await net.dns.revert(state);
  assert.deepEqual([...Deno.readDirSync(dir)], []);
  tun.close();
  assert.deepEqual(sys.openFds, []);
  assert.equal(sys.ifs.has("utun5"), false);
  // Deleting again, with the interface gone, is not an error and sends nothing.
  sys.calls.length = 0;
  await net.routes.delete("10.0.0.0/8", "utun5");
  assert.deepEqual(routeWrites(sys), []);
});

Deno.test("not root: EPERM → 'creating a tunnel needs root: run with sudo'", async () => {
  const { sys, net } = setup();
  sys.root = false;
  await assert.rejects(
    net.openTun(CFG),
    (e) => e instanceof UserError && e.message === "creating a tunnel needs root: run with sudo",
  );
  assert.deepEqual(sys.openFds, []);
});

Deno.test("route add without root → 'configuring utun5 needs root: run with sudo'", async () => {
  const { sys, net } = setup();
  await net.openTun(CFG);
  sys.root = false;
  await assert.rejects(
    net.routes.add("10.0.0.0/8", "utun5"),
    (e) => e instanceof UserError && e.message === "configuring utun5 needs root: run with sudo",
  );
});

Deno.test("EEXIST on a route → RouteExistsError; says where an existing route points", async () => {
  const { sys, net } = setup();
  await net.openTun(CFG);
  await net.routes.add("10.0.0.0/8", "utun5");
  await assert.rejects(
    net.routes.add("10.0.0.0/8", "utun5"),
    (e) => e instanceof RouteExistsError && e.message === "a route to 10.0.0.0/8 already exists",
  );
  sys.routes.set("172.16.0.0/12", {
    ifname: "en0",
    index: 4,
    flags: 0x803,
    gateway: "192.168.1.9",
  });
  await assert.rejects(
    net.routes.add("172.16.0.0/12", "utun5"),
    (e) =>
      e instanceof RouteExistsError &&
      e.message === "a route to 172.16.0.0/12 already exists via en0",
  );
});

Deno.test("delete leaves alone a route that now points at another interface", async () => {
  const { sys, net } = setup();
  await net.openTun(CFG);
  // Ours vanished and another VPN (utun2, index 21) installed the same prefix.
  sys.routes.set("10.0.0.0/8", { ifname: "utun2", index: 21, flags: 0x801 });
  sys.calls.length = 0;
  await net.routes.delete("10.0.0.0/8", "utun5");
  assert.deepEqual(routeWrites(sys).map((m) => m.type), [4]); // looked, did not delete
  assert.equal(sys.routes.get("10.0.0.0/8")?.ifname, "utun2");
  // A route that is simply gone (ESRCH) is fine too, as is a race where it vanishes in between.
  sys.routes.delete("10.0.0.0/8");
  await net.routes.delete("10.0.0.0/8", "utun5");
  sys.routes.set("10.0.0.0/8", { ifname: "utun5", index: 24, flags: 0x801 });
  sys.fail("write", DARWIN_E.ESRCH, (c) => (c.rtm as RtMsg | undefined)?.type === 2);
  await net.routes.delete("10.0.0.0/8", "utun5");
});

Deno.test("route get: no route → undefined; replies found among unrelated routing messages", async () => {
  const { sys, net } = setup();
  sys.noise = [
    hex("10 00 05 0e" + " 00".repeat(12)), // RTM_IFINFO
    hex("5c 00 05 04 00 00 00 00 00 00 00 00 00 00 00 00 07 00 00 00" + " 00".repeat(72)), // other pid
  ];
  assert.equal((await net.routes.get("192.168.1.40"))?.interface, "en0");
  sys.routes.clear();
  assert.equal(await net.routes.get("8.8.8.8"), undefined);
  await assert.rejects(net.routes.get("not-an-ip"), UserError);
});

Deno.test("a busy utunN is retried as 'any unit'; EBUSY throughout is a clear message", async () => {
  const { sys, net } = setup();
  const tun = await net.openTun({ ...CFG, name: "utun2" });
  assert.equal(tun.name, "utun5");
  tun.close();
  for (let i = 0; i < 3; i++) sys.fail("connect", DARWIN_E.EBUSY);
  await assert.rejects(
    net.openTun(CFG),
    (e) => e instanceof UserError && /no utun interface/.test(e.message),
  );
  assert.deepEqual(sys.openFds, []);
});

Deno.test("a failure after creation closes the utun (no half-configured interface)", async () => {
  const { sys, net } = setup();
  await assert.rejects(
    net.openTun({ ...CFG, mtu: 100 }),
    (e) => e instanceof UserError && e.message === "the kernel rejected MTU 100",
  );
  assert.equal(sys.ifs.has("utun5"), false);
  assert.deepEqual(sys.openFds, []);
  sys.fail("ioctl", DARWIN_E.EDESTADDRREQ, (c) => c.req === "SIOCAIFADDR");
  await assert.rejects(
    net.openTun(CFG),
    (e) => e instanceof UserError && /rejected address 169\.254\.169\.1 peer/.test(e.message),
  );
  assert.deepEqual(sys.openFds, []);
  await assert.rejects(net.openTun({ ...CFG, address: "x" }), UserError);
});

Deno.test("packets flow through the Tun interface with the AF header handled", async () => {
  const { sys, net } = setup();
  const tun = await net.openTun(CFG);
  const pkt = new Uint8Array([0x45, 0, 0, 20, 1, 2, 3, 4]);
  assert.equal(tun.write(pkt), true);
  assert.deepEqual(Array.from(sys.sent.get("utun5")![0]), [0, 0, 0, 2, ...pkt]);
  sys.inject("utun5", new Uint8Array([0, 0, 0, 2, ...pkt]));
  assert.deepEqual((await tun.read(100)).map((p) => Array.from(p)), [Array.from(pkt)]);
  tun.close();
});
