import { FakeDarwinLibc } from "../../ffi/darwin/fake_libc.ts";
import { darwinPlatform } from "../../src/net/darwin.ts";

/** The darwin platform on a fake libc with one utun open, as the route and pin tests start. */
export async function darwinWithTun() {
  const sys = new FakeDarwinLibc();
  const net = darwinPlatform({
    sys,
    resolverDir: Deno.makeTempDirSync(),
    isAlive: () => false,
    routeTimeoutMs: 200,
  });
  const tun = await net.openTun({
    mtu: 1400,
    address: "169.254.169.1",
    peer: "169.254.169.2",
    prefixLength: 30,
  });
  return { sys, net, tun };
}
