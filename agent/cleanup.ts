/**
 * `ssm-proxy-agent cleanup`: remove what earlier runs may have left on the host, so an
 * uninstaller (run after `systemctl stop`) leaves nothing behind. A stop with a state dir keeps
 * the NAT rules and leases on purpose (server.ts), and a crash keeps everything; the tun device
 * needs nothing (the kernel removes it with the process). NAT rules are both the IPv4 table or
 * chains and the NAT66 table. ip_forward and IPv6 forwarding are left alone: no record says what
 * they were before the agent first ran.
 *
 * Idempotent: each removal is one line on stdout ("removed …") and nothing else is printed there,
 * so an uninstaller can relay the lines as they are; nothing there is no output and exit 0.
 * Problems go to stderr (exit 1). Refuses while a live agent's status file says it is serving,
 * since pulling its NAT rules would cut every tunnel.
 */
import { UserError } from "../src/errors.ts";
import { removeLeftoverNat } from "./nat.ts";
import { DEFAULT_RUNTIME_DIR, readStatus, STATUS_FILE } from "./status.ts";

/** systemd's StateDirectory=ssm-proxy, where leases live when the config does not say. */
export const DEFAULT_STATE_DIR = "/var/lib/ssm-proxy";

export interface CleanupOptions {
  stateDir: string;
  runtimeDir: string;
  /** Clean up even though a live agent claims to be serving. */
  force?: boolean;
  out: (line: string) => void;
}

/** Returns the problems (empty: everything there was got removed). */
export async function cleanup(o: CleanupOptions): Promise<string[]> {
  const st = await readStatus(o.runtimeDir);
  if (st.state === "running" && !o.force) {
    throw new UserError(
      `an agent is running (pid ${st.status.pid}): stop it first ` +
        "(systemctl stop ssm-proxy-agent), or pass --force",
    );
  }
  const removed = (what: string) => o.out(`removed ${what}`);
  const nat = await removeLeftoverNat();
  nat.removed.forEach(removed);
  const problems = [...nat.problems];

  const files = async (dir: string, match: (name: string) => boolean, dropDir: boolean) => {
    try {
      for await (const e of Deno.readDir(dir)) {
        if (!e.isFile || !match(e.name)) continue;
        const path = `${dir}/${e.name}`;
        await Deno.remove(path).then(() => removed(path), (err) => {
          if (!(err instanceof Deno.errors.NotFound)) problems.push(`${path}: ${err.message}`);
        });
      }
      // Only systemd's own directories go too; a configured one may be the operator's.
      if (dropDir) await Deno.remove(dir).then(() => removed(dir), () => {/* not empty */});
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        problems.push(`${dir}: ${(err as Error).message}`);
      }
    }
  };
  // leases.json and status.json, plus temp files of a write cut short.
  await files(
    o.stateDir,
    (n) => /^leases\.json(\..*tmp)?$/.test(n),
    o.stateDir === DEFAULT_STATE_DIR,
  );
  const status = new RegExp(`^${STATUS_FILE.replace(".", "\\.")}(\\..*tmp)?$`);
  await files(o.runtimeDir, (n) => status.test(n), o.runtimeDir === DEFAULT_RUNTIME_DIR);
  return problems;
}
