/**
 * The emulated AWS account: instances, VPCs, EKS clusters and IAM denials, loaded from YAML.
 * The loaded object is the emulator's live world: the API mutates instance states in it
 * (StartInstances) and the parameter store (PutParameter, DeleteParameter) so that every part
 * of the emulator sees the same account.
 *
 * Top-level keys: account, callerArn, userId, startDelayMs, instances, vpcs, clusters, deny,
 * dhcpOptions, routeTables, hostedZones, parameters (fixtures_network.ts,
 * fixtures_parameters.ts), identities (STS's access keys and principals, fixtures_identities.ts)
 * and `destinations`. The network keys:
 *
 *     vpcs:
 *       - { id: vpc-0a1b2c3d, cidr: 10.99.0.0/16, secondaryCidrs: [10.100.0.0/16],
 *           dhcpOptions: dopt-0a1b2c3d }   # no dhcpOptions = the region's default set
 *     dhcpOptions:
 *       - { id: dopt-0a1b2c3d, domainName: corp.example, domainNameServers: [AmazonProvidedDNS] }
 *     routeTables:
 *       - id: rtb-0a1b2c3d
 *         vpc: vpc-0a1b2c3d
 *         main: true                   # default false; a VPC without one gets one synthesized
 *         subnets: [subnet-0a1b2c3d]   # explicit associations
 *         routes:                      # `local` routes per VPC CIDR are added when missing
 *           - { destination: 10.8.0.0/16, target: tgw-0123456789abcdef0 }
 *           - { destination: 192.168.50.0/24, target: vgw-0123, state: blackhole }
 *           - { prefixList: pl-0123, target: tgw-0123456789abcdef0 }
 *     hostedZones:                     # Route 53 private zones and their VPCs
 *       - { id: Z0123456789ABCDEFGHIJ, name: corp.internal, vpcs: [vpc-0a1b2c3d] }
 *     parameters:                      # SSM Parameter Store; type String|StringList|SecureString
 *       - { name: /ssm-proxy/tunnels/prod, value: '{"target":"name:bastion"}', type: String }
 *
 * A route's target prefix picks its EC2 field (tgw- transitGatewayId, pcx-
 * vpcPeeringConnectionId, igw-/vgw-/local gatewayId, nat- natGatewayId, eni- networkInterfaceId,
 * an arn:aws:networkmanager core network coreNetworkArn).
 *
 * `destinations`: where the emulated agent really dials a Port session's destination
 * (destinations.ts), so that VPC addresses work on a machine without the lab's namespaces:
 *
 *     destinations:
 *       "10.99.0.10:80": "127.0.0.1:8080"
 *       "[fd00::10]:443": "[::1]:8443"
 *
 * Keys and values are IPv4 `a.b.c.d:port` or bracketed IPv6 `[v6]:port` (quote them: a bare
 * `[` starts a YAML list). The localhost of AWS-StartPortForwardingSession is looked up as
 * `127.0.0.1:<portNumber>`; host names and unmapped destinations are dialled as they are.
 *
 * The emulated agent refuses remote-host sessions to its instance's VPC reserved addresses
 * (the VPC's first four and last, from `vpcs[].cidr`; none for hybrid `mi-` nodes) and to its
 * `Mgs.DeniedPortForwardingRemoteIPs` (agent/forbidden.ts). An instance's
 * `deniedPortForwardingRemoteIPs:` stands for that key of its amazon-ssm-agent.json and
 * replaces the agent's default list (IMDS, Amazon DNS, time sync…); `[]` leaves only the VPC's.
 */

import { LineCounter, type Node, parseDocument } from "yaml";
import type { InstanceFacts } from "./agent/forbidden.ts";
import {
  checkRouteTables,
  type FixtureDhcpOptions,
  type FixtureHostedZone,
  type FixtureRouteTable,
  parseDhcpOptions,
  parseHostedZone,
  parseRouteTable,
  parseVpcNetwork,
  requireUnique,
  vpcCidrs,
} from "./fixtures_network.ts";
import { type FixtureParameter, parseParameter } from "./fixtures_parameters.ts";
import { type FixtureIdentity, parseIdentity } from "./fixtures_identities.ts";
import { FixtureError, Validator } from "./fixtures_validate.ts";
import { destinationMap } from "./destinations.ts";

export { FixtureError } from "./fixtures_validate.ts";
export type {
  FixtureDhcpOptions,
  FixtureHostedZone,
  FixtureRoute,
  FixtureRouteTable,
} from "./fixtures_network.ts";
export type { FixtureParameter } from "./fixtures_parameters.ts";
export type { FixtureIdentity } from "./fixtures_identities.ts";

export type InstanceState = "pending" | "running" | "stopped";
/** `unmanaged`: the instance never registered with Systems Manager, so SSM does not list it. */
export type PingStatus = "Online" | "ConnectionLost" | "Inactive" | "unmanaged";

export interface FixtureInstance {
  /** `i-…` for EC2 instances, `mi-…` for hybrid managed instances (SSM only, not EC2). */
  id: string;
  /**
   * EC2: the Name tag. Managed (`mi-…`): the registration name (CreateActivation's
   * DefaultInstanceName) that DescribeInstanceInformation reports as `Name`.
   */
  name?: string;
  /** EC2: the tags but Name. Managed: the SSM resource tags, a Name tag included. */
  tags: Record<string, string>;
  state: InstanceState;
  pingStatus: PingStatus;
  platform: "Linux" | "Windows" | "MacOS";
  platformName: string;
  platformVersion: string;
  /** EC2: the private IP. Managed: the IPAddress SSM reports. */
  privateIp: string;
  /** EC2 only, like subnet, architecture and instanceType. */
  vpc: string;
  subnet: string;
  architecture: "x86_64" | "arm64";
  agentVersion: string;
  computerName: string;
  instanceType: string;
  /**
   * `Mgs.DeniedPortForwardingRemoteIPs` in the instance's amazon-ssm-agent.json; absent = the
   * agent's default (or the emulator's `agent.deniedPortForwardingRemoteIPs`).
   */
  deniedPortForwardingRemoteIPs?: string[];
  /**
   * Port session destinations as this instance's agent dials them, over the top-level
   * `destinations` (same form). What lets two emulated instances each have their own
   * "localhost": `"127.0.0.1:7797": "10.98.0.2:7797"` reaches an agent in another namespace.
   */
  destinations?: Record<string, string>;
  /** Runtime only: epoch ms at which a pending instance becomes running. */
  readyAt?: number;
}

export interface FixtureVpc {
  id: string;
  /** The primary IPv4 block. */
  cidr: string;
  /** More associated IPv4 blocks. */
  secondaryCidrs?: string[];
  /** Absent: the region's default set (fixtures_network.ts defaultDhcpOptions). */
  dhcpOptions?: string;
  tags: Record<string, string>;
}

export interface FixtureCluster {
  name: string;
  endpoint: string;
  /** Base64 of the CA PEM, as EKS returns it (a PEM in the YAML is encoded on load). */
  caData: string;
  vpc: string;
  subnets: string[];
  privateAccess: boolean;
  publicAccess: boolean;
  version: string;
}

export interface FixtureDeny {
  /** Operation name, e.g. `StartSession`; a `ssm:`-style prefix is accepted and ignored. */
  action: string;
  /** Only this instance; absent = every call of the action. */
  target?: string;
}

export interface Fixtures {
  account: string;
  callerArn: string;
  userId: string;
  /** How long StartInstances keeps an instance pending. */
  startDelayMs: number;
  instances: FixtureInstance[];
  vpcs: FixtureVpc[];
  clusters: FixtureCluster[];
  deny: FixtureDeny[];
  dhcpOptions: FixtureDhcpOptions[];
  /** As declared; effectiveRouteTables (fixtures_network.ts) adds main tables and local routes. */
  routeTables: FixtureRouteTable[];
  hostedZones: FixtureHostedZone[];
  /** The live parameter store. */
  parameters: FixtureParameter[];
  /** STS's access keys; empty = any key is the callerArn/userId above, unchecked. */
  identities: FixtureIdentity[];
  /**
   * Port session destination → the address the emulated agent dials instead, both canonical
   * (`10.99.0.10:80`, `[fd00::10]:443`); see destinations.ts. Unlike the rest of the world it
   * is read once, when the emulator starts.
   */
  destinations: Record<string, string>;
}

const DEFAULT_ACCOUNT = "123456789012";

/** A placeholder CA: tests that verify TLS against a cluster supply their own in YAML. */
const PLACEHOLDER_CA = btoa(
  "-----BEGIN CERTIFICATE-----\nZW11bGF0b3ItcGxhY2Vob2xkZXI=\n-----END CERTIFICATE-----\n",
);

export function defaultFixtures(): Fixtures {
  return {
    account: DEFAULT_ACCOUNT,
    callerArn: `arn:aws:iam::${DEFAULT_ACCOUNT}:user/emulator-user`,
    userId: "AIDAEMULATOR00000001",
    startDelayMs: 1500,
    instances: [instanceDefaults({
      id: "i-0123456789abcdef0",
      name: "bastion",
      tags: { Purpose: "bastion" },
    })],
    vpcs: [{ id: "vpc-0a1b2c3d", cidr: "10.99.0.0/16", tags: { Name: "emulator-vpc" } }],
    clusters: [{
      name: "lab",
      endpoint: "https://0123456789ABCDEF0123456789ABCDEF.gr7.us-east-1.eks.amazonaws.com",
      caData: PLACEHOLDER_CA,
      vpc: "vpc-0a1b2c3d",
      subnets: ["subnet-0a1b2c3d"],
      privateAccess: true,
      publicAccess: false,
      version: "1.31",
    }],
    deny: [],
    dhcpOptions: [],
    routeTables: [],
    hostedZones: [],
    parameters: [],
    identities: [],
    destinations: {},
  };
}

type InstanceSeed = Partial<FixtureInstance> & { id: string };

function instanceDefaults(seed: InstanceSeed): FixtureInstance {
  const state = seed.state ?? "running";
  const privateIp = seed.privateIp ?? "10.99.0.10";
  const managed = seed.id.startsWith("mi-");
  return {
    tags: {},
    state,
    pingStatus: state === "running" ? "Online" : "ConnectionLost",
    platform: "Linux",
    platformName: "Amazon Linux",
    platformVersion: "2023",
    privateIp,
    vpc: "vpc-0a1b2c3d",
    subnet: "subnet-0a1b2c3d",
    architecture: "x86_64",
    agentVersion: "3.3.1142.0",
    computerName: managed
      ? `${seed.name ?? seed.id}.corp.internal`
      : `ip-${privateIp.replaceAll(".", "-")}.ec2.internal`,
    instanceType: "t3.micro",
    ...seed,
  };
}

/** Reads fixtures from YAML; no path means the defaults. */
export async function loadFixtures(path?: string): Promise<Fixtures> {
  if (!path) return defaultFixtures();
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new FixtureError(`${path}: cannot read the fixtures file: ${(e as Error).message}`);
  }
  return parseFixtures(text, path);
}

/** Parses and validates; errors name the file, line and key path. */
export function parseFixtures(text: string, file = "<fixtures>"): Fixtures {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    throw new FixtureError(`${file}:${e.linePos?.[0].line ?? 0}: ${e.message.split("\n")[0]}`);
  }
  const v = new Validator(file, lineCounter);
  const root = doc.contents ?? null;
  if (root === null) return defaultFixtures();
  const top = v.map(root, "", [
    "account",
    "callerArn",
    "userId",
    "startDelayMs",
    "instances",
    "vpcs",
    "clusters",
    "deny",
    "dhcpOptions",
    "routeTables",
    "hostedZones",
    "parameters",
    "identities",
    "destinations",
  ]);
  const d = defaultFixtures();
  const account = v.optStr(top, "account", /^\d{12}$/, "a 12-digit account id") ?? d.account;
  // Declared before what refers to them: DHCP sets, then VPCs, then tables and zones.
  const dhcpOptions = v.list(top, "dhcpOptions", (n, p) => parseDhcpOptions(v, n, p)) ?? [];
  requireUnique(v, top, "dhcpOptions", dhcpOptions, (o) => o.id);
  const dhcpIds = new Set(dhcpOptions.map((o) => o.id));
  const vpcs = v.list(top, "vpcs", (n, p) => parseVpc(v, n, p, dhcpIds)) ?? d.vpcs;
  requireUnique(v, top, "vpcs", vpcs, (x) => x.id);
  const vpcIds = new Set(vpcs.map((x) => x.id));
  const routeTables = v.list(top, "routeTables", (n, p) => parseRouteTable(v, n, p, vpcIds)) ?? [];
  checkRouteTables(v, top, routeTables);
  const hostedZones = v.list(top, "hostedZones", (n, p) => parseHostedZone(v, n, p, vpcIds)) ??
    [];
  requireUnique(v, top, "hostedZones", hostedZones, (z) => z.id);
  const now = Date.now();
  const parameters = v.list(top, "parameters", (n, p) => parseParameter(v, n, p, now)) ?? [];
  requireUnique(v, top, "parameters", parameters, (x) => x.name);
  const identities = v.list(top, "identities", (n, p) => parseIdentity(v, n, p)) ?? [];
  requireUnique(v, top, "identities", identities, (x) => x.accessKeyId);
  return {
    account,
    callerArn: v.optStr(top, "callerArn", /^arn:aws[\w-]*:(iam|sts)::\d{12}:/, "an IAM/STS arn") ??
      `arn:aws:iam::${account}:user/emulator-user`,
    userId: v.optStr(top, "userId") ?? d.userId,
    startDelayMs: v.optNum(top, "startDelayMs") ?? d.startDelayMs,
    instances: v.list(top, "instances", (n, p) => parseInstance(v, n, p)) ?? d.instances,
    vpcs,
    clusters: v.list(top, "clusters", (n, p) => parseCluster(v, n, p)) ?? d.clusters,
    deny: v.list(top, "deny", (n, p) => parseDeny(v, n, p)) ?? [],
    dhcpOptions,
    routeTables,
    hostedZones,
    parameters,
    identities,
    destinations: v.destinations(top, "destinations") ?? {},
  };
}

function parseInstance(v: Validator, node: Node, path: string): FixtureInstance {
  const m = v.map(node, path, [
    "id",
    "name",
    "tags",
    "state",
    "pingStatus",
    "platform",
    "platformName",
    "platformVersion",
    "privateIp",
    "vpc",
    "subnet",
    "architecture",
    "agentVersion",
    "computerName",
    "instanceType",
    "deniedPortForwardingRemoteIPs",
    "destinations",
  ]);
  const seed: InstanceSeed = {
    id: v.reqStr(
      m,
      "id",
      /^(i-[0-9a-f]{8,17}|mi-[0-9a-f]{17})$/,
      "an instance id like i-0123456789abcdef0 or mi-0123456789abcdef0",
    ),
  };
  const managed = seed.id.startsWith("mi-");
  const name = v.optStr(m, "name");
  if (name !== undefined) seed.name = name;
  const tags = v.tags(m, "tags") ?? {};
  // EC2 keeps the Name tag as `name`; a managed instance's name is its registration name, and
  // its Name tag (if any) stays a tag.
  if (!managed) {
    if (seed.name === undefined && tags.Name !== undefined) seed.name = tags.Name;
    delete tags.Name;
  }
  seed.tags = tags;
  if (managed && m.get("state") !== undefined) {
    v.fail(
      m.get("state")!,
      `${path}.state`,
      "a managed (mi-) instance has no EC2 state: set pingStatus instead",
    );
  }
  const set = <K extends keyof FixtureInstance>(k: K, val: FixtureInstance[K] | undefined) => {
    if (val !== undefined) seed[k] = val;
  };
  set("state", v.optEnum(m, "state", ["running", "stopped"] as const));
  set(
    "pingStatus",
    v.optEnum(m, "pingStatus", ["Online", "ConnectionLost", "Inactive", "unmanaged"] as const),
  );
  set("platform", v.optEnum(m, "platform", ["Linux", "Windows", "MacOS"] as const));
  set("platformName", v.optStr(m, "platformName"));
  set("platformVersion", v.optStr(m, "platformVersion"));
  set("privateIp", v.optStr(m, "privateIp", /^\d{1,3}(\.\d{1,3}){3}$/, "an IPv4 address"));
  set("vpc", v.optStr(m, "vpc", /^vpc-[0-9a-f]+$/, "a VPC id"));
  set("subnet", v.optStr(m, "subnet", /^subnet-[0-9a-f]+$/, "a subnet id"));
  set("architecture", v.optEnum(m, "architecture", ["x86_64", "arm64"] as const));
  set("agentVersion", v.optStr(m, "agentVersion"));
  set("computerName", v.optStr(m, "computerName"));
  set("instanceType", v.optStr(m, "instanceType"));
  set("deniedPortForwardingRemoteIPs", v.ipList(m, "deniedPortForwardingRemoteIPs"));
  set("destinations", v.destinations(m, "destinations"));
  return instanceDefaults(seed);
}

/**
 * What the emulated agent on `target` knows of itself (agent/forbidden.ts): its VPC's primary
 * CIDR as IMDS gives it (EC2 instances only) and its own denied list. Read when a session
 * starts, so the live world counts.
 */
export function instanceFacts(f: Fixtures, target: string): InstanceFacts | undefined {
  const i = f.instances.find((x) => x.id === target);
  if (!i) return undefined;
  const vpc = i.id.startsWith("mi-") ? undefined : f.vpcs.find((v) => v.id === i.vpc);
  return {
    ...(vpc ? { vpcCidrs: { ipv4: vpcCidrs(vpc), ipv6: [] } } : {}),
    ...(i.deniedPortForwardingRemoteIPs
      ? { deniedPortForwardingRemoteIPs: i.deniedPortForwardingRemoteIPs }
      : {}),
    ...(i.destinations ? { destinations: destinationMap(i.destinations) } : {}),
  };
}

function parseVpc(v: Validator, node: Node, path: string, dhcpIds: Set<string>): FixtureVpc {
  const m = v.map(node, path, ["id", "cidr", "secondaryCidrs", "dhcpOptions", "tags"]);
  return {
    id: v.reqStr(m, "id", /^vpc-[0-9a-f]+$/, "a VPC id"),
    cidr: v.reqStr(m, "cidr", /^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, "an IPv4 CIDR"),
    ...parseVpcNetwork(v, m, dhcpIds),
    tags: v.tags(m, "tags") ?? {},
  };
}

function parseCluster(v: Validator, node: Node, path: string): FixtureCluster {
  const m = v.map(node, path, [
    "name",
    "endpoint",
    "ca",
    "vpc",
    "subnets",
    "privateAccess",
    "publicAccess",
    "version",
  ]);
  const ca = v.reqStr(m, "ca");
  return {
    name: v.reqStr(m, "name", /^[0-9A-Za-z][A-Za-z0-9_-]*$/, "an EKS cluster name"),
    endpoint: v.reqStr(m, "endpoint", /^https:\/\//, "an https:// URL"),
    caData: ca.trimStart().startsWith("-----BEGIN") ? base64Utf8(ca) : ca.replace(/\s+/g, ""),
    vpc: v.reqStr(m, "vpc", /^vpc-[0-9a-f]+$/, "a VPC id"),
    subnets: v.strList(m, "subnets") ?? [],
    privateAccess: v.optBool(m, "privateAccess") ?? true,
    publicAccess: v.optBool(m, "publicAccess") ?? false,
    version: v.optStr(m, "version") ?? "1.31",
  };
}

function parseDeny(v: Validator, node: Node, path: string): FixtureDeny {
  const m = v.map(node, path, ["action", "target"]);
  const action = v.reqStr(m, "action", /^([a-z0-9-]+:)?[A-Z][A-Za-z]+$/, "an operation name");
  const target = v.optStr(m, "target");
  return { action: action.replace(/^[a-z0-9-]+:/, ""), ...(target ? { target } : {}) };
}

function base64Utf8(s: string): string {
  return btoa(String.fromCharCode(...new TextEncoder().encode(s)));
}
