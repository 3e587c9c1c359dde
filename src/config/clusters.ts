/**
 * The `clusters:` list: the kube-ssm-proxy `clusters.yaml` schema, accepted as is, whether it
 * stands alone or sits inside ssm-proxy's config.yaml. Pure: text in, entries or a UserError out.
 */
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument, type YAMLSeq } from "yaml";
import { ExitCode, UserError } from "../errors.ts";

export interface ClusterEntry {
  /** The name shown in the picker and used for the kubeconfig cluster, user and context. */
  name: string;
  region: string;
  /** The EKS cluster's name in AWS. */
  cluster_name: string;
  profile: string;
  environment: string;
  /** Reach the public endpoint directly: no tunnel, no bastion. */
  direct_connect: boolean;
  /** `Key=Value` tag that marks the bastion; absent = `Purpose=bastion`. */
  bastion_tag?: string;
}

export interface ClustersFile {
  file: string;
  clusters: ClusterEntry[];
}

const ENTRY_KEYS = [
  "name",
  "region",
  "cluster_name",
  "profile",
  "environment",
  "direct_connect",
  "bastion_tag",
];

/** A bad config is the user's to fix: one line naming the file, line, entry and key. */
export class ConfigError extends UserError {
  override name = "ConfigError";
  constructor(message: string) {
    super(message, ExitCode.Usage);
  }
}

/**
 * Parses the `clusters:` list of a YAML document. Other top-level keys are left alone: in
 * config.yaml they belong to other sections (connections), validated by their own code.
 * `required`: a missing `clusters:` key is an error (a clusters.yaml) rather than an empty list.
 */
export function parseClusters(text: string, file: string, required = true): ClusterEntry[] {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines });
  const at = (node: Node | null | undefined) => {
    const off = node?.range?.[0];
    return off === undefined ? "" : `:${lines.linePos(off).line}`;
  };
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    throw new ConfigError(`${file}:${e.linePos?.[0].line ?? 0}: ${e.message.split("\n")[0]}`);
  }
  const root = doc.contents;
  if (root === null || (isScalar(root) && root.value === null)) {
    if (required) throw new ConfigError(`${file}: empty file: expected a "clusters:" list`);
    return [];
  }
  if (!isMap(root)) throw new ConfigError(`${file}${at(root)}: expected a mapping at top level`);
  const list = root.get("clusters", true) as Node | undefined;
  if (list === undefined || (isScalar(list) && list.value === null)) {
    if (required) throw new ConfigError(`${file}: no "clusters:" list`);
    return [];
  }
  if (!isSeq(list)) throw new ConfigError(`${file}${at(list)}: clusters: expected a list`);
  return parseClusterSeq(list, file, at);
}

/**
 * The entries of a `clusters:` list node. `at` turns a node into `:line` (or "" for nodes built
 * from JSON, which have no place in a file): team entries from Parameter Store come through
 * here too, so they meet the same rules.
 */
export function parseClusterSeq(
  list: YAMLSeq,
  file: string,
  at: (node: Node | null | undefined) => string,
): ClusterEntry[] {
  const out: ClusterEntry[] = [];
  const seen = new Map<string, number>();
  list.items.forEach((item, i) => {
    const node = item as Node;
    const where = (n: Node | null | undefined, key?: string) => {
      const label = seenName(node) ? ` (${seenName(node)})` : "";
      return `${file}${at(n ?? node)}: clusters[${i}]${label}${key ? `.${key}` : ""}`;
    };
    if (!isMap(node)) throw new ConfigError(`${where(node)}: expected a mapping`);
    const values = new Map<string, Node>();
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : "";
      if (!ENTRY_KEYS.includes(key)) {
        throw new ConfigError(
          `${where(pair.key as Node, key)}: unknown key (allowed: ${ENTRY_KEYS.join(", ")})`,
        );
      }
      values.set(key, (pair.value ?? pair.key) as Node);
    }
    const str = (key: string, required: boolean): string | undefined => {
      const v = values.get(key);
      if (v === undefined || (isScalar(v) && v.value === null)) {
        if (required) throw new ConfigError(`${where(node, key)}: required`);
        return undefined;
      }
      if (!isScalar(v) || typeof v.value !== "string") {
        throw new ConfigError(`${where(v, key)}: expected a string`);
      }
      if (v.value.trim() === "") throw new ConfigError(`${where(v, key)}: must not be empty`);
      return v.value;
    };
    const name = str("name", true)!;
    const region = str("region", true)!;
    if (region.length < 3) {
      throw new ConfigError(
        `${where(values.get("region"), "region")}: "${region}" is too short to be a region`,
      );
    }
    const entry: ClusterEntry = {
      name,
      region,
      cluster_name: str("cluster_name", true)!,
      profile: str("profile", true)!,
      environment: str("environment", false) ?? "unknown",
      direct_connect: bool(values.get("direct_connect"), (n) => where(n, "direct_connect")),
    };
    const tag = str("bastion_tag", false);
    if (tag !== undefined) {
      if (!/^[^=]+=.*$/.test(tag)) {
        throw new ConfigError(
          `${where(values.get("bastion_tag"), "bastion_tag")}: "${tag}" is not Key=Value`,
        );
      }
      entry.bastion_tag = tag;
    }
    const first = seen.get(name);
    if (first !== undefined) {
      throw new ConfigError(
        `${where(values.get("name"), "name")}: duplicate name "${name}" (also clusters[${first}])`,
      );
    }
    seen.set(name, i);
    out.push(entry);
  });
  return out;
}

function bool(v: Node | undefined, where: (n: Node) => string): boolean {
  if (v === undefined || (isScalar(v) && v.value === null)) return false;
  if (!isScalar(v) || typeof v.value !== "boolean") {
    throw new ConfigError(`${where(v)}: expected true or false`);
  }
  return v.value;
}

/** The entry's name, if it has a usable one, to make messages about it findable. */
function seenName(node: Node): string | undefined {
  if (!isMap(node)) return undefined;
  const n = node.get("name");
  return typeof n === "string" && n.trim() !== "" ? n : undefined;
}
