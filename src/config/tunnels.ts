/**
 * The `tunnels:` map of ssm-proxy's config: named tunnels that `start NAME` runs. Keys are
 * snake_case like `clusters:`. Pure: a YAML node in, profiles or a ConfigError naming the place
 * out. Team entries (JSON in Parameter Store) are turned into nodes and meet the same rules.
 */
import { domainName } from "../net/domain.ts";
import { isMap, isScalar, isSeq, LineCounter, type Node } from "yaml";
import { ConfigError } from "./clusters.ts";
import { YamlWalker } from "./yaml_walk.ts";
import { parseCidr } from "../net/cidr.ts";
import { parseTarget } from "../aws/targets.ts";
import { validName } from "../tunnel/state.ts";

export type TunnelMode = "agent" | "agentless" | "auto";

export interface TunnelProfile {
  name: string;
  target?: string;
  /** Absent = discovered from the instance's VPC. */
  cidrs?: string[];
  exclude?: string[];
  /** Absent = discovered (private hosted zones). */
  dnsDomains?: string[];
  /** false = no DNS changes, like --no-dns. */
  dns?: boolean;
  /** `auto`: grow with the load (the default), or a fixed count. */
  stripes?: number | "auto";
  mode?: TunnelMode;
  profile?: string;
  region?: string;
}

/** A profile and the line of its name in the file (0 when it has no place in one). */
export interface LocatedTunnel {
  profile: TunnelProfile;
  line: number;
}

export const TUNNEL_KEYS = [
  "target",
  "cidrs",
  "exclude",
  "dns_domains",
  "dns",
  "stripes",
  "mode",
  "profile",
  "region",
] as const;

const MODES: readonly TunnelMode[] = ["agent", "agentless", "auto"];
const NAME_RULE = "1 to 32 of a-z, 0-9, - and _, starting with a letter or digit (like --name)";

/** The walker for config files: ConfigError, plus the value readers a tunnel needs. */
export class ConfigWalker extends YamlWalker {
  readonly counter: LineCounter;

  constructor(file: string, counter = new LineCounter()) {
    super(file, counter, (m) => new ConfigError(m));
    this.counter = counter;
  }

  /** The 1-based line of a node, 0 for nodes built from JSON. */
  lineOf(node: Node | undefined): number {
    const off = node?.range?.[0];
    return off === undefined ? 0 : this.counter.linePos(off).line;
  }

  str(node: Node | undefined, path: string): string | undefined {
    const s = this.scalar(node, path);
    if (s === undefined) return undefined;
    if (typeof s.value !== "string") this.fail(s.node, path, "expected a string");
    if (s.value.trim() === "") this.fail(s.node, path, "must not be empty");
    return s.value.trim();
  }

  bool(node: Node | undefined, path: string): boolean | undefined {
    const s = this.scalar(node, path);
    if (s === undefined) return undefined;
    if (typeof s.value !== "boolean") this.fail(s.node, path, "expected true or false");
    return s.value;
  }

  /** A list of strings, each checked by `check` (which returns the canonical form or throws). */
  strList(
    node: Node | undefined,
    path: string,
    check: (s: string) => string,
    example: string,
  ): string[] | undefined {
    if (node === undefined || (isScalar(node) && node.value === null)) return undefined;
    if (!isSeq(node)) this.fail(node, path, `expected a list like [${example}]`);
    return node.items.map((item, i) => {
      const itemPath = `${path}[${i}]`;
      const s = this.scalar(item as Node, itemPath);
      if (s === undefined || typeof s.value !== "string") {
        this.fail(item as Node, itemPath, `expected a string like ${example}`);
      }
      try {
        return check(s.value);
      } catch (e) {
        this.fail(s.node, itemPath, (e as Error).message);
      }
    });
  }
}

/** The entries of a `tunnels:` mapping node (name → entry). */
export function parseTunnelMap(w: ConfigWalker, node: Node): LocatedTunnel[] {
  if (!isMap(node)) w.fail(node, "tunnels", "expected a mapping of tunnel names to entries");
  return node.items.map((pair) => {
    const key = pair.key as Node;
    const name = isScalar(key) ? String(key.value) : "";
    const path = `tunnels.${name}`;
    if (!validName(name)) w.fail(key, path, `"${name}" is not a tunnel name: ${NAME_RULE}`);
    const value = (pair.value ?? undefined) as Node | undefined;
    if (value === undefined || (isScalar(value) && value.value === null)) {
      w.fail(key, path, "empty entry: give at least a target");
    }
    return { profile: parseTunnelEntry(w, value, name, path), line: w.lineOf(key) };
  });
}

/** One entry: the mapping under a tunnel's name. */
export function parseTunnelEntry(
  w: ConfigWalker,
  node: Node,
  name: string,
  path: string,
): TunnelProfile {
  const m = w.map(node, path, [...TUNNEL_KEYS]);
  const at = (key: string) => `${path}.${key}`;
  const out: TunnelProfile = { name };

  const target = w.str(m.get("target"), at("target"));
  if (target !== undefined) {
    try {
      parseTarget(target);
    } catch (e) {
      w.fail(m.get("target"), at("target"), (e as Error).message);
    }
    out.target = target;
  }
  const cidrs = w.strList(m.get("cidrs"), at("cidrs"), (s) => parseCidr(s).text, "10.0.0.0/16");
  if (cidrs?.length === 0) {
    w.fail(m.get("cidrs"), at("cidrs"), "empty list: leave the key out to use the VPC's CIDRs");
  }
  if (cidrs) out.cidrs = cidrs;
  const exclude = w.strList(
    m.get("exclude"),
    at("exclude"),
    (s) => parseCidr(s).text,
    "10.0.5.0/24",
  );
  if (exclude) out.exclude = exclude;
  const domains = w.strList(m.get("dns_domains"), at("dns_domains"), domainName, "corp.internal");
  if (domains?.length === 0) {
    w.fail(
      m.get("dns_domains"),
      at("dns_domains"),
      "empty list: leave the key out to discover the domains, or set dns: false",
    );
  }
  if (domains) out.dnsDomains = domains;
  const dns = w.bool(m.get("dns"), at("dns"));
  if (dns !== undefined) out.dns = dns;

  const stripes = w.scalar(m.get("stripes"), at("stripes"));
  if (stripes !== undefined) {
    const n = stripes.value;
    if (n === "auto") out.stripes = "auto";
    else if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 16) {
      w.fail(stripes.node, at("stripes"), "expected auto or a whole number from 1 to 16");
    } else out.stripes = n;
  }
  const mode = w.str(m.get("mode"), at("mode"));
  if (mode !== undefined) {
    if (!MODES.includes(mode as TunnelMode)) {
      w.fail(m.get("mode"), at("mode"), `"${mode}" is not a mode: use ${MODES.join(", ")}`);
    }
    out.mode = mode as TunnelMode;
  }
  const profile = w.str(m.get("profile"), at("profile"));
  if (profile !== undefined) out.profile = profile;
  const region = w.str(m.get("region"), at("region"));
  if (region !== undefined) {
    if (!/^[a-z]{2}(-[a-z]+)+-\d+$/.test(region)) {
      w.fail(m.get("region"), at("region"), `"${region}" is not an AWS region like eu-west-1`);
    }
    out.region = region;
  }
  return out;
}

/** The entry as written in YAML and JSON: snake_case, no name, absent keys left out. */
export function tunnelToEntry(p: TunnelProfile): Record<string, unknown> {
  const entry: Record<string, unknown> = {
    target: p.target,
    cidrs: p.cidrs,
    exclude: p.exclude,
    dns_domains: p.dnsDomains,
    dns: p.dns,
    stripes: p.stripes,
    mode: p.mode,
    profile: p.profile,
    region: p.region,
  };
  for (const k of Object.keys(entry)) if (entry[k] === undefined) delete entry[k];
  return entry;
}

export { domainName };
