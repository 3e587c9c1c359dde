/**
 * Where the clusters come from. One source wins, in this order: `--clusters FILE`; the
 * `clusters:` of ssm-proxy's config (`--config`, `$SSM_PROXY_CONFIG`,
 * `~/.config/ssm-proxy/config.yaml`); a `clusters.yaml` in the working directory; one beside
 * the binary (where kube-ssm-proxy users kept it).
 */
import { dirname, join } from "node:path";
import { type ClusterEntry, ConfigError, parseClusters } from "./clusters.ts";

export interface ClusterSources {
  /** `--clusters FILE` */
  clustersFile?: string;
  /** `--config FILE` */
  configFile?: string;
}

type Env = Record<string, string | undefined>;

/**
 * ssm-proxy's config file: `--config FILE`, else `$SSM_PROXY_CONFIG`, else
 * `$XDG_CONFIG_HOME/ssm-proxy/config.yaml` (`~/.config` by default). `explicit`: the user named
 * it, so its absence is an error rather than "no config". Undefined without HOME.
 */
export function configPath(
  configFile: string | undefined,
  env: Env = Deno.env.toObject(),
): { path: string; explicit: boolean } | undefined {
  const named = configFile || env.SSM_PROXY_CONFIG;
  if (named) return { path: named, explicit: true };
  if (!env.HOME && !env.XDG_CONFIG_HOME) return undefined;
  const base = env.XDG_CONFIG_HOME || join(env.HOME!, ".config");
  return { path: join(base, "ssm-proxy", "config.yaml"), explicit: false };
}

/** Candidate files in order; `explicit` ones must exist. */
export function clusterCandidates(
  o: ClusterSources,
  env: Env = Deno.env.toObject(),
  cwd = Deno.cwd(),
  execPath = Deno.execPath(),
): { path: string; explicit: boolean; inConfig: boolean }[] {
  if (o.clustersFile) return [{ path: o.clustersFile, explicit: true, inConfig: false }];
  const out = [];
  const config = configPath(o.configFile, env);
  if (config) out.push({ ...config, inConfig: true });
  out.push({ path: join(cwd, "clusters.yaml"), explicit: false, inConfig: false });
  // Beside the binary only for a compiled ssm-proxy: beside `deno` means nothing.
  if (!/\/deno(\.exe)?$/.test(execPath)) {
    out.push({ path: join(dirname(execPath), "clusters.yaml"), explicit: false, inConfig: false });
  }
  return out;
}

export async function loadClusters(
  o: ClusterSources,
  env?: Env,
): Promise<{ file: string; clusters: ClusterEntry[] }> {
  const tried: string[] = [];
  for (const c of clusterCandidates(o, env)) {
    let text: string;
    try {
      text = await Deno.readTextFile(c.path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound && !c.explicit) {
        tried.push(c.path);
        continue;
      }
      throw new ConfigError(`${c.path}: cannot read: ${(e as Error).message.split("\n")[0]}`);
    }
    const clusters = parseClusters(text, c.path, !c.inConfig);
    if (clusters.length === 0 && c.inConfig && !c.explicit) {
      tried.push(`${c.path} (no clusters:)`);
      continue;
    }
    return { file: c.path, clusters };
  }
  throw new ConfigError(
    `no clusters configured: looked in ${tried.join(", ")}; pass --clusters FILE or add ` +
      `"clusters:" to ssm-proxy's config.yaml`,
  );
}
