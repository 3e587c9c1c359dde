/**
 * The emulated AWS account: instances, VPCs, EKS clusters and IAM denials, loaded from YAML.
 * The loaded object is the emulator's live world: the API mutates instance states in it
 * (StartInstances) so that every part of the emulator sees the same account.
 *
 * Top-level keys: account, callerArn, userId, startDelayMs, instances, vpcs, clusters, deny, and
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

import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";
import { type MapView, YamlWalker } from "../config/yaml_walk.ts";
import { formatHostPort, parseDestination } from "./destinations.ts";
import { type InstanceFacts, parseGoIP } from "./agent/forbidden.ts";
import { ExitCode, UserError } from "../errors.ts";

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
  /** Runtime only: epoch ms at which a pending instance becomes running. */
  readyAt?: number;
}

export interface FixtureVpc {
  id: string;
  cidr: string;
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

/** A bad fixtures file is the user's to fix, so it prints as one line, not a stack trace. */
export class FixtureError extends UserError {
  override name = "FixtureError";
  constructor(message: string) {
    super(message, ExitCode.Usage);
  }
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
    "destinations",
  ]);
  const d = defaultFixtures();
  const account = v.optStr(top, "account", /^\d{12}$/, "a 12-digit account id") ?? d.account;
  return {
    account,
    callerArn: v.optStr(top, "callerArn", /^arn:aws[\w-]*:(iam|sts)::\d{12}:/, "an IAM/STS arn") ??
      `arn:aws:iam::${account}:user/emulator-user`,
    userId: v.optStr(top, "userId") ?? d.userId,
    startDelayMs: v.optNum(top, "startDelayMs") ?? d.startDelayMs,
    instances: v.list(top, "instances", (n, p) => parseInstance(v, n, p)) ?? d.instances,
    vpcs: v.list(top, "vpcs", (n, p) => parseVpc(v, n, p)) ?? d.vpcs,
    clusters: v.list(top, "clusters", (n, p) => parseCluster(v, n, p)) ?? d.clusters,
    deny: v.list(top, "deny", (n, p) => parseDeny(v, n, p)) ?? [],
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
    ...(vpc ? { vpcCidrs: { ipv4: [vpc.cidr], ipv6: [] } } : {}),
    ...(i.deniedPortForwardingRemoteIPs
      ? { deniedPortForwardingRemoteIPs: i.deniedPortForwardingRemoteIPs }
      : {}),
  };
}

function parseVpc(v: Validator, node: Node, path: string): FixtureVpc {
  const m = v.map(node, path, ["id", "cidr", "tags"]);
  return {
    id: v.reqStr(m, "id", /^vpc-[0-9a-f]+$/, "a VPC id"),
    cidr: v.reqStr(m, "cidr", /^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, "an IPv4 CIDR"),
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

/** The fixtures' walker: FixtureError, plus typed value readers. */
class Validator extends YamlWalker {
  constructor(file: string, lines: LineCounter) {
    super(file, lines, (m) => new FixtureError(m));
  }

  #scalar(m: MapView, key: string): { node: Node; value: unknown; path: string } | undefined {
    const node = m.get(key);
    const path = m.path ? `${m.path}.${key}` : key;
    if (node === undefined) return undefined;
    if (!isScalar(node)) this.fail(node, path, "expected a single value");
    if (node.value === null) return undefined;
    return { node, value: node.value, path };
  }

  optStr(m: MapView, key: string, re?: RegExp, what?: string): string | undefined {
    const s = this.#scalar(m, key);
    if (!s) return undefined;
    if (typeof s.value !== "string" && typeof s.value !== "number") {
      this.fail(s.node, s.path, "expected a string");
    }
    const str = String(s.value);
    if (re && !re.test(str)) this.fail(s.node, s.path, `"${str}" is not ${what}`);
    return str;
  }

  reqStr(m: MapView, key: string, re?: RegExp, what?: string): string {
    const s = this.optStr(m, key, re, what);
    if (s === undefined) this.fail(m.node, m.path ? `${m.path}.${key}` : key, "required");
    return s;
  }

  optNum(m: MapView, key: string): number | undefined {
    const s = this.#scalar(m, key);
    if (!s) return undefined;
    if (typeof s.value !== "number" || s.value < 0) {
      this.fail(s.node, s.path, "expected a non-negative number");
    }
    return s.value;
  }

  optBool(m: MapView, key: string): boolean | undefined {
    const s = this.#scalar(m, key);
    if (!s) return undefined;
    if (typeof s.value !== "boolean") this.fail(s.node, s.path, "expected true or false");
    return s.value;
  }

  optEnum<T extends string>(m: MapView, key: string, values: readonly T[]): T | undefined {
    const s = this.optStr(m, key);
    if (s === undefined) return undefined;
    if (!values.includes(s as T)) {
      this.fail(m.get(key), `${m.path}.${key}`, `"${s}" is not one of ${values.join(", ")}`);
    }
    return s as T;
  }

  tags(m: MapView, key: string): Record<string, string> | undefined {
    const node = m.get(key);
    if (node === undefined) return undefined;
    const path = `${m.path}.${key}`;
    if (!isMap(node)) this.fail(node, path, "expected a mapping of tag key to value");
    const out: Record<string, string> = {};
    for (const pair of node.items) {
      const k = isScalar(pair.key) ? String(pair.key.value) : "";
      if (!isScalar(pair.value) || pair.value.value === null) {
        this.fail((pair.value ?? pair.key) as Node, `${path}.${k}`, "expected a tag value");
      }
      out[k] = String(pair.value.value);
    }
    return out;
  }

  strList(m: MapView, key: string): string[] | undefined {
    const node = m.get(key);
    if (node === undefined) return undefined;
    const path = `${m.path}.${key}`;
    if (!isSeq(node)) this.fail(node, path, "expected a list");
    return node.items.map((item, i) => {
      if (!isScalar(item)) this.fail(item as Node, `${path}[${i}]`, "expected a string");
      return String(item.value);
    });
  }

  /** A list of IP addresses, as the agent's net.ParseIP reads them (an empty list is fine). */
  ipList(m: MapView, key: string): string[] | undefined {
    const node = m.get(key);
    if (node === undefined) return undefined;
    const path = `${m.path}.${key}`;
    if (isScalar(node) && node.value === null) return [];
    if (!isSeq(node)) this.fail(node, path, "expected a list of IP addresses");
    return node.items.map((item, i) => {
      const text = isScalar(item) ? String(item.value) : "";
      if (!isScalar(item) || !parseGoIP(text)) {
        this.fail(
          item as Node,
          `${path}[${i}]`,
          `"${text}" is not an IP address (the agent compares addresses, never names or CIDRs)`,
        );
      }
      return text;
    });
  }

  /** `destinations`: address:port → address:port, stored in canonical form. */
  destinations(m: MapView, key: string): Record<string, string> | undefined {
    const node = m.get(key);
    if (node === undefined) return undefined;
    if (isScalar(node) && node.value === null) return {};
    if (!isMap(node)) this.fail(node, key, "expected a mapping of address:port to address:port");
    const out: Record<string, string> = {};
    const firstSpelling = new Map<string, string>();
    for (const pair of node.items) {
      const keyNode = pair.key as Node;
      if (!isScalar(keyNode) || typeof keyNode.value !== "string") {
        this.fail(
          keyNode,
          key,
          'each key must be a quoted "address:port" (a bare [ starts a YAML list)',
        );
      }
      const from = keyNode.value;
      const path = `${key}[${JSON.stringify(from)}]`;
      const valueNode = (pair.value ?? keyNode) as Node;
      if (!isScalar(valueNode) || typeof valueNode.value !== "string") {
        this.fail(valueNode, path, "expected the address:port to dial instead");
      }
      const d = parseDestination(from, valueNode.value);
      if ("problem" in d) {
        this.fail(d.side === "key" ? keyNode : valueNode, path, `${d.side}: ${d.problem}`);
      }
      const earlier = firstSpelling.get(d.key);
      if (earlier !== undefined) {
        this.fail(keyNode, path, `the same destination as ${JSON.stringify(earlier)} above`);
      }
      firstSpelling.set(d.key, from);
      out[d.key] = formatHostPort(d.to);
    }
    return out;
  }

  list<T>(m: MapView, key: string, each: (n: Node, path: string) => T): T[] | undefined {
    const node = m.get(key);
    if (node === undefined) return undefined;
    if (!isSeq(node)) this.fail(node, key, "expected a list");
    return node.items.map((item, i) => each(item as Node, `${key}[${i}]`));
  }
}
