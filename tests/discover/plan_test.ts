import assert from "node:assert/strict";
import { planRoutes } from "../../src/discover/plan.ts";
import type { Range } from "../../src/discover/routes.ts";
import { conflictChecker } from "../../src/tunnel/checks.ts";
import { routeTable as table } from "../support/route_table.ts";
import { UserError } from "../../src/errors.ts";

/** A laptop on 192.168.1.0/24 with a second LAN 10.20.0.0/16 on eth1. */
const laptop = table([
  ["192.168.1.", { interface: "en0" }],
  ["10.20.", { interface: "eth1" }],
  ["default", { interface: "en0", gateway: "192.168.1.1", source: "192.168.1.23" }],
]);

const VPC: Range = { cidr: "10.0.0.0/16", reason: "vpc-0abc (the instance's VPC)" };
const TGW: Range = { cidr: "10.8.0.0/16", reason: "via tgw-0b0b (transit gateway)" };

Deno.test("plan: without excludes or conflicts every candidate is a route", async () => {
  assert.deepEqual(await planRoutes([VPC, TGW]), { routes: [VPC, TGW], skipped: [], notes: [] });
});

Deno.test("plan: --exclude inside a range splits it around the hole, saying so", async () => {
  const plan = await planRoutes([VPC, TGW], { exclude: ["10.0.5.0/24", "10.8.0.0/16"] });
  const why = "vpc-0abc (the instance's VPC): part of 10.0.0.0/16 minus --exclude 10.0.5.0/24";
  assert.deepEqual(
    plan.routes,
    [
      "10.0.0.0/22",
      "10.0.4.0/24",
      "10.0.6.0/23",
      "10.0.8.0/21",
      "10.0.16.0/20",
      "10.0.32.0/19",
      "10.0.64.0/18",
      "10.0.128.0/17",
    ].map((cidr) => ({ cidr, reason: why })),
  );
  assert.deepEqual(plan.skipped, [{
    cidr: "10.8.0.0/16",
    reason: "via tgw-0b0b (transit gateway): excluded by --exclude 10.8.0.0/16",
  }]);
  assert.deepEqual(plan.notes, []);
});

Deno.test("plan: two holes in one range, an exclude covering several, and one matching nothing", async () => {
  const plan = await planRoutes(
    [VPC, TGW, { cidr: "10.9.0.0/16", reason: "via pcx-1 (peering)" }],
    {
      exclude: ["10.0.0.0/17", "10.0.128.0/18", "10.8.0.0/15", "172.16.0.0/12"],
    },
  );
  assert.deepEqual(plan.routes, [{
    cidr: "10.0.192.0/18",
    reason:
      "vpc-0abc (the instance's VPC): part of 10.0.0.0/16 minus --exclude 10.0.0.0/17, 10.0.128.0/18",
  }]);
  assert.deepEqual(plan.skipped.map((s) => s.cidr), ["10.8.0.0/16", "10.9.0.0/16"]);
  assert.deepEqual(plan.notes, ["--exclude 172.16.0.0/12 matches no discovered range"]);
});

Deno.test("plan: a bad --exclude is a usage error naming the flag", async () => {
  await assert.rejects(planRoutes([VPC], { exclude: ["10.0.5.1/24"] }), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.match(e.message, /^--exclude 10.0.5.1\/24 has host bits set: did you mean 10.0.5.0\/24/);
    return true;
  });
});

Deno.test("plan: ranges that would cut off this machine are skipped, and --force keeps them", async () => {
  const lan: Range = { cidr: "10.20.0.0/16", reason: "via pcx-0c0c (peering)" };
  const home: Range = { cidr: "192.168.0.0/16", reason: "via vgw-0d0d (VPN)" };
  const endpoint: Range = { cidr: "52.94.0.0/16", reason: "via tgw-0b0b (transit gateway)" };
  const mine: Range = { cidr: "10.8.0.0/16", reason: "via tgw-0b0b (transit gateway)" };
  const conflicts = await conflictChecker(
    laptop,
    [{ what: "the AWS endpoint ssm.eu-west-1.amazonaws.com", address: "52.94.1.1" }],
    [{ name: "prod", cidrs: ["10.8.128.0/17"] }],
    [], // no interface networks: only the table above
  );
  const plan = await planRoutes([VPC, lan, home, endpoint, mine], { conflicts });
  assert.deepEqual(plan.routes, [VPC]);
  assert.deepEqual(plan.skipped, [
    {
      cidr: "10.20.0.0/16",
      reason: "via pcx-0c0c (peering): overlaps a network directly attached to eth1 (your LAN?): " +
        "routing it into the tunnel would cut it off; --exclude the overlap, or --force keeps it",
    },
    {
      cidr: "192.168.0.0/16",
      reason: "via vgw-0d0d (VPN): contains this machine's default gateway 192.168.1.1: routing " +
        "it into the tunnel would cut your connection; --exclude the overlap, or --force keeps it",
    },
    {
      cidr: "52.94.0.0/16",
      reason: "via tgw-0b0b (transit gateway): contains 52.94.1.1, the address of the AWS " +
        "endpoint ssm.eu-west-1.amazonaws.com: the tunnel would route its own traffic into " +
        "itself; --exclude the overlap, or --force keeps it",
    },
    {
      cidr: "10.8.0.0/16",
      reason:
        'via tgw-0b0b (transit gateway): overlaps 10.8.128.0/17 of the running tunnel "prod": ' +
        "stop it first (ssm-proxy stop prod)",
    },
  ]);

  // --force keeps the local conflicts (saying so) but never another tunnel's range.
  const forced = await planRoutes([VPC, lan, home, mine], { conflicts, force: true });
  assert.deepEqual(forced.routes.map((r) => r.cidr), [
    "10.0.0.0/16",
    "10.20.0.0/16",
    "192.168.0.0/16",
  ]);
  assert.match(
    forced.routes[1].reason,
    /^via pcx-0c0c \(peering\) \(kept by --force: overlaps a network directly attached to eth1/,
  );
  assert.deepEqual(forced.skipped.map((s) => s.cidr), ["10.8.0.0/16"]);

  // Excluding the other tunnel's half leaves the rest of the range routable.
  const carved = await planRoutes([mine], { conflicts, exclude: ["10.8.128.0/17"] });
  assert.deepEqual(carved.routes.map((r) => r.cidr), ["10.8.0.0/17"]);
});
