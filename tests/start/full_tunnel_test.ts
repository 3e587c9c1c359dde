import assert from "node:assert/strict";
import { UserError } from "../../src/errors.ts";
import { checkStart, type StartOptions } from "../../src/start/options.ts";
import { planNetwork, wantDiscovery } from "../../src/start/plan.ts";
import { gatewayPins, planPins } from "../../src/start/full_tunnel.ts";
import { formatPlan } from "../../src/cli/start.ts";
import { linkRoutes } from "../../src/start/apply.ts";
import { routeTable } from "../support/route_table.ts";

const base: StartOptions = {
  target: "name:bastion",
  cidr: [],
  stripes: 1,
  name: "t",
  agentPort: 7797,
};

Deno.test("--all-traffic and --cidr 0.0.0.0/0 both mean a full tunnel, through the agent", () => {
  for (const o of [{ allTraffic: true }, { cidr: ["10.0.0.0/16", "0.0.0.0/0"] }]) {
    const c = checkStart({ ...base, ...o });
    assert.equal(c.allTraffic, true);
    assert.equal(c.cidrs, undefined, "other ranges are inside the half-defaults");
    assert.equal(c.mode, "agent", "agentless carries no UDP or ICMP");
    assert.deepEqual(wantDiscovery(c), { routes: false, dns: false });
  }
  const split = checkStart({ ...base, cidr: ["10.0.0.0/16"] });
  assert.equal(split.allTraffic, false);
  assert.deepEqual(split.cidrs?.map((c) => c.text), ["10.0.0.0/16"]);
});

Deno.test("a full tunnel refuses agentless mode and --no-dns in one line each", () => {
  const bad: [Partial<StartOptions>, RegExp][] = [
    [{ allTraffic: true, mode: "agentless" }, /--all-traffic needs ssm-proxy-agent/],
    [{ cidr: ["0.0.0.0/0"], dns: false }, /drop --no-dns/],
  ];
  for (const [o, re] of bad) {
    assert.throws(
      () => checkStart({ ...base, ...o }),
      (e) => e instanceof UserError && e.exitCode === 2 && re.test(e.message),
    );
  }
});

const target = { instanceId: "i-0abc", name: "bastion" };

Deno.test("the full tunnel's plan: two half-defaults cut around --exclude, every name to the VPC", async () => {
  const c = checkStart({ ...base, allTraffic: true, exclude: ["203.0.113.0/24"] });
  const routes = routeTable([["default", { interface: "wlan0", gateway: "192.168.1.1" }]]);
  const plan = await planNetwork(c, undefined, {
    target,
    force: false,
    routes,
    running: [],
    mustReach: [{ what: "the SSM endpoint", address: "52.94.1.1" }],
  });
  assert.equal(plan.allTraffic, true);
  assert.deepEqual(plan.domains.map((d) => d.domain), ["."]);
  assert.equal(plan.dnsRequired, true);
  const cidrs = plan.routes.map((r) => r.cidr);
  assert.ok(cidrs.includes("0.0.0.0/1"), cidrs.join(" "));
  assert.ok(!cidrs.includes("128.0.0.0/1"), "the half holding the hole is split");
  assert.ok(cidrs.includes("203.0.112.0/24") && cidrs.includes("203.0.114.0/23"), cidrs.join(" "));
  assert.ok(!cidrs.some((r) => r.startsWith("203.0.113.")), "the excluded range stays outside");
});

Deno.test("pins: each endpoint through today's path, once; tunnels' and unroutable ones noted", async () => {
  const routes = routeTable([
    ["10.8.", { interface: "ssmp1" }],
    ["192.168.1.", { interface: "wlan0" }],
    ["52.", { interface: "wlan0", gateway: "192.168.1.1" }],
  ]);
  const { pins, notes } = await planPins(routes, [
    { what: "the Session Manager stream", address: "52.94.1.1" },
    { what: "the AWS endpoint ssm", address: "52.94.1.1" },
    { what: "the AWS endpoint sts", address: "192.168.1.20" },
    { what: "a VPC endpoint", address: "10.8.0.5" },
    { what: "nowhere", address: "198.51.100.7" },
    { what: "v6", address: "2600:1f18::1" },
  ], ["ssmp1"]);
  assert.deepEqual(pins, [
    {
      cidr: "52.94.1.1/32",
      ifname: "wlan0",
      gateway: "192.168.1.1",
      what: "the Session Manager stream",
    },
    { cidr: "192.168.1.20/32", ifname: "wlan0", what: "the AWS endpoint sts" },
  ]);
  assert.equal(notes.length, 2);
  assert.match(notes[0], /10\.8\.0\.5\): already routed through ssmp1/);
  assert.match(notes[1], /198\.51\.100\.7\): no route to it now; not pinned/);
  const text = formatPlan(target, {
    routes: [{ cidr: "0.0.0.0/1", reason: "all traffic" }],
    skipped: [],
    domains: [],
    dnsRequired: true,
    notes: [],
    pins,
  }, { name: "t", mode: "agent", dry: true });
  assert.match(
    text,
    /keep +52\.94\.1\.1\/32 +the Session Manager stream, via 192\.168\.1\.1 on wlan0/,
  );
  assert.match(text, /keep +192\.168\.1\.20\/32 +the AWS endpoint sts, via on-link on wlan0/);
});

Deno.test("IPv6 ranges: --cidr takes them beside IPv4 (alone they replace discovery); ::/0 is all", () => {
  const both = checkStart({ ...base, cidr: ["10.0.0.0/16", "2001:db8:10::/56"] });
  assert.deepEqual(both.cidrs?.map((c) => c.text), ["10.0.0.0/16"]);
  assert.deepEqual(both.cidrs6.map((c) => c.text), ["2001:db8:10::/56"]);
  const only6 = checkStart({ ...base, cidr: ["2001:db8:10::/56"] });
  assert.deepEqual(only6.cidrs, [], "no IPv4 discovery when ranges were given");
  assert.equal(wantDiscovery(only6).routes, false);
  assert.equal(checkStart({ ...base, cidr: ["::/0"] }).allTraffic, true);
  assert.throws(
    () => checkStart({ ...base, cidr: ["2001:db8::/32", "2001:db8:10::/56"] }),
    /overlaps --cidr 2001:db8::\/32/,
  );
});

Deno.test("a full tunnel's plan carries the IPv6 half-defaults; the apply step keeps them only with IPv6", async () => {
  const c = checkStart({ ...base, allTraffic: true });
  const plan = await planNetwork(c, undefined, {
    target,
    force: false,
    routes: routeTable([["default", { interface: "wlan0", gateway: "192.168.1.1" }]]),
    running: [],
    mustReach: [],
  });
  const cidrs = plan.routes.map((r) => r.cidr);
  assert.deepEqual(cidrs, ["0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"]);
  const said: string[] = [];
  assert.deepEqual(linkRoutes(plan, "10.0.0.2", "an old agent", (l) => said.push(l)), [
    "0.0.0.0/1",
    "128.0.0.0/1",
  ]);
  assert.deepEqual(said, ["IPv6 is not carried (an old agent): ::/1, 8000::/1 left out"]);
  assert.deepEqual(linkRoutes(plan, "10.0.0.2", true), cidrs);
});

Deno.test("--no-lan: the LAN's halves go in the tunnel, the endpoints' gateways stay on the LAN", async () => {
  assert.throws(() => checkStart({ ...base, lan: false }), /add --all-traffic/);
  const c = checkStart({ ...base, allTraffic: true, lan: false });
  assert.equal(c.noLan, true);
  const plan = await planNetwork(c, undefined, {
    target,
    force: false,
    routes: routeTable([["default", { interface: "wlan0", gateway: "192.168.1.1" }]]),
    running: [],
    mustReach: [],
    lans: [{ ifname: "wlan0", net: { base: 0xc0a80100, prefix: 24, text: "192.168.1.0/24" } }],
  });
  const lan = plan.routes.filter((r) => r.reason.startsWith("--no-lan"));
  assert.deepEqual(lan.map((r) => r.cidr), ["192.168.1.0/25", "192.168.1.128/25"]);
  assert.match(lan[0].reason, /192\.168\.1\.0\/24 on wlan0/);
  assert.deepEqual(
    gatewayPins([
      { cidr: "52.94.1.1/32", ifname: "wlan0", gateway: "192.168.1.1", what: "ssm" },
      { cidr: "52.94.1.2/32", ifname: "wlan0", gateway: "192.168.1.1", what: "sts" },
      { cidr: "192.168.1.9/32", ifname: "wlan0", what: "on the LAN" },
    ]),
    [{ cidr: "192.168.1.1/32", ifname: "wlan0", what: "the gateway to ssm" }],
  );
});
