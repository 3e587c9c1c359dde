/**
 * The account's network beyond instances: VPC CIDR blocks and DHCP options, route tables and
 * Route 53 private hosted zones. Parsing (with cross-references checked against the VPCs) and
 * the derived views EC2 reports: every VPC has a main route table and every table has a `local`
 * route per VPC CIDR block, whether or not the YAML spells them out, as in AWS.
 */

import type { Node } from "yaml";
import type { MapView } from "../config/yaml_walk.ts";
import type { FixtureVpc } from "./fixtures.ts";
import type { Validator } from "./fixtures_validate.ts";

export interface FixtureDhcpOptions {
  id: string;
  domainName?: string;
  domainNameServers?: string[];
  tags: Record<string, string>;
}

export type RouteOrigin = "CreateRouteTable" | "CreateRoute" | "EnableVgwRoutePropagation";

export interface FixtureRoute {
  /** An IPv4 or IPv6 CIDR; exactly one of destination and prefixList. */
  destination?: string;
  prefixList?: string;
  /** `local`, `igw-…`, `tgw-…`, `pcx-…`, an `arn:aws:networkmanager…` core network…; see routeTargetField. */
  target: string;
  state: "active" | "blackhole";
  origin: RouteOrigin;
}

export interface FixtureRouteTable {
  id: string;
  vpc: string;
  main: boolean;
  /** Explicit subnet associations. */
  subnets: string[];
  routes: FixtureRoute[];
  tags: Record<string, string>;
}

export interface FixtureHostedZone {
  /** Without the `/hostedzone/` prefix. */
  id: string;
  /** Without the trailing dot (the wire adds it). */
  name: string;
  /** Private zone associations; empty for a public zone. */
  vpcs: string[];
  /** A 12-digit account or a service principal; absent = the fixtures' account. */
  owner?: string;
}

/** The EC2 route field a target id belongs in, by its prefix. */
const TARGET_FIELDS: [RegExp, string][] = [
  [/^(local|igw-[0-9a-f]+|vgw-[0-9a-f]+|vpce-[0-9a-f]+)$/, "gatewayId"],
  [/^tgw-[0-9a-f]+$/, "transitGatewayId"],
  [/^pcx-[0-9a-f]+$/, "vpcPeeringConnectionId"],
  [/^nat-[0-9a-f]+$/, "natGatewayId"],
  [/^eni-[0-9a-f]+$/, "networkInterfaceId"],
  [/^eigw-[0-9a-f]+$/, "egressOnlyInternetGatewayId"],
  [/^i-[0-9a-f]+$/, "instanceId"],
  [/^arn:aws[\w-]*:networkmanager::\d{12}:core-network\/[\w-]+$/, "coreNetworkArn"],
];

export function routeTargetField(target: string): string | undefined {
  return TARGET_FIELDS.find(([re]) => re.test(target))?.[1];
}

const CIDR4 = /^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/;
const CIDR6 = /^[0-9a-f:]+:[0-9a-f:]*\/\d{1,3}$/i;
const VPC_ID = /^vpc-[0-9a-f]+$/;

/** The `vpcs[]` keys beyond id/cidr/tags. */
export function parseVpcNetwork(
  v: Validator,
  m: MapView,
  dhcpIds: ReadonlySet<string>,
): Pick<FixtureVpc, "secondaryCidrs" | "dhcpOptions"> {
  const out: Pick<FixtureVpc, "secondaryCidrs" | "dhcpOptions"> = {};
  const secondary = v.strList(m, "secondaryCidrs");
  secondary?.forEach((c, i) => {
    if (!CIDR4.test(c)) {
      v.fail(
        m.get("secondaryCidrs"),
        `${m.path}.secondaryCidrs[${i}]`,
        `"${c}" is not an IPv4 CIDR`,
      );
    }
  });
  if (secondary) out.secondaryCidrs = secondary;
  const dhcp = v.optStr(m, "dhcpOptions", /^dopt-[0-9a-f]+$/, "a DHCP options id");
  if (dhcp !== undefined) {
    if (!dhcpIds.has(dhcp)) {
      v.fail(m.get("dhcpOptions"), `${m.path}.dhcpOptions`, `${dhcp} is not in dhcpOptions`);
    }
    out.dhcpOptions = dhcp;
  }
  return out;
}

export function parseDhcpOptions(v: Validator, node: Node, path: string): FixtureDhcpOptions {
  const m = v.map(node, path, ["id", "domainName", "domainNameServers", "tags"]);
  const domainName = v.optStr(
    m,
    "domainName",
    /^[A-Za-z0-9.-]+( [A-Za-z0-9.-]+)*$/,
    "a domain name",
  );
  const servers = v.strList(m, "domainNameServers");
  return {
    id: v.reqStr(m, "id", /^dopt-[0-9a-f]+$/, "a DHCP options id like dopt-0a1b2c3d"),
    ...(domainName !== undefined ? { domainName } : {}),
    ...(servers ? { domainNameServers: servers } : {}),
    tags: v.tags(m, "tags") ?? {},
  };
}

export function parseRouteTable(
  v: Validator,
  node: Node,
  path: string,
  vpcIds: ReadonlySet<string>,
): FixtureRouteTable {
  const m = v.map(node, path, ["id", "vpc", "main", "subnets", "routes", "tags"]);
  const vpc = v.reqStr(m, "vpc", VPC_ID, "a VPC id");
  if (!vpcIds.has(vpc)) v.fail(m.get("vpc"), `${path}.vpc`, `${vpc} is not in vpcs`);
  const subnets = v.strList(m, "subnets") ?? [];
  subnets.forEach((s, i) => {
    if (!/^subnet-[0-9a-f]+$/.test(s)) {
      v.fail(m.get("subnets"), `${path}.subnets[${i}]`, `"${s}" is not a subnet id`);
    }
  });
  return {
    id: v.reqStr(m, "id", /^rtb-[0-9a-f]+$/, "a route table id like rtb-0a1b2c3d"),
    vpc,
    main: v.optBool(m, "main") ?? false,
    subnets,
    routes: v.list(m, "routes", (n, p) => parseRoute(v, n, p)) ?? [],
    tags: v.tags(m, "tags") ?? {},
  };
}

function parseRoute(v: Validator, node: Node, path: string): FixtureRoute {
  const m = v.map(node, path, ["destination", "prefixList", "target", "state", "origin"]);
  const destination = v.optStr(m, "destination");
  if (destination !== undefined && !CIDR4.test(destination) && !CIDR6.test(destination)) {
    v.fail(m.get("destination"), `${path}.destination`, `"${destination}" is not a CIDR`);
  }
  const prefixList = v.optStr(m, "prefixList", /^pl-[0-9a-f]+$/, "a prefix list id");
  if ((destination === undefined) === (prefixList === undefined)) {
    v.fail(m.node, path, "needs exactly one of destination and prefixList");
  }
  const target = v.reqStr(m, "target");
  if (!routeTargetField(target)) {
    v.fail(
      m.get("target"),
      `${path}.target`,
      `"${target}" is not local or an igw-, vgw-, vpce-, tgw-, pcx-, nat-, eni-, eigw-, i- id ` +
        "or a core network ARN",
    );
  }
  return {
    ...(destination !== undefined ? { destination } : {}),
    ...(prefixList !== undefined ? { prefixList } : {}),
    target,
    state: v.optEnum(m, "state", ["active", "blackhole"] as const) ?? "active",
    origin: v.optEnum(
      m,
      "origin",
      ["CreateRouteTable", "CreateRoute", "EnableVgwRoutePropagation"] as const,
    ) ?? (target === "local" ? "CreateRouteTable" : "CreateRoute"),
  };
}

export function parseHostedZone(
  v: Validator,
  node: Node,
  path: string,
  vpcIds: ReadonlySet<string>,
): FixtureHostedZone {
  const m = v.map(node, path, ["id", "name", "vpcs", "owner"]);
  const vpcs = v.strList(m, "vpcs") ?? [];
  vpcs.forEach((id, i) => {
    if (!vpcIds.has(id)) v.fail(m.get("vpcs"), `${path}.vpcs[${i}]`, `${id} is not in vpcs`);
  });
  const owner = v.optStr(
    m,
    "owner",
    /^(\d{12}|[a-z0-9-]+(\.[a-z0-9-]+)+)$/,
    "a 12-digit account or a service principal",
  );
  return {
    id: v.reqStr(m, "id", /^Z[0-9A-Z]{1,31}$/, "a hosted zone id like Z0123456789ABCDEFGHIJ"),
    name: v.reqStr(m, "name", /^[A-Za-z0-9_.-]+\.?$/, "a domain name").replace(/\.$/, "")
      .toLowerCase(),
    vpcs,
    ...(owner !== undefined ? { owner } : {}),
  };
}

/** Fails on the second entry of `items` whose key repeats an earlier one. */
export function requireUnique<T>(
  v: Validator,
  root: MapView,
  key: string,
  items: T[],
  idOf: (x: T) => string,
): void {
  const seen = new Set<string>();
  items.forEach((x, i) => {
    const id = idOf(x);
    if (seen.has(id)) v.fail(root.get(key), `${key}[${i}]`, `${id} is declared twice`);
    seen.add(id);
  });
}

/** One main table per VPC, one table per subnet, as AWS allows. */
export function checkRouteTables(
  v: Validator,
  root: MapView,
  tables: FixtureRouteTable[],
): void {
  requireUnique(v, root, "routeTables", tables, (t) => t.id);
  const mainOf = new Map<string, string>();
  const subnetOf = new Map<string, string>();
  tables.forEach((t, i) => {
    const at = `routeTables[${i}]`;
    if (t.main) {
      const other = mainOf.get(t.vpc);
      if (other) v.fail(root.get("routeTables"), at, `${t.vpc} already has main table ${other}`);
      mainOf.set(t.vpc, t.id);
    }
    for (const s of t.subnets) {
      const other = subnetOf.get(s);
      if (other) v.fail(root.get("routeTables"), at, `${s} is already associated with ${other}`);
      subnetOf.set(s, t.id);
    }
  });
}

// ---- the views EC2 and Route 53 report ----

interface NetworkWorld {
  vpcs: FixtureVpc[];
  routeTables: FixtureRouteTable[];
  dhcpOptions: FixtureDhcpOptions[];
}

/** The VPC's CIDR blocks, primary first. */
export function vpcCidrs(v: FixtureVpc): string[] {
  return [v.cidr, ...(v.secondaryCidrs ?? [])];
}

/**
 * Every route table as EC2 reports it: the declared ones with their VPC's missing `local` routes
 * put first, then a synthesized main table for each VPC that declares none.
 */
export function effectiveRouteTables(w: NetworkWorld): FixtureRouteTable[] {
  const withLocal = (t: FixtureRouteTable): FixtureRouteTable => {
    const vpc = w.vpcs.find((x) => x.id === t.vpc);
    if (!vpc) return t;
    const local = vpcCidrs(vpc)
      .filter((c) => !t.routes.some((r) => r.target === "local" && r.destination === c))
      .map((destination): FixtureRoute => ({
        destination,
        target: "local",
        state: "active",
        origin: "CreateRouteTable",
      }));
    return { ...t, routes: [...local, ...t.routes] };
  };
  const out = w.routeTables.map(withLocal);
  const taken = new Set(out.map((t) => t.id));
  for (const vpc of w.vpcs) {
    if (out.some((t) => t.main && t.vpc === vpc.id)) continue;
    let id = `rtb-${vpc.id.slice(4).padEnd(17, "0")}`;
    while (taken.has(id)) id = `rtb-${hexId(id, 17)}`;
    taken.add(id);
    out.push(withLocal({ id, vpc: vpc.id, main: true, subnets: [], routes: [], tags: {} }));
  }
  return out;
}

/** The region's default DHCP options set, which VPCs without `dhcpOptions` use. */
export function defaultDhcpOptions(region: string): FixtureDhcpOptions {
  return {
    id: `dopt-${hexId(region, 8)}`,
    domainName: region === "us-east-1" ? "ec2.internal" : `${region}.compute.internal`,
    domainNameServers: ["AmazonProvidedDNS"],
    tags: {},
  };
}

/** The declared sets and the region's default one. */
export function allDhcpOptions(w: NetworkWorld, region: string): FixtureDhcpOptions[] {
  return [...w.dhcpOptions, defaultDhcpOptions(region)];
}

export function vpcDhcpOptionsId(vpc: FixtureVpc, region: string): string {
  return vpc.dhcpOptions ?? defaultDhcpOptions(region).id;
}

/** A stable id-like hex string (FNV-1a, rehashed for length): the same seed, the same id. */
export function hexId(seed: string, length: number): string {
  let out = "";
  let h = 0x811c9dc5;
  for (let round = 0; out.length < length; round++) {
    for (const ch of `${round}:${seed}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
    out += h.toString(16).padStart(8, "0");
  }
  return out.slice(0, length);
}
