/**
 * The names under `tunnels:` in the local config, for shell completion: kept apart from the
 * lookup (find.ts), whose team fallback would put the AWS SDK in completion's module graph.
 */
import { isMap, isScalar, parseDocument } from "yaml";
import { validName } from "../tunnel/state.ts";
import { configPath } from "./load.ts";

/**
 * The names under `tunnels:` in the local config, for shell completion: no AWS, no full
 * validation, and never an error (a broken or missing config completes nothing).
 */
export async function listTunnelNames(
  o: { configFile?: string },
  env?: Record<string, string | undefined>,
): Promise<string[]> {
  try {
    const where = configPath(o.configFile, env);
    if (!where) return [];
    const doc = parseDocument(await Deno.readTextFile(where.path));
    const tunnels = isMap(doc.contents) ? doc.contents.get("tunnels", true) : undefined;
    if (!isMap(tunnels)) return [];
    return tunnels.items
      .map((p) => (isScalar(p.key) ? String(p.key.value) : ""))
      .filter(validName);
  } catch {
    return [];
  }
}
