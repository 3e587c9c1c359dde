/**
 * The pin keeper against a scripted routing table that changes under it (a laptop switching
 * networks): which pins it replaces, through which path, what it says, and what it leaves alone.
 * The table answers like a kernel with our half-defaults in place: a pin, else a more specific
 * route, else a connected network, else the tunnel.
 */
import assert from "node:assert/strict";
import { contains, parseCidr, parseIpv4 } from "../../src/net/cidr.ts";
import { UserError } from "../../src/errors.ts";
import {
  type PinRoute,
  RouteExistsError,
  type RouteInfo,
  type Routes,
} from "../../src/net/types.ts";
import { NO_NETWORK, PinKeeper, refreshNames, startPinKeeper } from "../../src/start/pin_keeper.ts";
import { originalNameservers } from "../../src/start/full_tunnel.ts";

const TUN = "ssmp0";
const via = (p: PinRoute) => `${p.cidr} ${p.gateway ? `via ${p.gateway}` : "on-link"} ${p.ifname}`;

class Table implements Routes {
  def: RouteInfo | undefined;
  defaultError: Error | undefined;
  /** Connected networks: CIDR → interface. */
  connected = new Map<string, string>();
  /** Routes that are not ours, more specific than the half-defaults. */
  others = new Map<string, RouteInfo>();
  pins = new Map<string, PinRoute>();
  log: string[] = [];

  constructor(def: RouteInfo, connected: [string, string][]) {
    this.def = def;
    this.connected = new Map(connected);
  }

  add(): Promise<void> {
    throw new Error("the half-defaults were touched");
  }
  delete(): Promise<void> {
    throw new Error("the half-defaults were touched");
  }

  addPin(p: PinRoute): Promise<void> {
    this.log.push(`add ${via(p)}`);
    if (this.pins.has(p.cidr) || this.others.has(p.cidr)) {
      return Promise.reject(new RouteExistsError(`a route to ${p.cidr} already exists`));
    }
    if (p.gateway && this.#onLink(p.gateway) !== p.ifname) {
      return Promise.reject(
        new UserError(`cannot pin ${p.cidr} via ${p.gateway}: the gateway is not reachable`),
      );
    }
    this.pins.set(p.cidr, { ...p });
    return Promise.resolve();
  }

  deletePin(p: PinRoute): Promise<void> {
    this.log.push(`del ${via(p)}`);
    const mine = this.pins.get(p.cidr);
    if (mine && mine.ifname === p.ifname && mine.gateway === p.gateway) this.pins.delete(p.cidr);
    return Promise.resolve();
  }

  get(address: string): Promise<RouteInfo | undefined> {
    const pin = this.pins.get(`${address}/32`);
    if (pin) return Promise.resolve({ interface: pin.ifname, gateway: pin.gateway });
    const ip = parseIpv4(address)!;
    for (const [cidr, r] of this.others) {
      if (contains(parseCidr(cidr), ip)) return Promise.resolve(r);
    }
    const dev = this.#onLink(address);
    return Promise.resolve({ interface: dev ?? TUN });
  }

  defaultRoute(): Promise<RouteInfo | undefined> {
    if (this.defaultError) return Promise.reject(this.defaultError);
    return Promise.resolve(this.def);
  }

  #onLink(address: string): string | undefined {
    const ip = parseIpv4(address)!;
    for (const [cidr, dev] of this.connected) if (contains(parseCidr(cidr), ip)) return dev;
    return undefined;
  }
}

const HOME = { interface: "wlan0", gateway: "192.168.1.1" };
const CAFE = { interface: "wlan0", gateway: "192.168.2.1" };
const PINS: PinRoute[] = [
  { cidr: "52.94.0.10/32", gateway: "192.168.1.1", ifname: "wlan0" },
  { cidr: "52.94.0.11/32", gateway: "192.168.1.1", ifname: "wlan0" },
];

function setup(pins = PINS, connected: [string, string][] = [["192.168.1.0/24", "wlan0"]]) {
  const t = new Table(HOME, connected);
  for (const p of pins) t.pins.set(p.cidr, { ...p });
  const lines: string[] = [];
  const reported: PinRoute[][] = [];
  const k = new PinKeeper({
    routes: t,
    pins,
    onChange: (l) => lines.push(l),
    onPins: (p) => reported.push(p),
  });
  return { t, k, lines, reported };
}

/** Join another network on the same interface: new subnet, new router, the old address gone. */
function moveTo(t: Table, def: RouteInfo, subnet: string) {
  t.def = def;
  t.connected = new Map([[subnet, def.interface]]);
}

Deno.test("nothing changes: nothing is touched and nothing is said", async () => {
  const { t, k, lines, reported } = setup();
  for (let i = 0; i < 3; i++) await k.check();
  assert.deepEqual(t.log, []);
  assert.deepEqual(lines, []);
  assert.deepEqual(reported, []);
  assert.deepEqual(k.pins, PINS);
});

Deno.test("a new router (pins still in the table, now stale): re-pinned through it", async () => {
  const { t, k, lines, reported } = setup();
  await k.check();
  moveTo(t, CAFE, "192.168.2.0/24");
  await k.check();
  assert.deepEqual(t.log, [
    "del 52.94.0.10/32 via 192.168.1.1 wlan0",
    "add 52.94.0.10/32 via 192.168.2.1 wlan0",
    "del 52.94.0.11/32 via 192.168.1.1 wlan0",
    "add 52.94.0.11/32 via 192.168.2.1 wlan0",
  ]);
  assert.deepEqual(lines, ["network changed: endpoints now pinned via 192.168.2.1 on wlan0"]);
  const now = PINS.map((p) => ({ ...p, gateway: "192.168.2.1" }));
  assert.deepEqual(reported, [now]);
  assert.deepEqual([...t.pins.values()], now);
  // Settled: the next checks do nothing.
  t.log = [];
  await k.check();
  assert.deepEqual(t.log, []);
  assert.equal(lines.length, 1);
});

Deno.test("another interface: the pins follow the default to it", async () => {
  const { t, k, lines, reported } = setup();
  await k.check();
  t.def = { interface: "eth0", gateway: "10.1.0.1" };
  t.connected.set("10.1.0.0/24", "eth0");
  await k.check();
  assert.deepEqual(lines, ["network changed: endpoints now pinned via 10.1.0.1 on eth0"]);
  assert.deepEqual(reported.at(-1)?.map((p) => p.ifname), ["eth0", "eth0"]);
});

Deno.test("pins the kernel flushed, same network: made again the same way", async () => {
  const { t, k, lines, reported } = setup();
  await k.check();
  t.pins.delete("52.94.0.11/32"); // Linux flushed it when the link bounced
  await k.check();
  assert.deepEqual(t.log, [
    "del 52.94.0.11/32 via 192.168.1.1 wlan0",
    "add 52.94.0.11/32 via 192.168.1.1 wlan0",
  ]);
  assert.deepEqual(lines, ["network changed: endpoints now pinned via 192.168.1.1 on wlan0"]);
  assert.deepEqual(reported, [PINS]);
});

Deno.test("on-link pins stay on-link on a connected network, else go through the router", async () => {
  const pins: PinRoute[] = [
    { cidr: "192.168.1.50/32", ifname: "wlan0" },
    { cidr: "10.9.0.5/32", ifname: "eth1" }, // on a second LAN that stays
    { cidr: "52.94.0.10/32", gateway: "192.168.1.1", ifname: "wlan0" },
  ];
  const { t, k, lines } = setup(pins, [["192.168.1.0/24", "wlan0"], ["10.9.0.0/24", "eth1"]]);
  await k.check();
  // The new network happens to hold .50 as well (same addressing, another router).
  t.def = { interface: "wlan1", gateway: "192.168.1.254" };
  t.connected = new Map([["192.168.1.0/24", "wlan1"], ["10.9.0.0/24", "eth1"]]);
  await k.check();
  assert.deepEqual([...t.pins.values()].map(via), [
    "192.168.1.50/32 on-link wlan1",
    "10.9.0.5/32 on-link eth1",
    "52.94.0.10/32 via 192.168.1.254 wlan1",
  ]);
  assert.deepEqual(lines, [
    "network changed: endpoints now pinned on-link on wlan1, on-link on eth1, via 192.168.1.254 on wlan1",
  ]);
  // Now a network where .50 is not on-link: through the router like the rest.
  moveTo(t, CAFE, "192.168.2.0/24");
  await k.check();
  assert.equal(via(t.pins.get("192.168.1.50/32")!), "192.168.1.50/32 via 192.168.2.1 wlan0");
  assert.equal(via(t.pins.get("10.9.0.5/32")!), "10.9.0.5/32 via 192.168.2.1 wlan0");
});

Deno.test("a route more specific than the half-defaults through a router is kept to", async () => {
  const { t, k } = setup();
  await k.check();
  t.def = { interface: "eth0", gateway: "10.1.0.1" };
  t.connected = new Map([["10.1.0.0/24", "eth0"], ["10.2.0.0/24", "eth1"]]);
  t.others.set("52.94.0.0/24", { interface: "eth1", gateway: "10.2.0.9" });
  await k.check();
  assert.deepEqual([...t.pins.values()].map(via), [
    "52.94.0.10/32 via 10.2.0.9 eth1",
    "52.94.0.11/32 via 10.2.0.9 eth1",
  ]);
});

Deno.test("no network: said once, pins left; when one is back, re-pinned", async () => {
  const { t, k, lines, reported } = setup();
  await k.check();
  t.def = undefined;
  t.connected = new Map();
  t.pins.clear(); // flushed with the address
  for (let i = 0; i < 3; i++) await k.check();
  assert.deepEqual(lines, [NO_NETWORK]);
  assert.deepEqual(t.log, []);
  assert.deepEqual(reported, []);
  moveTo(t, CAFE, "192.168.2.0/24");
  await k.check();
  assert.deepEqual(lines, [
    NO_NETWORK,
    "network changed: endpoints now pinned via 192.168.2.1 on wlan0",
  ]);
  t.def = undefined;
  await k.check();
  assert.deepEqual(lines.at(-1), NO_NETWORK); // a second outage is said again
});

Deno.test("a router not reachable yet: said once, tried again each check until it works", async () => {
  const { t, k, lines, reported } = setup();
  await k.check();
  t.def = CAFE; // the default is there before the address (DHCP half-way)
  t.connected = new Map();
  await k.check();
  await k.check();
  assert.deepEqual(lines, [
    "cannot pin 52.94.0.10/32 via 192.168.2.1: the gateway is not reachable; retrying",
    "cannot pin 52.94.0.11/32 via 192.168.2.1: the gateway is not reachable; retrying",
  ]);
  assert.equal(reported.length, 0);
  assert.equal(t.log.filter((l) => l.startsWith("add")).length, 4);
  t.connected.set("192.168.2.0/24", "wlan0");
  await k.check();
  assert.equal(lines.at(-1), "network changed: endpoints now pinned via 192.168.2.1 on wlan0");
  assert.deepEqual(reported.at(-1)?.map((p) => p.gateway), ["192.168.2.1", "192.168.2.1"]);
});

Deno.test("other failures: one line each while they last, said again when they come back", async () => {
  const { t, k, lines } = setup();
  await k.check();
  moveTo(t, CAFE, "192.168.2.0/24");
  const deletePin = t.deletePin.bind(t);
  t.deletePin = () => Promise.reject(new Error("operation not permitted"));
  await k.check();
  await k.check();
  const denied = PINS.map((p) =>
    `cannot remove the stale pin ${p.cidr}: operation not permitted; retrying`
  );
  assert.deepEqual(lines, denied);
  t.deletePin = deletePin;
  t.addPin = () => Promise.reject(new Error("no buffer space"));
  await k.check();
  assert.deepEqual(lines.slice(2), [
    "cannot pin 52.94.0.10/32 via 192.168.2.1 on wlan0: no buffer space; retrying",
    "cannot pin 52.94.0.11/32 via 192.168.2.1 on wlan0: no buffer space; retrying",
  ]);
  t.deletePin = () => Promise.reject(new Error("operation not permitted"));
  await k.check();
  assert.deepEqual(lines.slice(4), denied);
});

Deno.test("someone else's route to the endpoint: left alone and no longer ours", async () => {
  const { t, k, lines, reported } = setup();
  await k.check();
  moveTo(t, CAFE, "192.168.2.0/24");
  t.others.set("52.94.0.11/32", { interface: "wlan0", gateway: "192.168.2.1" });
  await k.check();
  assert.deepEqual(reported.at(-1), [{ ...PINS[0], gateway: "192.168.2.1" }]);
  assert.deepEqual(k.pins, reported.at(-1));
  assert.deepEqual(lines, [
    "network changed: endpoints now pinned via 192.168.2.1 on wlan0",
    "network changed: a route to 52.94.0.11/32 that is not ours decides its path now; no longer pinned",
  ]);
});

Deno.test("IPv6 pins are not touched; a routing table that cannot be read is said once", async () => {
  const v6: PinRoute = { cidr: "2001:db8::7/128", gateway: "fe80::1", ifname: "wlan0" };
  const { t, k, lines } = setup([...PINS, v6]);
  await k.check();
  moveTo(t, CAFE, "192.168.2.0/24");
  t.defaultError = new Error("netlink: no reply");
  await k.check();
  await k.check();
  assert.deepEqual(lines, [
    "endpoint pins: cannot read the routing table (netlink: no reply); retrying",
  ]);
  t.defaultError = undefined;
  await k.check();
  assert.equal(t.log.some((l) => l.includes("2001:db8")), false);
  assert.deepEqual(k.pins.at(-1), v6);
});

Deno.test("startPinKeeper: checks on its own until stop(); stopping removes nothing", async () => {
  const t = new Table(HOME, [["192.168.1.0/24", "wlan0"]]);
  for (const p of PINS) t.pins.set(p.cidr, { ...p });
  let seen: PinRoute[] | undefined;
  const lines: string[] = [];
  const changed = Promise.withResolvers<void>();
  // The keeper's timer is unref'd: something else must keep this test's event loop alive.
  const alive = setInterval(() => {}, 5);
  const keeper = startPinKeeper({
    routes: t,
    pins: PINS,
    periodMs: 10,
    onChange: (l) => lines.push(l),
    onPins: (p) => {
      seen = p;
      changed.resolve();
    },
  });
  await new Promise((r) => setTimeout(r, 40)); // a few checks against the unchanged table
  moveTo(t, CAFE, "192.168.2.0/24");
  await changed.promise;
  await keeper.stop();
  assert.deepEqual(seen?.map((p) => p.gateway), ["192.168.2.1", "192.168.2.1"]);
  const after = t.log.length;
  moveTo(t, HOME, "192.168.1.0/24");
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(t.log.length, after, "checked after stop()");
  assert.deepEqual(lines, ["network changed: endpoints now pinned via 192.168.2.1 on wlan0"]);
  // The pins are still there: stopping removes nothing (undo is the caller's).
  assert.equal(t.pins.size, 2);
  clearInterval(alive);
});

Deno.test("startPinKeeper never keeps the process alive by itself", async () => {
  const script = `
    import { startPinKeeper } from ${
    JSON.stringify(new URL("../../src/start/pin_keeper.ts", import.meta.url).href)
  };
    const def = { interface: "eth0", gateway: "10.0.0.1" };
    const routes = {
      add: () => Promise.resolve(), delete: () => Promise.resolve(),
      addPin: () => Promise.resolve(), deletePin: () => Promise.resolve(),
      get: () => Promise.resolve(def), defaultRoute: () => Promise.resolve(def),
    };
    startPinKeeper({ routes, pins: [{ cidr: "52.94.0.10/32", ...def, ifname: "eth0" }],
      periodMs: 50, onChange: console.log, onPins: console.log });
    console.log("started");`;
  const t0 = Date.now();
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-check", script],
    signal: AbortSignal.timeout(10_000), // a ref'd timer would keep it running: killed, failed
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(o.code, 0, new TextDecoder().decode(o.stderr));
  assert.equal(new TextDecoder().decode(o.stdout), "started\n");
  assert.ok(Date.now() - t0 < 10_000);
});

Deno.test("stop() during a replacement: it is finished and reported before stop() resolves", async () => {
  const t = new Table(HOME, [["192.168.2.0/24", "wlan0"]]);
  t.def = CAFE;
  const gate = Promise.withResolvers<void>();
  const entered = Promise.withResolvers<void>();
  const addPin = t.addPin.bind(t);
  t.addPin = async (p) => {
    entered.resolve();
    await gate.promise;
    return addPin(p);
  };
  let seen: PinRoute[] | undefined;
  const alive = setInterval(() => {}, 5);
  const keeper = startPinKeeper({
    routes: t,
    pins: PINS, // not in the table: the first check replaces them
    periodMs: 10,
    onChange: () => {},
    onPins: (p) => (seen = p),
  });
  await entered.promise;
  let stopped = false;
  const stopping = keeper.stop().then(() => (stopped = true));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(stopped, false);
  gate.resolve();
  await stopping;
  clearInterval(alive);
  // The pin being replaced was finished; the second one was not started (no deletion after stop).
  assert.deepEqual(seen, [{ ...PINS[0], gateway: "192.168.2.1" }, PINS[1]]);
  assert.deepEqual(t.log.map((l) => l.split(" ").slice(0, 2).join(" ")), [
    "del 52.94.0.10/32",
    "add 52.94.0.10/32",
  ]);
});

Deno.test("an endpoint's name moves to a new address: pinned through today's path, names updated", async () => {
  const { t, k, reported } = setup();
  const names = new Map([["ssmmessages.us-east-1.amazonaws.com", ["52.94.0.10", "52.94.0.11"]]]);
  const asked: string[] = [];
  let told: Map<string, string[]> | undefined;
  const answers: Record<string, string[]> = {
    "192.168.1.53": ["52.94.0.11", "52.94.0.12"],
  };
  await refreshNames(k, {
    names,
    nameservers: ["10.255.255.1", "192.168.1.53"],
    resolve: (name, server) => {
      asked.push(`${name}@${server}`);
      const a = answers[server];
      return a ? Promise.resolve(a) : Promise.reject(new Error("timed out"));
    },
    onNames: (n) => (told = new Map(n)),
  });
  // The first server failing, the second answers; only the new address is pinned.
  assert.deepEqual(asked, [
    "ssmmessages.us-east-1.amazonaws.com@10.255.255.1",
    "ssmmessages.us-east-1.amazonaws.com@192.168.1.53",
  ]);
  assert.deepEqual(t.log, ["add 52.94.0.12/32 via 192.168.1.1 wlan0"]);
  assert.deepEqual(told?.get("ssmmessages.us-east-1.amazonaws.com"), [
    "52.94.0.12",
    "52.94.0.10",
    "52.94.0.11",
  ]);
  assert.deepEqual(reported.at(-1)?.map((p) => p.cidr), [
    "52.94.0.10/32",
    "52.94.0.11/32",
    "52.94.0.12/32",
  ]);
  // Asked again with nothing new: nothing is touched or told.
  told = undefined;
  t.log.length = 0;
  await refreshNames(k, {
    names,
    nameservers: ["192.168.1.53"],
    resolve: () => Promise.resolve(["52.94.0.12"]),
    onNames: (n) => (told = n),
  });
  assert.deepEqual(t.log, []);
  assert.equal(told, undefined);
  // The adopted pin is kept like the others: it follows a network change.
  moveTo(t, CAFE, "192.168.2.0/24");
  await k.check();
  const log: string[] = t.log;
  assert.ok(log.includes("add 52.94.0.12/32 via 192.168.2.1 wlan0"), log.join("\n"));
});

Deno.test("the machine's own nameservers: resolved's upstreams first, no loopback stubs", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/stub`, "nameserver 127.0.0.53\noptions edns0\n");
    await Deno.writeTextFile(
      `${dir}/resolved`,
      "# upstreams\nnameserver 192.168.1.1\nnameserver  1.1.1.1\nnameserver fe80::1%wlan0\n",
    );
    assert.deepEqual(await originalNameservers([`${dir}/resolved`, `${dir}/stub`]), [
      "192.168.1.1",
      "1.1.1.1",
    ]);
    assert.deepEqual(await originalNameservers([`${dir}/missing`, `${dir}/stub`]), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
