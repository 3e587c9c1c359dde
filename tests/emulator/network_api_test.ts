/**
 * EC2's network views (DescribeVpcs' CIDR blocks and DHCP set, DescribeRouteTables,
 * DescribeDhcpOptions) driven by the unmodified SDK, and the fixture keys behind them.
 */

import assert from "node:assert/strict";
import {
  DescribeDhcpOptionsCommand,
  DescribeRouteTablesCommand,
  DescribeVpcsCommand,
  EC2Client,
  paginateDescribeRouteTables,
  type RouteTable,
} from "@aws-sdk/client-ec2";
import { parseFixtures } from "../../src/emulator/fixtures.ts";
import { rejectsWith, withClient, withEmulator, WORLD } from "../aws/harness_test.ts";

const ec2 = <T>(fn: (c: EC2Client) => Promise<T>, region?: string) =>
  withClient(() => new EC2Client(region ? { region } : {}), fn);

const LAB = "vpc-0a1b2c3d";
const CORP = "vpc-0e5e5e5e";

Deno.test("ec2 DescribeVpcs: secondary CIDR blocks and each VPC's DHCP options set", async () => {
  await withEmulator(WORLD, async () => {
    await ec2(async (c) => {
      const { Vpcs } = await c.send(new DescribeVpcsCommand({}));
      const lab = Vpcs!.find((v) => v.VpcId === LAB)!;
      assert.equal(lab.CidrBlock, "10.99.0.0/16");
      assert.deepEqual(
        lab.CidrBlockAssociationSet!.map((a) => [a.CidrBlock, a.CidrBlockState!.State]),
        [["10.99.0.0/16", "associated"], ["10.100.0.0/16", "associated"]],
      );
      assert.equal(new Set(lab.CidrBlockAssociationSet!.map((a) => a.AssociationId)).size, 2);
      const corp = Vpcs!.find((v) => v.VpcId === CORP)!;
      assert.equal(corp.DhcpOptionsId, "dopt-0c0c0c0c");
      assert.match(lab.DhcpOptionsId!, /^dopt-[0-9a-f]{8}$/);
      assert.notEqual(lab.DhcpOptionsId, corp.DhcpOptionsId);
      // Any associated block matches; `cidr` is the primary one only.
      const bySecondary = await c.send(
        new DescribeVpcsCommand({
          Filters: [{ Name: "cidr-block-association.cidr-block", Values: ["10.100.0.0/16"] }],
        }),
      );
      assert.deepEqual(bySecondary.Vpcs!.map((v) => v.VpcId), [LAB]);
      const byPrimary = await c.send(
        new DescribeVpcsCommand({ Filters: [{ Name: "cidr", Values: ["10.100.0.0/16"] }] }),
      );
      assert.deepEqual(byPrimary.Vpcs, []);
      const byDhcp = await c.send(
        new DescribeVpcsCommand({
          Filters: [{ Name: "dhcp-options-id", Values: ["dopt-0c0c0c0c"] }],
        }),
      );
      assert.deepEqual(byDhcp.Vpcs!.map((v) => v.VpcId), [CORP]);
    });
  });
});

function routeOf(t: RouteTable, destination: string) {
  return t.Routes!.find((r) =>
    (r.DestinationCidrBlock ?? r.DestinationPrefixListId) === destination
  );
}

Deno.test("ec2 DescribeRouteTables: routes by target kind, states, origins, associations", async () => {
  await withEmulator(WORLD, async () => {
    await ec2(async (c) => {
      const { RouteTables } = await c.send(
        new DescribeRouteTablesCommand({ RouteTableIds: ["rtb-0a1b2c3d"] }),
      );
      assert.equal(RouteTables!.length, 1);
      const t = RouteTables![0];
      assert.equal(t.VpcId, LAB);
      assert.equal(t.OwnerId, "210987654321");
      assert.deepEqual(t.Tags, [{ Key: "Name", Value: "lab-main" }]);
      // Local routes first, one per VPC CIDR block, though the YAML declares none.
      assert.deepEqual(t.Routes!.slice(0, 2), [
        {
          DestinationCidrBlock: "10.99.0.0/16",
          GatewayId: "local",
          State: "active",
          Origin: "CreateRouteTable",
        },
        {
          DestinationCidrBlock: "10.100.0.0/16",
          GatewayId: "local",
          State: "active",
          Origin: "CreateRouteTable",
        },
      ]);
      assert.deepEqual(routeOf(t, "10.8.0.0/16"), {
        DestinationCidrBlock: "10.8.0.0/16",
        TransitGatewayId: "tgw-0123456789abcdef0",
        State: "active",
        Origin: "CreateRoute",
      });
      assert.equal(routeOf(t, "172.20.0.0/16")!.VpcPeeringConnectionId, "pcx-0123456789abcdef0");
      const hole = routeOf(t, "192.168.50.0/24")!;
      assert.equal(hole.GatewayId, "vgw-0123456789abcdef0");
      assert.equal(hole.State, "blackhole");
      assert.equal(routeOf(t, "0.0.0.0/0")!.GatewayId, "igw-0123456789abcdef0");
      const pl = routeOf(t, "pl-0123456789abcdef0")!;
      assert.equal(pl.DestinationCidrBlock, undefined);
      assert.equal(pl.TransitGatewayId, "tgw-0123456789abcdef0");
      const assocs = t.Associations!.map((a) => [a.Main, a.SubnetId, a.AssociationState!.State]);
      assert.deepEqual(assocs, [[true, undefined, "associated"], [
        false,
        "subnet-0a1b2c3d",
        "associated",
      ]]);
      assert.ok(t.Associations!.every((a) => a.RouteTableId === "rtb-0a1b2c3d"));
      assert.ok(
        t.Associations!.every((a) => /^rtbassoc-[0-9a-f]{17}$/.test(a.RouteTableAssociationId!)),
      );
      const priv = await c.send(
        new DescribeRouteTablesCommand({ RouteTableIds: ["rtb-0b1b2b3b"] }),
      );
      assert.equal(
        routeOf(priv.RouteTables![0], "0.0.0.0/0")!.NatGatewayId,
        "nat-0123456789abcdef0",
      );
    });
  });
});

Deno.test("ec2 DescribeRouteTables: a VPC that declares none has a synthesized main table", async () => {
  await withEmulator(WORLD, async () => {
    await ec2(async (c) => {
      const { RouteTables } = await c.send(
        new DescribeRouteTablesCommand({ Filters: [{ Name: "vpc-id", Values: [CORP] }] }),
      );
      assert.equal(RouteTables!.length, 1);
      const [t] = RouteTables!;
      assert.match(t.RouteTableId!, /^rtb-[0-9a-f]+$/);
      assert.deepEqual(t.Associations!.map((a) => [a.Main, a.SubnetId]), [[true, undefined]]);
      assert.deepEqual(t.Routes, [{
        DestinationCidrBlock: "10.50.0.0/16",
        GatewayId: "local",
        State: "active",
        Origin: "CreateRouteTable",
      }]);
      // Addressable by its id, like a declared one.
      const again = await c.send(
        new DescribeRouteTablesCommand({ RouteTableIds: [t.RouteTableId!] }),
      );
      assert.equal(again.RouteTables![0].VpcId, CORP);
    });
  });
});

Deno.test("ec2 DescribeRouteTables: filters, NotFound, pagination, AccessDenied", async () => {
  await withEmulator(WORLD, async (emu) => {
    await ec2(async (client) => {
      const ids = async (Filters: { Name: string; Values: string[] }[]) =>
        (await client.send(new DescribeRouteTablesCommand({ Filters }))).RouteTables!.map((t) =>
          t.RouteTableId
        );
      assert.deepEqual(
        await ids([{ Name: "association.subnet-id", Values: ["subnet-0b1b2b3b"] }]),
        [
          "rtb-0b1b2b3b",
        ],
      );
      const mains = await ids([{ Name: "association.main", Values: ["true"] }]);
      assert.equal(mains.length, 2);
      assert.ok(mains.includes("rtb-0a1b2c3d"));
      assert.deepEqual(
        await ids([
          { Name: "association.main", Values: ["true"] },
          { Name: "vpc-id", Values: [LAB] },
        ]),
        ["rtb-0a1b2c3d"],
      );
      assert.deepEqual(await ids([{ Name: "route-table-id", Values: ["rtb-0b*"] }]), [
        "rtb-0b1b2b3b",
      ]);
      assert.deepEqual(
        await ids([{ Name: "route.transit-gateway-id", Values: ["tgw-0123456789abcdef0"] }]),
        ["rtb-0a1b2c3d", "rtb-0b1b2b3b"],
      );
      assert.deepEqual(await ids([{ Name: "route.state", Values: ["blackhole"] }]), [
        "rtb-0a1b2c3d",
      ]);
      assert.deepEqual(await ids([{ Name: "tag:Name", Values: ["lab-private"] }]), [
        "rtb-0b1b2b3b",
      ]);
      await rejectsWith(
        client.send(
          new DescribeRouteTablesCommand({ RouteTableIds: ["rtb-0a1b2c3d", "rtb-0dead"] }),
        ),
        "InvalidRouteTableID.NotFound",
        /The routeTable ID 'rtb-0dead' does not exist/,
      );
      await rejectsWith(ids([{ Name: "colour", Values: ["red"] }]), "InvalidParameterValue");

      const pages: string[][] = [];
      for await (const page of paginateDescribeRouteTables({ client, pageSize: 5 }, {})) {
        pages.push(page.RouteTables!.map((t) => t.RouteTableId!));
      }
      assert.deepEqual(pages.map((p) => p.length), [3]);
      // Six tables: a page of five, then one.
      emu.fixtures.vpcs.push(
        { id: "vpc-0f0f0f01", cidr: "10.1.0.0/16", tags: {} },
        { id: "vpc-0f0f0f02", cidr: "10.2.0.0/16", tags: {} },
        { id: "vpc-0f0f0f03", cidr: "10.3.0.0/16", tags: {} },
      );
      const seen: string[] = [];
      let count = 0;
      for await (const page of paginateDescribeRouteTables({ client, pageSize: 5 }, {})) {
        count++;
        seen.push(...page.RouteTables!.map((t) => t.RouteTableId!));
      }
      assert.equal(count, 2);
      assert.equal(new Set(seen).size, 6);
      await rejectsWith(
        client.send(new DescribeRouteTablesCommand({ MaxResults: 2 })),
        "InvalidParameterValue",
      );
      await rejectsWith(
        client.send(new DescribeRouteTablesCommand({ NextToken: "bogus" })),
        "InvalidPaginationToken",
      );

      emu.fixtures.deny.push({ action: "DescribeRouteTables" });
      const denied = await rejectsWith(
        client.send(new DescribeRouteTablesCommand({})),
        "UnauthorizedOperation",
        /arn:aws:iam::210987654321:user\/jane is not authorized to perform: ec2:DescribeRouteTables/,
      );
      assert.equal(
        (denied as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode,
        403,
      );
    });
  });
});

Deno.test("ec2 DescribeDhcpOptions: declared sets, the region's default set, filters, denial", async () => {
  await withEmulator(WORLD, async (emu) => {
    const config = (
      o: { DhcpConfigurations?: { Key?: string; Values?: { Value?: string }[] }[] },
    ) =>
      Object.fromEntries(o.DhcpConfigurations!.map((d) => [d.Key, d.Values!.map((v) => v.Value)]));
    await ec2(async (c) => {
      const corp = await c.send(
        new DescribeDhcpOptionsCommand({ DhcpOptionsIds: ["dopt-0c0c0c0c"] }),
      );
      assert.equal(corp.DhcpOptions!.length, 1);
      assert.deepEqual(config(corp.DhcpOptions![0]), {
        "domain-name": ["corp.example"],
        "domain-name-servers": ["AmazonProvidedDNS"],
      });
      assert.equal(corp.DhcpOptions![0].OwnerId, "210987654321");
      assert.deepEqual(corp.DhcpOptions![0].Tags, [{ Key: "Name", Value: "corp-dhcp" }]);

      const { Vpcs } = await c.send(new DescribeVpcsCommand({ VpcIds: [LAB] }));
      const byFilter = await c.send(
        new DescribeDhcpOptionsCommand({
          Filters: [{ Name: "dhcp-options-id", Values: [Vpcs![0].DhcpOptionsId!] }],
        }),
      );
      assert.deepEqual(config(byFilter.DhcpOptions![0]), {
        "domain-name": ["eu-central-1.compute.internal"],
        "domain-name-servers": ["AmazonProvidedDNS"],
      });
      const all = await c.send(new DescribeDhcpOptionsCommand({}));
      assert.equal(all.DhcpOptions!.length, 2);
      const byValue = await c.send(
        new DescribeDhcpOptionsCommand({ Filters: [{ Name: "value", Values: ["corp.*"] }] }),
      );
      assert.deepEqual(byValue.DhcpOptions!.map((o) => o.DhcpOptionsId), ["dopt-0c0c0c0c"]);
      await rejectsWith(
        c.send(new DescribeDhcpOptionsCommand({ DhcpOptionsIds: ["dopt-0dead"] })),
        "InvalidDhcpOptionID.NotFound",
        /The dhcpOption ID 'dopt-0dead' does not exist/,
      );
    });
    // us-east-1's default set is ec2.internal, with its own id.
    await ec2(async (c) => {
      const { Vpcs } = await c.send(new DescribeVpcsCommand({ VpcIds: [LAB] }));
      const { DhcpOptions } = await c.send(
        new DescribeDhcpOptionsCommand({ DhcpOptionsIds: [Vpcs![0].DhcpOptionsId!] }),
      );
      assert.deepEqual(config(DhcpOptions![0])["domain-name"], ["ec2.internal"]);
    }, "us-east-1");
    emu.fixtures.deny.push({ action: "DescribeDhcpOptions", target: "dopt-0c0c0c0c" });
    await ec2(async (c) => {
      await c.send(new DescribeDhcpOptionsCommand({}));
      await rejectsWith(
        c.send(new DescribeDhcpOptionsCommand({ DhcpOptionsIds: ["dopt-0c0c0c0c"] })),
        "UnauthorizedOperation",
        /ec2:DescribeDhcpOptions/,
      );
    });
  });
});

Deno.test("fixtures: network keys are validated with file, line and key", () => {
  const bad = (yaml: string, re: RegExp) => assert.throws(() => parseFixtures(yaml, "n.yaml"), re);
  const vpc = "vpcs:\n  - { id: vpc-0a, cidr: 10.0.0.0/16 }\n";
  bad(
    vpc + "routeTables:\n  - { id: rtb-01, vpc: vpc-0b }\n",
    /^FixtureError: n\.yaml:4: routeTables\[0\]\.vpc: vpc-0b is not in vpcs$/,
  );
  bad(
    vpc +
      "routeTables:\n  - id: rtb-01\n    vpc: vpc-0a\n    routes:\n      - { destination: 10.1.0.0/16, target: gw-1 }\n",
    /^FixtureError: n\.yaml:7: routeTables\[0\]\.routes\[0\]\.target: "gw-1" is not local or/,
  );
  bad(
    vpc + "routeTables:\n  - id: rtb-01\n    vpc: vpc-0a\n    routes:\n      - { target: igw-1 }\n",
    /n\.yaml:7: routeTables\[0\]\.routes\[0\]: needs exactly one of destination and prefixList/,
  );
  bad(
    vpc +
      "routeTables:\n  - { id: rtb-01, vpc: vpc-0a, main: true }\n  - { id: rtb-02, vpc: vpc-0a, main: true }\n",
    /routeTables\[1\]: vpc-0a already has main table rtb-01/,
  );
  bad(
    "vpcs:\n  - { id: vpc-0a, cidr: 10.0.0.0/16, dhcpOptions: dopt-01 }\n",
    /^FixtureError: n\.yaml:2: vpcs\[0\]\.dhcpOptions: dopt-01 is not in dhcpOptions$/,
  );
  bad(
    vpc + "hostedZones:\n  - { id: Z01, name: a.internal, vpcs: [vpc-0c] }\n",
    /n\.yaml:4: hostedZones\[0\]\.vpcs\[0\]: vpc-0c is not in vpcs/,
  );
  bad(
    "vpcs:\n  - { id: vpc-0a, cidr: 10.0.0.0/16, secondaryCidrs: [10.1.0.0] }\n",
    /vpcs\[0\]\.secondaryCidrs\[0\]: "10\.1\.0\.0" is not an IPv4 CIDR/,
  );
  const ok = parseFixtures(
    vpc + "routeTables:\n  - id: rtb-01\n    vpc: vpc-0a\n    routes:\n" +
      "      - { destination: 10.1.0.0/16, target: 'arn:aws:networkmanager::123456789012:core-network/core-network-0123' }\n" +
      "      - { destination: 10.2.0.0/16, target: eni-0123 }\n",
  );
  assert.equal(ok.routeTables[0].main, false);
  assert.deepEqual(ok.routeTables[0].routes.map((r) => r.state), ["active", "active"]);
});

Deno.test("ec2 DescribeRouteTables: core network and ENI targets in their own fields", async () => {
  const yaml = "vpcs:\n  - { id: vpc-0a, cidr: 10.0.0.0/16 }\nrouteTables:\n  - id: rtb-01\n" +
    "    vpc: vpc-0a\n    main: true\n    routes:\n" +
    "      - { destination: 10.1.0.0/16, target: 'arn:aws:networkmanager::123456789012:core-network/core-network-0123' }\n" +
    "      - { destination: 10.2.0.0/16, target: eni-0123 }\n" +
    "      - { destination: 10.0.0.0/16, target: local }\n";
  const path = await Deno.makeTempFile({ suffix: ".yaml" });
  try {
    await Deno.writeTextFile(path, yaml);
    await withEmulator(path, async () => {
      await ec2(async (c) => {
        const { RouteTables } = await c.send(new DescribeRouteTablesCommand({}));
        assert.equal(RouteTables!.length, 1);
        const routes = RouteTables![0].Routes!;
        // A declared local route is not doubled.
        assert.equal(routes.filter((r) => r.GatewayId === "local").length, 1);
        assert.equal(
          routeOf(RouteTables![0], "10.1.0.0/16")!.CoreNetworkArn,
          "arn:aws:networkmanager::123456789012:core-network/core-network-0123",
        );
        assert.equal(routeOf(RouteTables![0], "10.2.0.0/16")!.NetworkInterfaceId, "eni-0123");
      });
    });
  } finally {
    await Deno.remove(path);
  }
});
