/** `ssm-proxy stop`: signal the tunnel's process and wait for it to undo its changes. */
import { ExitCode, UserError } from "../errors.ts";
import { alive, listStates, readState, removeState, type TunnelState } from "../tunnel/state.ts";
import { requireRoot } from "./privileges.ts";

/** The process is gone: remove what it left (routes, DNS) and its state file. */
export async function cleanupStale(s: TunnelState): Promise<boolean> {
  if (alive(s.pid)) return false;
  const { netPlatform } = await import("../net/platform.ts");
  const net = await netPlatform();
  // With the process gone its tun is gone, and the kernel removed the routes with it; delete
  // anyway in case the interface outlived it (idempotent).
  for (const r of s.routes) await net.routes.delete(r, s.interface).catch(() => {});
  await net.dns.revert(s.dns).catch(() => {});
  await removeState(s.name);
  console.error(
    `ssm-proxy: cleaned up tunnel "${s.name}" left by a process that no longer runs (pid ${s.pid})`,
  );
  return true;
}

/** States of tunnels whose process still runs; stale ones are cleaned up on the way. */
export async function liveStates(): Promise<TunnelState[]> {
  const out: TunnelState[] = [];
  for (const s of await listStates()) if (!(await cleanupStale(s))) out.push(s);
  return out;
}

export async function runStop(name: string | undefined, o: { all?: boolean }): Promise<void> {
  requireRoot("ssm-proxy stop");
  const states = await listStates();
  let targets: TunnelState[];
  if (o.all) targets = states;
  else if (name) {
    const s = await readState(name);
    if (!s) {
      throw new UserError(
        `no tunnel named "${name}" is running${
          states.length ? ` (running: ${states.map((x) => x.name).join(", ")})` : ""
        }`,
        ExitCode.Usage,
      );
    }
    targets = [s];
  } else if (states.length === 1) targets = states;
  else if (states.length === 0) {
    console.log("ssm-proxy: no tunnel is running");
    return;
  } else {
    throw new UserError(
      `several tunnels are running (${
        states.map((x) => x.name).join(", ")
      }): name one, or use --all`,
      ExitCode.Usage,
    );
  }
  for (const s of targets) await stopOne(s);
}

async function stopOne(s: TunnelState): Promise<void> {
  if (await cleanupStale(s)) return;
  Deno.kill(s.pid, "SIGTERM");
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    if (!alive(s.pid)) break;
  }
  if (alive(s.pid)) {
    Deno.kill(s.pid, "SIGKILL");
    await new Promise((r) => setTimeout(r, 200));
  }
  const left = await readState(s.name);
  if (left) await cleanupStale(left);
  console.log(`ssm-proxy: tunnel "${s.name}" stopped`);
}
