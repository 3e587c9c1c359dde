/**
 * EC2's view of VPC routing and DHCP: DescribeRouteTables and DescribeDhcpOptions, over the
 * derived world of fixtures_network.ts (synthesized main tables, `local` routes, the region's
 * default DHCP options set).
 */

import type { FixtureDhcpOptions, FixtureRoute, FixtureRouteTable } from "../fixtures.ts";
import {
  allDhcpOptions,
  effectiveRouteTables,
  hexId,
  routeTargetField,
} from "../fixtures_network.ts";
import { type FieldOf, filterPred, pageOf, selectByIds } from "./ec2_shared.ts";
import {
  el,
  indexedList,
  itemSet,
  queryFilters,
  type QueryParams,
  tagSet,
  type Xml,
} from "./query.ts";
import type { ApiContext } from "./world.ts";

interface Association {
  id: string;
  main: boolean;
  subnetId?: string;
}

function associations(t: FixtureRouteTable): Association[] {
  const out: Association[] = t.main ? [{ id: assocId(t.id, "main"), main: true }] : [];
  for (const s of t.subnets) out.push({ id: assocId(t.id, s), main: false, subnetId: s });
  return out;
}

function assocId(table: string, what: string): string {
  return `rtbassoc-${hexId(`${table}/${what}`, 17)}`;
}

/** The route's target in its own field, e.g. `transitGatewayId`. */
function targetOf(r: FixtureRoute, field: string): string | undefined {
  return routeTargetField(r.target) === field ? r.target : undefined;
}

const routeField = (field: string): FieldOf<FixtureRouteTable> => (t) =>
  t.routes.flatMap((r) => targetOf(r, field) ?? []);

function routeTableFields(ctx: ApiContext): Record<string, FieldOf<FixtureRouteTable>> {
  return {
    "route-table-id": (t) => t.id,
    "vpc-id": (t) => t.vpc,
    "owner-id": () => ctx.fixtures.account,
    "association.main": (t) => associations(t).map((a) => String(a.main)),
    "association.subnet-id": (t) => t.subnets,
    "association.route-table-id": (t) => associations(t).map(() => t.id),
    "association.route-table-association-id": (t) => associations(t).map((a) => a.id),
    "route.destination-cidr-block": (t) =>
      t.routes.flatMap((r) => r.destination?.includes(".") ? r.destination : []),
    "route.destination-ipv6-cidr-block": (t) =>
      t.routes.flatMap((r) => r.destination?.includes(":") ? r.destination : []),
    "route.destination-prefix-list-id": (t) => t.routes.flatMap((r) => r.prefixList ?? []),
    "route.gateway-id": routeField("gatewayId"),
    "route.transit-gateway-id": routeField("transitGatewayId"),
    "route.vpc-peering-connection-id": routeField("vpcPeeringConnectionId"),
    "route.nat-gateway-id": routeField("natGatewayId"),
    "route.egress-only-internet-gateway-id": routeField("egressOnlyInternetGatewayId"),
    "route.instance-id": routeField("instanceId"),
    "route.origin": (t) => t.routes.map((r) => r.origin),
    "route.state": (t) => t.routes.map((r) => r.state),
  };
}

export function describeRouteTables(ctx: ApiContext, p: QueryParams): Xml[] {
  const all = effectiveRouteTables(ctx.fixtures);
  const base = selectByIds(all, indexedList(p, "RouteTableId"), "RouteTable");
  const fields = routeTableFields(ctx);
  const preds = queryFilters(p).map((f) => filterPred(f, fields));
  const { page, next } = pageOf(
    p,
    base.filter((t) => preds.every((pred) => pred(t))),
    "RouteTableId",
  );
  return [
    itemSet("routeTableSet", page.map((t) => routeTableXml(ctx, t))),
    next ? el("nextToken", next) : undefined,
  ];
}

function routeTableXml(ctx: ApiContext, t: FixtureRouteTable): Xml {
  return [
    el("routeTableId", t.id),
    el("vpcId", t.vpc),
    el("ownerId", ctx.fixtures.account),
    itemSet("routeSet", t.routes.map(routeXml)),
    itemSet(
      "associationSet",
      associations(t).map((a) => [
        el("routeTableAssociationId", a.id),
        el("routeTableId", t.id),
        a.subnetId ? el("subnetId", a.subnetId) : undefined,
        el("main", a.main),
        el("associationState", el("state", "associated")),
      ]),
    ),
    itemSet("propagatingVgwSet", []),
    Object.keys(t.tags).length > 0 ? tagSet(t.tags) : undefined,
  ];
}

function routeXml(r: FixtureRoute): Xml {
  const field = routeTargetField(r.target)!;
  const v6 = r.destination?.includes(":");
  return [
    r.destination && !v6 ? el("destinationCidrBlock", r.destination) : undefined,
    r.destination && v6 ? el("destinationIpv6CidrBlock", r.destination) : undefined,
    r.prefixList ? el("destinationPrefixListId", r.prefixList) : undefined,
    el(field, r.target),
    el("state", r.state),
    el("origin", r.origin),
  ];
}

/** DHCP options as EC2 lists them: one entry per option name, each with its values. */
function configuration(o: FixtureDhcpOptions): [string, string[]][] {
  const out: [string, string[]][] = [];
  if (o.domainName !== undefined) out.push(["domain-name", [o.domainName]]);
  if (o.domainNameServers) out.push(["domain-name-servers", o.domainNameServers]);
  return out;
}

function dhcpFields(ctx: ApiContext): Record<string, FieldOf<FixtureDhcpOptions>> {
  return {
    "dhcp-options-id": (o) => o.id,
    "key": (o) => configuration(o).map(([k]) => k),
    "value": (o) => configuration(o).flatMap(([, vs]) => vs),
    "owner-id": () => ctx.fixtures.account,
  };
}

export function describeDhcpOptions(ctx: ApiContext, p: QueryParams): Xml[] {
  const all = allDhcpOptions(ctx.fixtures, ctx.region);
  const base = selectByIds(all, indexedList(p, "DhcpOptionsId"), "DhcpOption");
  const fields = dhcpFields(ctx);
  const preds = queryFilters(p).map((f) => filterPred(f, fields));
  const { page, next } = pageOf(
    p,
    base.filter((o) => preds.every((pred) => pred(o))),
    "DhcpOptionsId",
  );
  return [
    itemSet(
      "dhcpOptionsSet",
      page.map((o) => [
        el("dhcpOptionsId", o.id),
        itemSet(
          "dhcpConfigurationSet",
          configuration(o).map(([key, values]) => [
            el("key", key),
            itemSet("valueSet", values.map((value) => el("value", value))),
          ]),
        ),
        el("ownerId", ctx.fixtures.account),
        Object.keys(o.tags).length > 0 ? tagSet(o.tags) : undefined,
      ]),
    ),
    next ? el("nextToken", next) : undefined,
  ];
}
