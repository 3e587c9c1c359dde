/**
 * `routes.defaultRoute()` against the real Linux kernel in throwaway namespaces: a "laptop" with
 * two uplinks (lana → 10.0.0.1, lanb → 10.1.0.1, both to one "router" namespace). It must answer
 * the system's own default also under our half-defaults (where a lookup answers the tun), pick by
 * metric, prefer a link that is up, and ignore other tables and unreachable defaults. This file is
 * both the test and the script run inside the laptop namespace (import.meta.main).
 */
import assert from "node:assert/strict";
import { linuxPlatform } from "../../src/net/linux.ts";
import { addVethPair, inNetns, netnsAvailable, withNetns } from "../support/netns.ts";

async function sh(...args: string[]): Promise<void> {
  const o = await new Deno.Command("ip", { args, stderr: "piped" }).output();
  if (!o.success) throw new Error(`ip ${args.join(" ")}: ${new TextDecoder().decode(o.stderr)}`);
}

async function scenario(router: string): Promise<void> {
  const { routes, openTun } = linuxPlatform();
  const def = async () => {
    const r = await routes.defaultRoute();
    return r && `${r.gateway ?? "on-link"} ${r.interface}`;
  };
  assert.equal(await def(), undefined, "no default route yet");

  await sh("route", "add", "default", "via", "10.0.0.1", "dev", "lana", "metric", "100");
  assert.equal(await def(), "10.0.0.1 lana");

  // Our half-defaults: a lookup now answers the tun, the default is still lana's.
  const tun = await openTun({
    name: "ssmpt0",
    mtu: 1400,
    address: "100.64.0.2",
    peer: "100.64.0.1",
    prefixLength: 32,
  });
  await routes.add("0.0.0.0/1", tun.name);
  await routes.add("128.0.0.0/1", tun.name);
  assert.equal((await routes.get("198.51.100.1"))?.interface, "ssmpt0");
  assert.equal(await def(), "10.0.0.1 lana");

  // Another table's default (policy routing, a VPN's), an unreachable default: not the answer.
  await sh("route", "add", "default", "via", "10.1.0.1", "dev", "lanb", "table", "100");
  await sh("route", "add", "unreachable", "default", "metric", "1");
  assert.equal(await def(), "10.0.0.1 lana");

  // Two uplinks: the lower metric wins, as in the kernel's own choice.
  await sh("route", "add", "default", "via", "10.1.0.1", "dev", "lanb", "metric", "50");
  assert.equal(await def(), "10.1.0.1 lanb");
  await sh("route", "del", "unreachable", "default", "metric", "1");

  // The router's end goes away (the cable, the AP): the kernel keeps lanb's route, marked
  // linkdown, and (ignore_routes_with_linkdown aside) it still sorts first by metric.
  await sh("-n", router, "link", "set", "wanb", "down");
  for (let i = 0; i < 50 && (await def()) !== "10.0.0.1 lana"; i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(await def(), "10.0.0.1 lana", "a linkdown default was picked");

  // lana taken down: its routes are flushed; lanb's (linkdown) is all there is.
  await sh("link", "set", "lana", "down");
  assert.equal(await def(), "10.1.0.1 lanb");
  await sh("route", "del", "default", "via", "10.1.0.1", "dev", "lanb", "metric", "50");
  assert.equal(await def(), undefined);
  tun.close();
  console.log("default ok");
}

if (import.meta.main) {
  if (Deno.args[0] === "scenario") await scenario(Deno.args[1]);
}

Deno.test({
  name: "linux defaultRoute in namespaces: the system's own default under half-defaults",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const a = netnsAvailable();
    if (!a.ok) throw new Error(`this test needs root and /dev/net/tun on Linux: ${a.why}`);
    await withNetns(["dfl", "dfr"], async (laptop, router) => {
      await addVethPair(
        { ns: laptop, name: "lana", cidr: "10.0.0.2/24" },
        { ns: router, name: "wana", cidr: "10.0.0.1/24" },
      );
      await addVethPair(
        { ns: laptop, name: "lanb", cidr: "10.1.0.2/24" },
        { ns: router, name: "wanb", cidr: "10.1.0.1/24" },
      );
      const o = await inNetns(laptop, import.meta.url, ["scenario", router]);
      assert.equal(o.code, 0, `scenario failed:\n${o.stdout}\n${o.stderr}`);
      assert.match(o.stdout, /default ok/);
    });
  },
});
