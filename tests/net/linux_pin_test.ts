/**
 * Full-tunnel endpoint pins against the real Linux kernel, in throwaway namespaces: a "laptop"
 * namespace whose default route goes through a "router" namespace over a veth pair, a tun with the
 * two half-default routes, and pins taken from `routes.get` that keep one endpoint on the original
 * path. Like linux_tun_test.ts, this file is both the test and the script run inside the laptop
 * namespace (import.meta.main runs the scenario).
 */
import assert from "node:assert/strict";
import { UserError } from "../../src/errors.ts";
import { linuxPlatform } from "../../src/net/linux.ts";
import { type PinRoute, RouteExistsError } from "../../src/net/types.ts";
import { addVethPair, inNetns, ip, ipIn, netnsAvailable, withNetns } from "../support/netns.ts";

const ENDPOINT = "192.0.2.7"; // owned by the router namespace, reached through gateway 10.0.0.1

interface IpRoute {
  dst: string;
  gateway?: string;
  dev: string;
  scope?: string;
}

async function shown(prefix: string): Promise<IpRoute[]> {
  return JSON.parse(await ip("-j", "route", "show", prefix));
}

async function ping(address: string): Promise<boolean> {
  const o = await new Deno.Command("ping", {
    args: ["-c", "1", "-W", "2", address],
    stdout: "null",
    stderr: "null",
  }).output();
  return o.success;
}

async function scenario(): Promise<void> {
  const net = linuxPlatform();
  // The lookup done before the half-defaults go in: where pins come from.
  const before = await net.routes.get(ENDPOINT);
  assert.deepEqual(before, { interface: "lan0", gateway: "10.0.0.1", source: "10.0.0.2" });
  const pin: PinRoute = {
    cidr: `${ENDPOINT}/32`,
    gateway: before!.gateway,
    ifname: before!.interface,
  };

  const tun = await net.openTun({
    name: "ssmpt0",
    mtu: 1400,
    address: "100.64.0.2",
    peer: "100.64.0.1",
    prefixLength: 32,
  });
  await net.routes.add("0.0.0.0/1", tun.name);
  await net.routes.add("128.0.0.0/1", tun.name);
  assert.equal((await net.routes.get(ENDPOINT))?.interface, "ssmpt0"); // captured by the tunnel
  assert.equal(await ping(ENDPOINT), false);

  await net.routes.addPin(pin);
  assert.deepEqual(
    (await shown(pin.cidr)).map((r) => [r.dst, r.gateway, r.dev, r.scope]),
    [[ENDPOINT, "10.0.0.1", "lan0", undefined]],
  );
  assert.deepEqual(await net.routes.get(ENDPOINT), before);
  assert.equal((await net.routes.get("198.51.100.1"))?.interface, "ssmpt0");
  assert.equal(await ping(ENDPOINT), true, "the pinned endpoint is not reachable");
  await assert.rejects(
    net.routes.addPin(pin),
    (e) => e instanceof RouteExistsError && e.message === `a route to ${pin.cidr} already exists`,
  );

  await net.routes.deletePin(pin);
  assert.deepEqual(await shown(pin.cidr), []);
  assert.equal((await net.routes.get(ENDPOINT))?.interface, "ssmpt0");
  await net.routes.deletePin(pin); // already gone: fine

  // A route to the same endpoint through another hop is not ours: the kernel matches the gateway.
  await ip("route", "add", pin.cidr, "via", "10.0.0.3", "dev", "lan0");
  await net.routes.deletePin(pin);
  assert.deepEqual((await shown(pin.cidr)).map((r) => r.gateway), ["10.0.0.3"]);
  await ip("route", "del", pin.cidr, "via", "10.0.0.3", "dev", "lan0");

  // On-link pin (the lookup had no gateway): the dev-route form, scope link.
  const onLink: PinRoute = { cidr: "192.0.2.8/32", ifname: "lan0" };
  await net.routes.addPin(onLink);
  assert.deepEqual(
    (await shown(onLink.cidr)).map((r) => [r.dst, r.gateway, r.dev, r.scope]),
    [["192.0.2.8", undefined, "lan0", "link"]],
  );
  await assert.rejects(net.routes.addPin(onLink), RouteExistsError);
  await net.routes.deletePin(onLink);
  assert.deepEqual(await shown(onLink.cidr), []);
  await net.routes.deletePin(onLink);

  // One clear line for what the user can act on; nothing is left behind.
  await assert.rejects(
    net.routes.addPin({ cidr: "192.0.2.9/32", gateway: "10.9.9.9", ifname: "lan0" }),
    (e) =>
      e instanceof UserError &&
      e.message ===
        "cannot pin 192.0.2.9/32 via 10.9.9.9: the gateway is not reachable on lan0 (did the network change?)",
  );
  await assert.rejects(
    net.routes.addPin({ ...pin, ifname: "nope0" }),
    (e) => e instanceof UserError && e.message === `cannot pin ${pin.cidr}: no interface nope0`,
  );
  await net.routes.deletePin({ ...pin, ifname: "nope0" });
  await assert.rejects(net.routes.addPin({ ...pin, gateway: "fe80::1" }), UserError);
  await assert.rejects(net.routes.addPin({ ...pin, cidr: "192.0.2.300/32" }), UserError);
  assert.deepEqual(await shown("192.0.2.0/24"), []);

  tun.close();
  console.log("pins ok");
}

if (import.meta.main) await scenario();

Deno.test({
  name: "linux pins in namespaces: an endpoint kept on the original path under half-defaults",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const a = netnsAvailable();
    if (!a.ok) throw new Error(`this test needs root and /dev/net/tun on Linux: ${a.why}`);
    await withNetns(["pinl", "pinr"], async (laptop, router) => {
      await addVethPair(
        { ns: laptop, name: "lan0", cidr: "10.0.0.2/24" },
        { ns: router, name: "wan0", cidr: "10.0.0.1/24" },
      );
      await ipIn(router, "addr", "add", `${ENDPOINT}/32`, "dev", "lo");
      await ipIn(laptop, "route", "add", "default", "via", "10.0.0.1", "dev", "lan0");
      const o = await inNetns(laptop, import.meta.url);
      assert.equal(o.code, 0, `scenario failed:\n${o.stdout}\n${o.stderr}`);
      assert.match(o.stdout, /pins ok/);
    });
  },
});
