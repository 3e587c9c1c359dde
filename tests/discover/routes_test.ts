import assert from "node:assert/strict";
import type { RouteEntry, RouteTableSummary } from "../../src/aws/ec2.ts";
import { routeCandidates } from "../../src/discover/routes.ts";

const route = (destination: string, target: string, state = "active"): RouteEntry => ({
  destination,
  target,
  state,
});

const TABLE: RouteTableSummary = {
  routeTableId: "rtb-0a99",
  main: false,
  routes: [
    route("10.0.0.0/16", "local"),
    route("10.1.0.0/16", "local"),
    route("10.8.0.0/16", "tgw-0b0b"),
    route("172.20.0.0/16", "pcx-0c0c"),
    route("192.168.50.0/24", "vgw-0d0d"),
    route("100.80.0.0/16", "arn:aws:networkmanager::210987654321:core-network/core-network-0e0e"),
    route("10.30.0.0/16", "pcx-0dead", "blackhole"),
    { prefixListId: "pl-0f0f", target: "tgw-0b0b", state: "active" },
    { prefixListId: "pl-0s3", target: "vpce-0a0a", state: "active" },
    route("0.0.0.0/0", "tgw-0b0b"),
    route("0.0.0.0/1", "tgw-0b0b"),
    route("10.40.0.0/16", "eni-0a0a"),
    route("203.0.113.0/24", "igw-0a0a"),
    route("198.51.100.0/24", "nat-0a0a"),
    { destinationIpv6: "2600:1f18::/56", target: "igw-0a0a", state: "active" },
    route("10.0.7.0/24", "pcx-0c0c"),
  ],
};

Deno.test("routes: VPC blocks and gateway routes are candidates, each with its reason", () => {
  const { ranges } = routeCandidates({
    vpcId: "vpc-0abc",
    vpcCidrs: ["10.0.0.0/16", "10.1.0.0/16"],
    table: TABLE,
  });
  assert.deepEqual(ranges, [
    { cidr: "10.0.0.0/16", reason: "vpc-0abc (the instance's VPC)" },
    { cidr: "10.1.0.0/16", reason: "vpc-0abc (the instance's VPC, secondary block)" },
    { cidr: "10.8.0.0/16", reason: "via tgw-0b0b (transit gateway)" },
    { cidr: "172.20.0.0/16", reason: "via pcx-0c0c (peering)" },
    { cidr: "192.168.50.0/24", reason: "via vgw-0d0d (VPN)" },
    { cidr: "100.80.0.0/16", reason: "via core-network-0e0e (Cloud WAN)" },
  ]);
});

Deno.test("routes: everything left out says why", () => {
  const { skipped } = routeCandidates({
    vpcId: "vpc-0abc",
    vpcCidrs: ["10.0.0.0/16", "10.1.0.0/16"],
    table: TABLE,
  });
  const why = (cidr: string | undefined) =>
    skipped.filter((s) => s.cidr === cidr).map((s) => s.reason);
  assert.deepEqual(why("10.0.0.0/16"), []); // the VPC's local route: already a range
  assert.deepEqual(why("10.30.0.0/16"), ["blackhole route via pcx-0dead (its target is gone)"]);
  assert.deepEqual(why(undefined), [
    "prefix list pl-0f0f via tgw-0b0b (transit gateway) is not expanded: add its ranges with --cidr",
    "prefix list pl-0s3 via vpce-0a0a (VPC endpoint): not followed",
  ]);
  assert.match(
    why("0.0.0.0/0")[0],
    /^the default route via tgw-0b0b.*--all-traffic routes everything/,
  );
  assert.match(why("0.0.0.0/1")[0], /a \/1, most of the internet, via tgw-0b0b/);
  assert.match(why("10.40.0.0/16")[0], /eni-0a0a \(a network interface/);
  assert.match(why("203.0.113.0/24")[0], /internet gateway/);
  assert.match(why("198.51.100.0/24")[0], /NAT gateway/);
  assert.match(why("2600:1f18::/56")[0], /IPv6 destinations are not supported yet/);
  // Inside a VPC block: the wider range stays and the narrower one is noted.
  assert.deepEqual(why("10.0.7.0/24"), [
    "via pcx-0c0c (peering): inside 10.0.0.0/16 (vpc-0abc (the instance's VPC)), already routed",
  ]);
});

Deno.test("routes: nested and repeated ranges keep the widest, named as the cover", () => {
  const { ranges, skipped } = routeCandidates({
    vpcId: "vpc-0abc",
    vpcCidrs: ["10.0.0.0/16"],
    table: {
      routeTableId: "rtb-1",
      main: true,
      routes: [
        route("10.9.4.0/24", "tgw-1"),
        route("10.9.0.0/16", "tgw-1"),
        route("10.8.0.0/13", "tgw-1"),
        route("10.8.0.0/13", "pcx-2"),
      ],
    },
  });
  assert.deepEqual(ranges.map((r) => r.cidr), ["10.0.0.0/16", "10.8.0.0/13"]);
  assert.deepEqual(ranges[1].reason, "via tgw-1 (transit gateway)");
  assert.deepEqual(
    skipped.map((s) => `${s.cidr} ${s.reason}`),
    [
      "10.9.4.0/24 via tgw-1 (transit gateway): inside 10.8.0.0/13 (via tgw-1 (transit gateway)), already routed",
      "10.9.0.0/16 via tgw-1 (transit gateway): inside 10.8.0.0/13 (via tgw-1 (transit gateway)), already routed",
      "10.8.0.0/13 via pcx-2 (peering): inside 10.8.0.0/13 (via tgw-1 (transit gateway)), already routed",
    ],
  );
});

Deno.test("routes: without DescribeVpcs the local routes stand for the VPC's blocks", () => {
  const { ranges } = routeCandidates({ vpcId: "vpc-0abc", table: TABLE });
  assert.deepEqual(ranges.slice(0, 2), [
    { cidr: "10.0.0.0/16", reason: "vpc-0abc (the instance's VPC, from its route table)" },
    {
      cidr: "10.1.0.0/16",
      reason: "vpc-0abc (the instance's VPC, secondary block, from its route table)",
    },
  ]);
  // Without either, there is nothing.
  assert.deepEqual(routeCandidates({ vpcId: "vpc-0abc" }), { ranges: [], skipped: [] });
});
