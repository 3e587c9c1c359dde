/**
 * ssm-proxy's config file as a whole: `tunnels:` and `clusters:`. Parsing is pure; reading
 * knows where the file lives (load.ts configPath) and what a missing file means.
 */
import { isMap, isScalar, isSeq, parseDocument } from "yaml";
import type { Node } from "yaml";
import { type ClusterEntry, ConfigError, parseClusterSeq } from "./clusters.ts";
import { configPath } from "./load.ts";
import { ConfigWalker, type LocatedTunnel, parseTunnelMap } from "./tunnels.ts";

/** The top-level keys a config may have today. */
export const CONFIG_KEYS = ["tunnels", "clusters"];

export interface ParsedConfig {
  tunnels: LocatedTunnel[];
  clusters: ClusterEntry[];
}

export interface LocalConfig extends ParsedConfig {
  path: string;
  /** false: no file there (yet); the config is empty. */
  exists: boolean;
  /** The file's text ("" when absent), for editing it in place. */
  text: string;
}

type Env = Record<string, string | undefined>;

/**
 * `strict`: an unknown top-level key is an error (`config check`); otherwise it is left alone,
 * as `eks` has always done, so that a newer config does not break an older command.
 */
export function parseConfig(text: string, file: string, strict = false): ParsedConfig {
  const w: ConfigWalker = new ConfigWalker(file);
  const doc = parseDocument(text, { lineCounter: w.counter });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    throw new ConfigError(`${file}:${e.linePos?.[0].line ?? 0}: ${e.message.split("\n")[0]}`);
  }
  const root = doc.contents as Node | null;
  if (root === null || (isScalar(root) && root.value === null)) {
    return { tunnels: [], clusters: [] };
  }
  if (!isMap(root)) w.fail(root, "", "expected a mapping (tunnels:, clusters:)");
  const get = (k: string) => {
    const n = root.get(k, true) as Node | undefined;
    return n === undefined || (isScalar(n) && n.value === null) ? undefined : n;
  };
  if (strict) w.map(root, "", CONFIG_KEYS);

  const tunnelsNode = get("tunnels");
  const tunnels = tunnelsNode ? parseTunnelMap(w, tunnelsNode) : [];
  const clustersNode = get("clusters");
  let clusters: ClusterEntry[] = [];
  if (clustersNode) {
    if (!isSeq(clustersNode)) w.fail(clustersNode, "clusters", "expected a list");
    clusters = parseClusterSeq(clustersNode, file, (n) => {
      const line = w.lineOf(n ?? undefined);
      return line ? `:${line}` : "";
    });
  }
  return { tunnels, clusters };
}

/**
 * The config file and its contents. A missing file is an empty config unless the user named it
 * (`--config`, `$SSM_PROXY_CONFIG`). Undefined when there is no file to speak of (no HOME).
 */
export async function readConfig(
  configFile: string | undefined,
  opts: { strict?: boolean; env?: Env; mayBeAbsent?: boolean } = {},
): Promise<LocalConfig | undefined> {
  const where = configPath(configFile, opts.env);
  if (!where) return undefined;
  let text: string;
  try {
    text = await Deno.readTextFile(where.path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound && (!where.explicit || opts.mayBeAbsent)) {
      return { path: where.path, exists: false, text: "", tunnels: [], clusters: [] };
    }
    throw new ConfigError(`${where.path}: cannot read: ${(e as Error).message.split("\n")[0]}`);
  }
  return { path: where.path, exists: true, text, ...parseConfig(text, where.path, opts.strict) };
}
