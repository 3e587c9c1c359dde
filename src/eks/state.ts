/**
 * State files of running EKS port-forwards: one small JSON per cluster entry in the user's
 * state dir (no root involved), so `disconnect`, the picker's ● and a second `connect` can find
 * a forward started by another process.
 */
import { join } from "node:path";
import { alive } from "../tunnel/state.ts";

export interface ForwardState {
  name: string;
  pid: number;
  port: number;
  instanceId: string;
  sessionId: string;
  cluster_name: string;
  region: string;
  startedAt: string;
}

export function eksStateDir(env = Deno.env.toObject()): string {
  if (env.SSM_PROXY_EKS_STATE_DIR) return env.SSM_PROXY_EKS_STATE_DIR;
  const base = env.XDG_STATE_HOME || join(env.HOME ?? "/tmp", ".local", "state");
  return join(base, "ssm-proxy", "eks");
}

function file(name: string): string {
  // Entry names are free text in clusters.yaml: keep the file name safe.
  return join(eksStateDir(), `${encodeURIComponent(name)}.json`);
}

export async function writeForwardState(s: ForwardState): Promise<void> {
  await Deno.mkdir(eksStateDir(), { recursive: true, mode: 0o700 });
  const tmp = `${file(s.name)}.${s.pid}.tmp`;
  await Deno.writeTextFile(tmp, JSON.stringify(s, null, 2) + "\n", { mode: 0o600 });
  await Deno.rename(tmp, file(s.name));
}

export async function removeForwardState(name: string, pid?: number): Promise<void> {
  // Only our own: a newer forward for the same entry may have replaced the file.
  if (pid !== undefined) {
    const cur = await readForwardState(name, false);
    if (cur && cur.pid !== pid) return;
  }
  await Deno.remove(file(name)).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
}

/** The live forward of an entry; a stale file (its process gone) is removed on the way. */
export async function readForwardState(
  name: string,
  cleanStale = true,
): Promise<ForwardState | undefined> {
  let s: ForwardState;
  try {
    s = JSON.parse(await Deno.readTextFile(file(name)));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof SyntaxError) return undefined;
    throw e;
  }
  if (cleanStale && !alive(s.pid)) {
    await Deno.remove(file(name)).catch(() => {});
    return undefined;
  }
  return s;
}

export async function listForwardStates(): Promise<ForwardState[]> {
  const out: ForwardState[] = [];
  try {
    for await (const e of Deno.readDir(eksStateDir())) {
      if (!e.isFile || !e.name.endsWith(".json")) continue;
      const s = await readForwardState(decodeURIComponent(e.name.slice(0, -5)));
      if (s) out.push(s);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}
