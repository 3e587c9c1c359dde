/**
 * discover (src/discover/discover.ts) through the unmodified SDK against the emulator's EC2 and
 * Route 53, on tests/fixtures/discovery_world.yaml.
 */
import assert from "node:assert/strict";
import { discover, type Discovery } from "../../src/discover/discover.ts";
import { ExitCode, UserError } from "../../src/errors.ts";
import { type Emulator, withEmulator } from "./harness_test.ts";

const WORLD = new URL("../fixtures/discovery_world.yaml", import.meta.url).pathname;
const APP = "i-0d15c0000000000a1"; // subnet with its own table
const DB = "i-0d15c0000000000b2"; // subnet on the main table
const PLAIN = "i-0e15e0000000000c3"; // a VPC with nothing declared
const BOTH = { routes: true, dns: true };

const at = (instanceId: string, region = "eu-central-1") => ({ instanceId, region });
const cidrs = (d: Discovery) => d.ranges.map((r) => r.cidr);
const ops = (emu: Emulator) => emu.seen.map((r) => r.op.replace(/^Action=/, ""));

Deno.test("discover: VPC blocks, peering/TGW/VPN/Cloud WAN routes, zones and DHCP domains", async () => {
  await withEmulator(WORLD, async (emu) => {
    const d = await discover({}, at(APP), BOTH);
    assert.equal(d.vpcId, "vpc-0d15c0");
    assert.equal(d.subnetId, "subnet-0a99");
    assert.equal(d.resolver, "10.20.0.2");
    assert.deepEqual(d.notes, []);
    assert.deepEqual(d.ranges, [
      { cidr: "10.20.0.0/16", reason: "vpc-0d15c0 (the instance's VPC)" },
      { cidr: "10.21.0.0/16", reason: "vpc-0d15c0 (the instance's VPC, secondary block)" },
      { cidr: "172.20.0.0/16", reason: "via pcx-0c0c0c (peering)" },
      { cidr: "10.8.0.0/13", reason: "via tgw-0b0b0b (transit gateway)" },
      { cidr: "192.168.50.0/24", reason: "via vgw-0d0d0d (VPN)" },
      { cidr: "100.80.0.0/16", reason: "via core-network-0e0e0e (Cloud WAN)" },
    ]);
    const skipped = d.skipped.map((s) => `${s.cidr ?? "-"}  ${s.reason}`);
    assert.deepEqual(skipped, [
      "10.30.0.0/16  blackhole route via pcx-0dead0 (its target is gone)",
      "-  prefix list pl-0f0f0f via tgw-0b0b0b (transit gateway) is not expanded: add its ranges with --cidr",
      "0.0.0.0/0  the default route via tgw-0b0b0b (transit gateway): --all-traffic routes everything",
      "10.40.0.0/16  via eni-0a0a0a (a network interface, e.g. an appliance): not followed",
      "203.0.113.0/24  via igw-0a0a0a (internet gateway): the internet",
      "2600:1f18::/56  IPv6 destinations are not supported yet",
      "10.9.4.0/24  via tgw-0b0b0b (transit gateway): inside 10.8.0.0/13 (via tgw-0b0b0b (transit gateway)), already routed",
    ]);
    // The zone wins over the DHCP domain for corp.example.com (first reason wins); the DHCP
    // set's second name is the region's EC2 domain, so that reason wins over the default one.
    assert.deepEqual(d.domains, [
      { domain: "corp.internal", reason: "private hosted zone Z0CORPINTERNAL00001" },
      { domain: "corp.example.com", reason: "private hosted zone Z0CORPEXAMPLE000002" },
      { domain: "eu-central-1.compute.internal", reason: "DHCP options dopt-0d15c0" },
    ]);
    // EC2 in the instance's region; Route 53 signed for us-east-1 (global).
    const scopes = new Set(emu.seen.map((r) => `${r.op} ${r.scope}`));
    assert.deepEqual([...scopes].sort(), [
      "Action=DescribeDhcpOptions eu-central-1/ec2",
      "Action=DescribeInstances eu-central-1/ec2",
      "Action=DescribeRouteTables eu-central-1/ec2",
      "Action=DescribeVpcs eu-central-1/ec2",
      "GET us-east-1/route53",
    ]);
    assert.equal(ops(emu)[0], "DescribeInstances");
  });
});

Deno.test("discover: a subnet without its own table uses the VPC's main table", async () => {
  await withEmulator(WORLD, async (emu) => {
    const d = await discover({}, at(DB), { routes: true, dns: false });
    assert.equal(d.subnetId, "subnet-0b99");
    assert.deepEqual(cidrs(d), ["10.20.0.0/16", "10.21.0.0/16", "10.8.0.0/16"]);
    assert.ok(d.skipped.some((s) => s.cidr === "0.0.0.0/0" && /via nat-0a1a/.test(s.reason)));
    // Asked for the subnet's table (none), then the main one; no DNS sources without `dns`.
    assert.deepEqual(ops(emu).filter((o) => o === "DescribeRouteTables").length, 2);
    assert.ok(!ops(emu).includes("GET") && !ops(emu).includes("DescribeDhcpOptions"));
    assert.deepEqual(d.domains, []);
  });
});

Deno.test("discover: an undeclared VPC has its local routes and the region's default DHCP domain", async () => {
  await withEmulator(WORLD, async () => {
    const d = await discover({}, at(PLAIN), BOTH);
    assert.deepEqual(cidrs(d), ["10.60.0.0/16"]);
    assert.equal(d.resolver, "10.60.0.2");
    assert.deepEqual(d.domains.map((x) => x.domain), [
      "corp.example.com",
      "elsewhere.internal",
      "eu-central-1.compute.internal",
    ]);
    assert.match(d.domains[2].reason, /^DHCP options dopt-/);
  });
});

Deno.test("discover: the target's region is where EC2 is asked and the VPCRegion for Route 53", async () => {
  await withEmulator(WORLD, async (emu) => {
    const d = await discover({ region: "eu-central-1" }, at(APP, "us-east-1"), BOTH);
    assert.ok(
      emu.seen.every((r) => r.scope === "us-east-1/ec2" || r.scope === "us-east-1/route53"),
    );
    assert.ok(emu.seen.some((r) => r.scope === "us-east-1/ec2"));
    assert.equal(d.domains.length, 4);
    assert.deepEqual(d.domains[3], {
      domain: "ec2.internal",
      reason: "EC2 private DNS names in us-east-1",
    });
  });
});

Deno.test("discover: denied DescribeRouteTables or ListHostedZonesByVPC skips that source with one note", async () => {
  await withEmulator(WORLD, async (emu) => {
    emu.fixtures.deny.push({ action: "DescribeRouteTables" });
    const d = await discover({}, at(APP), BOTH);
    assert.deepEqual(d.notes, [
      "ec2:DescribeRouteTables denied: peering/TGW routes not discovered; grant it or pass --cidr",
    ]);
    assert.deepEqual(cidrs(d), ["10.20.0.0/16", "10.21.0.0/16"]);
    assert.equal(d.domains.length, 3);

    emu.fixtures.deny = [{ action: "ListHostedZonesByVPC" }];
    const z = await discover({}, at(APP), BOTH);
    assert.deepEqual(z.notes, [
      "route53:ListHostedZonesByVPC denied: private hosted zones of vpc-0d15c0 not discovered; " +
      "grant it or pass --dns-domain",
    ]);
    assert.deepEqual(z.domains.map((x) => x.domain), [
      "corp.example.com",
      "eu-central-1.compute.internal",
    ]);
    assert.equal(z.ranges.length, 6);
  });
});

Deno.test("discover: without DescribeVpcs the route table's local routes still give the VPC blocks", async () => {
  await withEmulator(WORLD, async (emu) => {
    emu.fixtures.deny.push({ action: "DescribeVpcs" });
    const d = await discover({}, at(APP), BOTH);
    assert.deepEqual(d.notes, [
      "ec2:DescribeVpcs denied: the CIDR blocks, DHCP domain and resolver of vpc-0d15c0 not " +
      "discovered; grant it or pass --cidr and --dns-domain",
    ]);
    assert.equal(d.resolver, undefined);
    assert.deepEqual(d.ranges.slice(0, 2).map((r) => r.reason), [
      "vpc-0d15c0 (the instance's VPC, from its route table)",
      "vpc-0d15c0 (the instance's VPC, secondary block, from its route table)",
    ]);
    // Nothing to ask DescribeDhcpOptions about without the VPC's DhcpOptionsId.
    assert.ok(!ops(emu).includes("DescribeDhcpOptions"));
    assert.deepEqual(d.domains.map((x) => x.domain), [
      "corp.internal",
      "corp.example.com",
      "eu-central-1.compute.internal",
    ]);
  });
});

Deno.test("discover: with nothing to route, a denied DescribeVpcs or DescribeInstances is one UserError", async () => {
  await withEmulator(WORLD, async (emu) => {
    emu.fixtures.deny.push({ action: "DescribeVpcs" }, { action: "DescribeRouteTables" });
    await assert.rejects(discover({}, at(APP), BOTH), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.equal(e.exitCode, ExitCode.Auth);
      assert.match(e.message, /^ec2:DescribeVpcs denied .*: grant it or pass --cidr$/);
      return true;
    });
    emu.fixtures.deny = [{ action: "DescribeInstances" }];
    await assert.rejects(
      discover({}, at(APP), BOTH),
      /^UserError: ec2:DescribeInstances denied: cannot discover what i-0d15c0000000000a1 reaches: grant it or pass --cidr$/,
    );
    // For DNS alone it is a note, and the region's EC2 domain is still known.
    const d = await discover({}, at(APP), { routes: false, dns: true });
    assert.deepEqual(d.notes.length, 1);
    assert.match(d.notes[0], /^ec2:DescribeInstances denied: .*grant it or pass --dns-domain$/);
    assert.deepEqual(d.domains.map((x) => x.domain), ["eu-central-1.compute.internal"]);
  });
});

Deno.test("discover: a hybrid node has no VPC: one note, no AWS call", async () => {
  await withEmulator(WORLD, async (emu) => {
    const d = await discover({}, at("mi-0d15c000000000001"), BOTH);
    assert.deepEqual(d.notes, [
      "mi-0d15c000000000001: a hybrid node has no VPC to discover: pass --cidr and --dns-domain",
    ]);
    assert.deepEqual([d.ranges, d.domains], [[], []]);
    assert.equal(emu.seen.length, 0);
  });
});

Deno.test("discover: an unknown instance is a target error", async () => {
  await withEmulator(WORLD, async () => {
    await assert.rejects(discover({}, at("i-0fffffffffffffff9"), BOTH), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.equal(e.exitCode, ExitCode.Target);
      return true;
    });
  });
});

/**
 * The second wave runs concurrently: a proxy in front of the emulator holds DescribeVpcs,
 * DescribeRouteTables and ListHostedZonesByVPC until all three have arrived, which happens only
 * if each was sent before any other was answered. Sequential calls would never complete the
 * set; the timer only ends such a deadlock (and fails the test), it is not what passes it.
 */
Deno.test("discover: VPC, route table and hosted zone calls are in flight together", async () => {
  await withEmulator(WORLD, async (emu) => {
    const gated = new Set(["Action=DescribeVpcs", "Action=DescribeRouteTables", "GET"]);
    const held = new Map<string, () => void>();
    let deadlock = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const releaseAll = () => {
      clearTimeout(timer);
      for (const go of held.values()) go();
    };
    const proxy = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      async (req) => {
        const body = req.method === "GET" ? undefined : await req.text();
        const op = req.method === "POST"
          ? `Action=${new URLSearchParams(body).get("Action")}`
          : "GET";
        if (gated.has(op) && !held.has(op)) {
          const arrived = new Promise<void>((go) => held.set(op, go));
          if (held.size === gated.size) releaseAll();
          else if (held.size === 1) {
            timer = setTimeout(() => {
              deadlock = true;
              releaseAll();
            }, 15_000);
          }
          await arrived;
        }
        const url = new URL(req.url);
        const headers = new Headers(req.headers);
        headers.delete("host");
        headers.delete("content-length");
        return await fetch(`${emu.url}${url.pathname}${url.search}`, {
          method: req.method,
          headers,
          body,
        });
      },
    );
    Deno.env.set("AWS_ENDPOINT_URL", `http://127.0.0.1:${proxy.addr.port}`);
    try {
      const d = await discover({}, at(APP), BOTH);
      assert.equal(d.ranges.length, 6);
    } finally {
      clearTimeout(timer);
      await proxy.shutdown();
    }
    assert.equal(deadlock, false, "the calls after DescribeInstances ran one after another");
    assert.deepEqual([...held.keys()].sort(), [...gated].sort());
    // DescribeInstances came first; DescribeDhcpOptions needs DescribeVpcs' answer.
    const order = ops(emu);
    assert.equal(order[0], "DescribeInstances");
    assert.ok(order.indexOf("DescribeDhcpOptions") > order.indexOf("DescribeVpcs"));
  });
});

Deno.test("discover: an unreachable Route 53 is a note naming its endpoint, not a failure", async () => {
  await withEmulator(WORLD, async () => {
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const url = `http://127.0.0.1:${closed.addr.port}`;
    closed.close();
    Deno.env.set("AWS_ENDPOINT_URL_ROUTE_53", url);
    try {
      const d = await discover({}, at(APP), BOTH);
      assert.equal(d.notes.length, 1);
      assert.match(
        d.notes[0],
        new RegExp(
          `^route53:ListHostedZonesByVPC failed \\(could not reach the Route 53 endpoint ${url} ` +
            `for route53:ListHostedZonesByVPC: .*\\): private hosted zones of vpc-0d15c0 not ` +
            "discovered; pass --dns-domain$",
        ),
      );
      assert.equal(d.ranges.length, 6);
      assert.deepEqual(d.domains.map((x) => x.domain), [
        "corp.example.com",
        "eu-central-1.compute.internal",
      ]);
    } finally {
      Deno.env.delete("AWS_ENDPOINT_URL_ROUTE_53");
    }
  });
});
