/**
 * Team entries in SSM Parameter Store: `<root>/tunnels/NAME` and `<root>/clusters/NAME`, each a
 * JSON object with the keys of the YAML entry (no name: the parameter names it) plus `kind` and
 * `version`. Decoding runs the config file's own validation, with the parameter name as the place.
 */
import { Document, type Node, type YAMLSeq } from "yaml";
import { type ClusterEntry, ConfigError, parseClusterSeq } from "./clusters.ts";
import { ConfigWalker, parseTunnelEntry, type TunnelProfile, tunnelToEntry } from "./tunnels.ts";
import { validName } from "../tunnel/state.ts";
import type { AwsOptions } from "../aws/config.ts";
import type { Parameter } from "../aws/parameters.ts";

export const DEFAULT_TEAM_PATH = "/ssm-proxy";
export type EntryKind = "tunnel" | "cluster";
const FORMAT_VERSION = 1;

/** `--path` checked and without a trailing slash. */
export function teamRoot(path: string | undefined): string {
  const p = (path ?? DEFAULT_TEAM_PATH).replace(/\/+$/, "");
  if (!/^(\/[A-Za-z0-9_.-]+)+$/.test(p)) {
    throw new ConfigError(
      `--path ${
        JSON.stringify(path)
      } is not a Parameter Store path like /ssm-proxy or /team/ssm-proxy`,
    );
  }
  return p;
}

export function parameterName(root: string, kind: EntryKind, name: string): string {
  return `${root}/${kind}s/${name}`;
}

export function encodeTunnel(p: TunnelProfile): string {
  return JSON.stringify({ kind: "tunnel", version: FORMAT_VERSION, ...tunnelToEntry(p) });
}

export function encodeCluster(c: ClusterEntry): string {
  const { name: _, ...rest } = c;
  return JSON.stringify({ kind: "cluster", version: FORMAT_VERSION, ...rest });
}

/** The JSON object of a parameter, without `kind` and `version` (checked here). */
function entryObject(value: string, param: string, kind: EntryKind): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(value);
  } catch (e) {
    throw new ConfigError(`${param}: not JSON: ${(e as Error).message.split("\n")[0]}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new ConfigError(`${param}: expected a JSON object like {"target": "name:bastion"}`);
  }
  const { kind: k, version, ...rest } = v as Record<string, unknown>;
  if (k !== undefined && k !== kind) {
    throw new ConfigError(`${param}: holds a ${JSON.stringify(k)} entry, not a ${kind}`);
  }
  if (version !== undefined && version !== FORMAT_VERSION) {
    throw new ConfigError(
      `${param}: format version ${JSON.stringify(version)} is not ${FORMAT_VERSION}: ` +
        "it was written by a newer ssm-proxy; upgrade this one",
    );
  }
  return rest;
}

export function decodeTunnel(value: string, param: string, name: string): TunnelProfile {
  if (!validName(name)) {
    throw new ConfigError(
      `${param}: "${name}" is not a tunnel name (1 to 32 of a-z, 0-9, - and _)`,
    );
  }
  const obj = entryObject(value, param, "tunnel");
  const doc = new Document(obj);
  return parseTunnelEntry(new ConfigWalker(param), doc.contents as Node, name, `tunnels.${name}`);
}

export function decodeCluster(value: string, param: string, name: string): ClusterEntry {
  const obj = entryObject(value, param, "cluster");
  const doc = new Document([{ ...obj, name }]);
  return parseClusterSeq(doc.contents as YAMLSeq, param, () => "")[0];
}

export interface TeamEntries {
  root: string;
  tunnels: { profile: TunnelProfile; where: string }[];
  clusters: { entry: ClusterEntry; where: string }[];
  /** One line per parameter that could not be used, naming it. */
  problems: string[];
}

/** Sorts the parameters under `root` into entries; bad ones become problems, not failures. */
export function decodeTeam(root: string, params: Parameter[]): TeamEntries {
  const out: TeamEntries = { root, tunnels: [], clusters: [], problems: [] };
  const sorted = [...params].sort((a, b) => a.name.localeCompare(b.name));
  for (const p of sorted) {
    const m = /^(tunnels|clusters)\/([^/]+)$/.exec(p.name.slice(root.length + 1));
    if (!p.name.startsWith(`${root}/`) || !m) {
      out.problems.push(`${p.name}: not ${root}/tunnels/NAME or ${root}/clusters/NAME: ignored`);
      continue;
    }
    try {
      if (m[1] === "tunnels") {
        out.tunnels.push({ profile: decodeTunnel(p.value, p.name, m[2]), where: p.name });
      } else {
        out.clusters.push({ entry: decodeCluster(p.value, p.name, m[2]), where: p.name });
      }
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      out.problems.push(e.message);
    }
  }
  return out;
}

/** Every team entry under `root` (ssm:GetParametersByPath). */
export async function fetchTeam(aws: AwsOptions, root: string): Promise<TeamEntries> {
  const { getParametersByPath } = await import("../aws/parameters.ts");
  return decodeTeam(root, await getParametersByPath(aws, root));
}

/** One team tunnel (ssm:GetParameter); undefined when there is no such parameter. */
export async function fetchTeamTunnel(
  aws: AwsOptions,
  root: string,
  name: string,
): Promise<{ profile: TunnelProfile; where: string } | undefined> {
  const { getParameter } = await import("../aws/parameters.ts");
  const param = parameterName(root, "tunnel", name);
  const p = await getParameter(aws, param);
  return p ? { profile: decodeTunnel(p.value, param, name), where: param } : undefined;
}
