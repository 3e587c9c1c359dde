/**
 * `ssm-proxy __complete <kind>`: the names a completion script cannot know in advance, one a
 * line. Runs on every TAB, so it loads no AWS SDK and never prints an error: a missing or broken
 * config simply yields nothing.
 */
import { listTunnelNames } from "../../config/names.ts";
import { loadClusters } from "../../config/load.ts";
import { listStates } from "../../tunnel/state.ts";
import { DYNAMIC_KINDS, type DynamicKind } from "./tree.ts";

type Env = Record<string, string | undefined>;

export async function completeValues(
  kind: DynamicKind,
  env: Env = Deno.env.toObject(),
): Promise<string[]> {
  switch (kind) {
    case "tunnels":
      return await listTunnelNames({}, env);
    case "clusters":
      return (await loadClusters({}, env)).clusters.map((c) => c.name);
    case "running":
      // Stale states too: `stop` accepts them and cleans up after the crashed run.
      return (await listStates()).map((s) => s.name);
  }
}

/** The action of `__complete`: values or nothing, exit 0 either way. */
export async function runComplete(kind: string | undefined): Promise<void> {
  if (!DYNAMIC_KINDS.includes(kind as DynamicKind)) return;
  let values: string[] = [];
  try {
    values = await completeValues(kind as DynamicKind);
  } catch {
    return; // a TAB must never print an error: no config, bad YAML, unreadable state dir
  }
  // Names with whitespace would split into several words in every shell: leave them out.
  const safe = values.filter((v) => v && !/\s/.test(v));
  if (safe.length) console.log(safe.join("\n"));
}
