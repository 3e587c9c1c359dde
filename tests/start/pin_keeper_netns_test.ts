/**
 * The pin keeper against the real Linux kernel (issue 14): a "laptop" namespace with two uplinks,
 * lana to router A (10.0.0.1) and lanb to router B (10.1.0.1), each router owning the endpoint
 * 192.0.2.7; a tun with the half-defaults and the endpoint pinned via A. The network then changes
 * under a running keeper: the default moves to B, then A's side is the only one left when lanb
 * goes down (the kernel flushes the pin with it), then there is no default at all. The pin must
 * follow within a few seconds, the half-defaults must stay, and stop() must remove nothing. This
 * file is both the test and the script run inside the laptop namespace (import.meta.main).
 */
import assert from "node:assert/strict";
import { linuxPlatform } from "../../src/net/linux.ts";
import type { PinRoute } from "../../src/net/types.ts";
import { NO_NETWORK, startPinKeeper } from "../../src/start/pin_keeper.ts";
import { addVethPair, inNetns, ipIn, netnsAvailable, withNetns } from "../support/netns.ts";

const ENDPOINT = "192.0.2.7";

async function ip(...args: string[]): Promise<string> {
  const o = await new Deno.Command("ip", { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  if (!o.success) throw new Error(`ip ${args.join(" ")}: ${dec.decode(o.stderr)}`);
  return dec.decode(o.stdout);
}

/** `ip route show PREFIX` as "GW DEV" lines. */
async function shown(prefix: string): Promise<string[]> {
  const rs: { gateway?: string; dev: string }[] = JSON.parse(
    await ip("-j", "route", "show", prefix),
  );
  return rs.map((r) => `${r.gateway ?? "on-link"} ${r.dev}`);
}

async function until(what: string, ok: () => Promise<boolean>, ms = 5000): Promise<number> {
  const t0 = Date.now();
  while (!(await ok())) {
    if (Date.now() - t0 > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - t0;
}

async function ping(): Promise<boolean> {
  const o = await new Deno.Command("ping", {
    args: ["-c", "1", "-W", "2", ENDPOINT],
    stdout: "null",
    stderr: "null",
  }).output();
  return o.success;
}

async function scenario(): Promise<void> {
  const net = linuxPlatform();
  const before = await net.routes.get(ENDPOINT);
  const pin: PinRoute = { cidr: `${ENDPOINT}/32`, gateway: before!.gateway, ifname: "lana" };
  assert.equal(pin.gateway, "10.0.0.1");
  const tun = await net.openTun({
    name: "ssmpt0",
    mtu: 1400,
    address: "100.64.0.2",
    peer: "100.64.0.1",
    prefixLength: 32,
  });
  await net.routes.add("0.0.0.0/1", tun.name);
  await net.routes.add("128.0.0.0/1", tun.name);
  await net.routes.addPin(pin);
  assert.equal(await ping(), true);

  const lines: string[] = [];
  let pins: PinRoute[] = [pin];
  const keeper = startPinKeeper({
    routes: net.routes,
    pins,
    periodMs: 200,
    onChange: (l) => lines.push(l),
    onPins: (p) => (pins = p),
  });
  // Keep this script's event loop alive: the keeper's timer is unref'd.
  const alive = setInterval(() => {}, 100);

  // 1. The default moves to router B (another Wi-Fi): the pin still points at A, now stale.
  await ip("route", "del", "default", "via", "10.0.0.1");
  await ip("route", "add", "default", "via", "10.1.0.1", "dev", "lanb");
  const took = await until("re-pinned via B", async () => {
    const r = await shown(pin.cidr);
    return r.length === 1 && r[0] === "10.1.0.1 lanb";
  });
  console.log(`re-pinned via B in ${took} ms`);
  assert.deepEqual(lines, ["network changed: endpoints now pinned via 10.1.0.1 on lanb"]);
  assert.deepEqual(pins, [{ cidr: pin.cidr, gateway: "10.1.0.1", ifname: "lanb" }]);
  assert.equal(await ping(), true, "the endpoint is not reachable via B");

  // 2. lanb goes down with A's default as the fallback: the kernel flushes lanb's routes, the
  // pin among them, and the endpoint would go into the tunnel until the keeper puts it on A.
  await ip("route", "add", "default", "via", "10.0.0.1", "dev", "lana", "metric", "200");
  await ip("link", "set", "lanb", "down");
  await until("re-pinned via A", async () => (await shown(pin.cidr)).join() === "10.0.0.1 lana");
  assert.equal(lines.at(-1), "network changed: endpoints now pinned via 10.0.0.1 on lana");
  assert.deepEqual(pins, [{ cidr: pin.cidr, gateway: "10.0.0.1", ifname: "lana" }]);
  assert.equal(await ping(), true, "the endpoint is not reachable via A");

  // 3. No default at all: said once, the pin is left as it is.
  await ip("route", "del", "default");
  await until("no network said", () => Promise.resolve(lines.at(-1) === NO_NETWORK));
  await new Promise((r) => setTimeout(r, 800));
  assert.equal(lines.filter((l) => l === NO_NETWORK).length, 1);
  assert.deepEqual(await shown(pin.cidr), ["10.0.0.1 lana"]);

  // stop() removes nothing: the pin stays for the caller's undo, the half-defaults are untouched.
  await keeper.stop();
  clearInterval(alive);
  assert.deepEqual(await shown(pin.cidr), ["10.0.0.1 lana"]);
  assert.deepEqual(await shown("0.0.0.0/1"), ["on-link ssmpt0"]);
  assert.deepEqual(await shown("128.0.0.0/1"), ["on-link ssmpt0"]);
  assert.equal(lines.length, 3, lines.join("\n"));

  for (const p of pins) await net.routes.deletePin(p);
  assert.deepEqual(await shown(pin.cidr), []);
  tun.close();
  console.log("keeper ok");
}

if (import.meta.main) await scenario();

Deno.test({
  name:
    "pin keeper in namespaces: the endpoint pin follows the default from router A to B and back",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const a = netnsAvailable();
    if (!a.ok) throw new Error(`this test needs root and /dev/net/tun on Linux: ${a.why}`);
    await withNetns(["pkl", "pka", "pkb"], async (laptop, routerA, routerB) => {
      await addVethPair(
        { ns: laptop, name: "lana", cidr: "10.0.0.2/24" },
        { ns: routerA, name: "wan0", cidr: "10.0.0.1/24" },
      );
      await addVethPair(
        { ns: laptop, name: "lanb", cidr: "10.1.0.2/24" },
        { ns: routerB, name: "wan0", cidr: "10.1.0.1/24" },
      );
      for (const r of [routerA, routerB]) {
        await ipIn(r, "addr", "add", `${ENDPOINT}/32`, "dev", "lo");
      }
      await ipIn(laptop, "route", "add", "default", "via", "10.0.0.1", "dev", "lana");
      const o = await inNetns(laptop, import.meta.url);
      assert.equal(o.code, 0, `scenario failed:\n${o.stdout}\n${o.stderr}`);
      assert.match(o.stdout, /keeper ok/);
    });
  },
});
