/** Reading and atomically rewriting the kubeconfig file: the I/O half of kubeconfig.ts. */
import { dirname } from "node:path";

export async function readKubeconfig(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return "";
    throw e;
  }
}

/**
 * Temp file + rename, so kubectl never reads half a file; mode 0600 because it names
 * credentials helpers and, for other entries, may hold keys.
 */
export async function writeKubeconfig(path: string, text: string): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const mode = await Deno.stat(path).then((s) => s.mode ?? 0o600).catch(() => 0o600);
  const tmp = `${path}.ssm-proxy.${Deno.pid}.tmp`;
  await Deno.writeTextFile(tmp, text, { mode: mode & 0o777 });
  await Deno.rename(tmp, path);
}

/** Read, edit, write back; edits that change nothing leave the file alone. */
export async function editKubeconfig(path: string, edit: (text: string) => string): Promise<void> {
  const before = await readKubeconfig(path);
  const after = edit(before);
  if (after !== before) await writeKubeconfig(path, after);
}
