/**
 * Tunnels whose process died (crash, kill -9, reboot without /run cleared): undo what they left
 * (routes, DNS) and forget them. Every command that looks at tunnels calls this first.
 */
import { alive, listStates, removeState, type TunnelState } from "./state.ts";

/** The process is gone: remove what it left (routes, DNS) and its state file. */
export async function cleanupStale(s: TunnelState): Promise<boolean> {
  if (alive(s.pid)) return false;
  const { netPlatform } = await import("../net/platform.ts");
  const net = await netPlatform();
  // With the process gone its tun is gone, and the kernel removed the routes with it; delete
  // anyway in case the interface outlived it (idempotent).
  for (const r of s.routes) await net.routes.delete(r, s.interface).catch(() => {});
  // Pins outlive the interface (they go through the real gateway): only we remove them.
  for (const p of s.pins ?? []) await net.routes.deletePin(p).catch(() => {});
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

/**
 * What a tunnel that died before a reboot left outside /run (cleared at boot, with its state):
 * an /etc/resolv.conf pointing at a forwarder that is gone. Restored from the copy it carries;
 * one line when it is, nothing otherwise.
 */
export async function recoverLeftovers(): Promise<void> {
  if (Deno.build.os !== "linux") return;
  const { recoverDns } = await import("../net/linux.ts");
  await recoverDns();
}
