/**
 * darwinPlatform().openTun with an IPv6 address, against the fake libc (a toy xnu): the call
 * sequence (the /128 goes on after the IPv4 address, on its own AF_INET6 socket), the exact
 * in6_aliasreq, IPv6 packets through the Tun, and failures as one UserError line with the utun
 * closed.
 */
import assert from "node:assert/strict";
import { DARWIN_E } from "../../ffi/libc.ts";
import { FakeDarwinLibc } from "../../ffi/darwin/fake_libc.ts";
import { UserError } from "../../src/errors.ts";
import { darwinPlatform } from "../../src/net/darwin.ts";
import type { TunConfig } from "../../src/net/types.ts";

const CFG: TunConfig = {
  name: "ssmp%d",
  mtu: 1400,
  address: "169.254.169.1",
  peer: "169.254.169.2",
  address6: "fd7a:5353:5d8b::2",
  prefixLength: 30,
};

function hex(s: string): Uint8Array {
  return new Uint8Array(s.replace(/\s+/g, "").match(/../g)!.map((b) => parseInt(b, 16)));
}

/** The in6_aliasreq derived byte by byte in tests/ffi/darwin_inet6_test.ts (os-ffi §4.1). */
const IN6_ALIASREQ = hex(`
  75 74 75 6e 35 00 00 00 00 00 00 00 00 00 00 00
  1c 1e 00 00 00 00 00 00 fd 7a 53 53 5d 8b 00 00
  00 00 00 00 00 00 00 02 00 00 00 00 00 00 00 00
  00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  00 00 00 00 00 00 00 00 1c 1e 00 00 00 00 00 00
  ff ff ff ff ff ff ff ff ff ff ff ff ff ff ff ff
  00 00 00 00 20 00 00 00 00 00 00 00 00 00 00 00
  00 00 00 00 00 00 00 00 ff ff ff ff ff ff ff ff`);

function setup() {
  const sys = new FakeDarwinLibc();
  const net = darwinPlatform({ sys, resolverDir: Deno.makeTempDirSync(), isAlive: () => false });
  return { sys, net };
}

Deno.test("openTun with address6: SIOCAIFADDR_IN6 on an AF_INET6 socket after the IPv4 address", async () => {
  const { sys, net } = setup();
  const tun = await net.openTun(CFG);
  assert.equal(tun.name, "utun5");
  assert.deepEqual(sys.names.slice(9), [
    "socket",
    "ioctl SIOCAIFADDR",
    "close",
    "socket",
    "ioctl SIOCAIFADDR_IN6",
    "close",
    "socket",
    "ioctl SIOCSIFMTU",
    "close",
    "socket",
    "ioctl SIOCGIFFLAGS",
    "ioctl SIOCSIFFLAGS",
    "close",
  ]);
  const [sock6, in6, close6] = sys.calls.slice(12, 15);
  assert.deepEqual([sock6.domain, sock6.type, sock6.protocol], [30, 2, 0]);
  assert.deepEqual(in6.arg, IN6_ALIASREQ);
  assert.equal(in6.fd, close6.fd);
  for (const c of sys.calls.filter((c) => c.name === "ioctl")) {
    assert.equal(c.ninthIsArg, true, `${c.req}: pointer must be 3rd and 9th`);
  }
  // Every socket but the utun's is closed again, and the interface holds both addresses.
  const sockets = sys.calls.filter((c) => c.name === "socket").length;
  assert.equal(sys.calls.filter((c) => c.name === "close").length, sockets - 1);
  assert.deepEqual(sys.ifs.get("utun5")!.addrs.map((a) => a.local), [
    "169.254.169.1",
    "fd7a:5353:5d8b::2",
  ]);
  tun.close();
  assert.deepEqual(sys.openFds, []);
  assert.equal(sys.ifs.has("utun5"), false);
});

Deno.test("IPv6 packets through the Tun: 00 00 00 1e added on write, stripped on read", async () => {
  const { sys, net } = setup();
  const tun = await net.openTun(CFG);
  const pkt = new Uint8Array(48);
  pkt[0] = 0x60;
  pkt[6] = 58; // ICMPv6
  pkt[7] = 64;
  assert.equal(tun.write(pkt), true);
  assert.deepEqual(Array.from(sys.sent.get("utun5")![0]), [0, 0, 0, 0x1e, ...pkt]);
  sys.inject("utun5", new Uint8Array([0, 0, 0, 0x1e, ...pkt]));
  assert.deepEqual((await tun.read(100)).map((p) => Array.from(p)), [Array.from(pkt)]);
  tun.close();
});

Deno.test("a rejected IPv6 address: one UserError line, the utun closed, nothing left open", async () => {
  const { sys, net } = setup();
  sys.fail("ioctl", DARWIN_E.EINVAL, (c) => c.req === "SIOCAIFADDR_IN6");
  await assert.rejects(
    net.openTun(CFG),
    (e) =>
      e instanceof UserError &&
      e.message ===
        "macOS rejected IPv6 address fd7a:5353:5d8b::2/128 on utun5 (EINVAL): please report this with your macOS version",
  );
  // Nothing after the failure but closing the scratch socket, then the utun and its wake pipe.
  assert.deepEqual(sys.names.slice(-6), [
    "socket",
    "ioctl SIOCAIFADDR_IN6",
    "close",
    "close",
    "close",
    "close",
  ]);
  assert.equal(sys.ifs.has("utun5"), false);
  assert.deepEqual(sys.openFds, []);
});

Deno.test("EPERM on the IPv6 address reads like every other step: run with sudo", async () => {
  const { sys, net } = setup();
  sys.fail("ioctl", DARWIN_E.EPERM, (c) => c.req === "SIOCAIFADDR_IN6");
  await assert.rejects(
    net.openTun(CFG),
    (e) => e instanceof UserError && e.message === "configuring utun5 needs root: run with sudo",
  );
  assert.deepEqual(sys.openFds, []);
});

Deno.test("an address6 that is not IPv6 fails before anything is created", async () => {
  const { sys, net } = setup();
  for (const bad of ["100.64.0.9", "fd7a::zz"]) {
    await assert.rejects(
      net.openTun({ ...CFG, address6: bad }),
      (e) => e instanceof UserError && e.message.startsWith("tunnel IPv6 address: "),
    );
  }
  assert.deepEqual(sys.calls, []);
});

Deno.test("without address6 no AF_INET6 socket is ever opened", async () => {
  const { sys, net } = setup();
  const { address6: _, ...v4only } = CFG;
  const tun = await net.openTun(v4only);
  assert.equal(sys.calls.some((c) => c.name === "socket" && c.domain === 30), false);
  assert.equal(sys.names.includes("ioctl SIOCAIFADDR_IN6"), false);
  tun.close();
});
