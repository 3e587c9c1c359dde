/** `ssm-proxy stop`: signal the tunnel's process and wait for it to undo its changes. */
import { ExitCode, UserError } from "../errors.ts";
import { alive, listStates, readState, type TunnelState } from "../tunnel/state.ts";
import { cleanupStale, recoverLeftovers } from "../tunnel/stale.ts";
import { requireRoot } from "./privileges.ts";

export async function runStop(name: string | undefined, o: { all?: boolean }): Promise<void> {
  requireRoot("ssm-proxy stop");
  await recoverLeftovers();
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
