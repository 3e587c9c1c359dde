/**
 * Split DNS without systemd-resolved: a forwarder on 127.0.0.153:53 becomes the only nameserver
 * in /etc/resolv.conf; it sends tunnel zones to the tunnel's resolver and the rest to the
 * nameservers the file had; with the root domain "." (full tunnel) it sends every name to the
 * tunnel's resolver and never asks the previous nameservers. The original is backed up in the
 * state dir before anything changes, and put back exactly by revert: from this process (stop,
 * Ctrl-C) or from the next command after a crash (cleanupStale, with the recorded DnsState).
 * After a reboot, which clears the state dir, from the copy inside our file (restore.ts).
 */
import { UserError } from "../errors.ts";
import { coversAll } from "../net/domain.ts";
import type { Dns, DnsConfig, DnsState } from "../net/types.ts";
import { alive } from "../tunnel/state.ts";
import { type Backup, readBackup, saveBackup } from "./backup.ts";
import {
  backupFile,
  bootId,
  defaultLog,
  legacyBackupFile,
  recoverResolvConf,
  undoBackup,
} from "./restore.ts";
import { DnsForwarder } from "./forwarder.ts";
import {
  FORWARDER_ADDRESS,
  IMPLICIT_NAMESERVER,
  ownerPid,
  parseResolvConf,
  renderResolvConf,
} from "./resolv_conf.ts";
import {
  actingPath,
  isMountPoint,
  type Original,
  readThrough,
  replaceFile,
  restore,
  rewriteInPlace,
  snapshot,
} from "./resolv_file.ts";

export { backupFile, FORWARDER_ADDRESS, recoverResolvConf };

export interface ResolvConfDnsOptions {
  /** The resolv.conf to manage (tests use a temp file). */
  path: string;
  /** Where the backup goes (the tunnel state dir). */
  stateDir: string;
  /** Listen address of the forwarder. */
  address?: string;
  /** Deadline per server and query. */
  timeoutMs?: number;
  log?: (line: string) => void;
}

/** Forwarders this process runs, by backup file: revert closes the one it finds. */
const running = new Map<string, DnsForwarder>();

const IN_PLACE_NOTE = "Rewritten in place, not replaced: this file is a mount point here (a\n" +
  "bind mount, as Docker and ip netns exec make), which cannot be renamed over.";

export function resolvConfDns(o: ResolvConfDnsOptions): Dns {
  const address = o.address ?? FORWARDER_ADDRESS;
  const log = o.log ?? defaultLog;
  const backupPath = backupFile(o.stateDir, o.path);

  /** Close this process's forwarder for the backup, then put the original back. */
  async function undo(file: string): Promise<void> {
    const fwd = running.get(file);
    running.delete(file);
    await fwd?.close();
    await undoBackup(file, log);
  }

  /**
   * A backup left by a process that is gone is undone first; one held by a live one refuses.
   * Then our file left without a backup (a reboot cleared the state dir) is put back from the
   * copy inside it.
   */
  async function takeOver(): Promise<void> {
    for (const file of [backupPath, legacyBackupFile(o.stateDir, o.path)]) {
      const b = await readBackup(file);
      if (!b) continue;
      if (b.pid === Deno.pid || alive(b.pid)) {
        throw new UserError(
          `${o.path} already sends DNS to ssm-proxy's forwarder for another tunnel (pid ` +
            `${b.pid}): only one tunnel at a time can use --dns-domain here; stop that tunnel ` +
            `first, or start this one without --dns-domain`,
        );
      }
      await undo(file);
    }
    await recoverResolvConf({ path: o.path, stateDir: o.stateDir, log, quietNoCopy: true });
  }

  return {
    async apply(cfg: DnsConfig): Promise<DnsState> {
      await Deno.mkdir(o.stateDir, { recursive: true, mode: 0o755 });
      await takeOver();
      const path = await actingPath(o.path);
      const original = await snapshot(path);
      const text = new TextDecoder().decode(await readThrough(path));
      const owner = ownerPid(text);
      if (owner !== undefined) {
        throw new UserError(
          `${o.path} was written by ssm-proxy (pid ${owner}) and the backup of the original is ` +
            `gone: put back the nameserver lines listed in its comments, then start again`,
        );
      }
      const previous = parseResolvConf(text);
      const boot = bootId();
      // A full tunnel has no upstreams at all, so not even a bug in zone matching could send a
      // name past the tunnel: a VPC resolver that fails gives SERVFAIL, never a fallback.
      const upstreams = coversAll(cfg.domains)
        ? []
        : previous.nameservers.length
        ? previous.nameservers
        : [IMPLICIT_NAMESERVER];

      let forwarder: DnsForwarder;
      try {
        forwarder = await DnsForwarder.start({
          address,
          zones: cfg.domains,
          zoneServers: [{ host: cfg.server, port: 53 }],
          upstreams: upstreams.map((host) => ({ host, port: 53 })),
          timeoutMs: o.timeoutMs,
        });
      } catch (e) {
        throw new UserError(
          `DNS through the tunnel needs a local DNS forwarder on ${address}:53, which cannot ` +
            `listen (${(e as Error).message}): free that address, or run without --dns-domain`,
        );
      }

      const render = (inPlace: boolean) =>
        new TextEncoder().encode(renderResolvConf({
          previous,
          forwarder: address,
          domains: cfg.domains,
          server: cfg.server,
          pid: Deno.pid,
          backup: backupPath,
          embedded: { original, bootId: boot },
          note: inPlace ? IN_PLACE_NOTE : undefined,
        }));
      const mounted = isMountPoint(path);
      const b: Backup = {
        path,
        pid: Deno.pid,
        original,
        written: render(mounted),
        inPlace: mounted,
      };
      try {
        try {
          await saveBackup(backupPath, b, true);
        } catch (e) {
          if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
          await takeOver(); // another start won a race: refuses
          throw new UserError(
            `${backupPath} is in the way and is not a backup ssm-proxy can read: look at it, ` +
              `remove it, and start again`,
          );
        }
        try {
          if (mounted) await rewriteInPlace(path, b.written);
          else if ((await replaceFile(path, b.written, fileMode(original))) === "in-place") {
            // EBUSY with no mountinfo entry to predict it: recorded so restore writes in place
            // too (it would also fall back by itself).
            b.inPlace = true;
            await saveBackup(backupPath, b, false);
          }
        } catch (e) {
          await restore(path, original, b.inPlace).catch(() => {});
          await Deno.remove(backupPath).catch(() => {});
          throw e;
        }
      } catch (e) {
        await forwarder.close();
        if (e instanceof UserError) throw e;
        throw new UserError(
          `cannot replace ${o.path} (${(e as Error).message}); it was left as it was`,
        );
      }
      running.set(backupPath, forwarder);
      return { kind: "resolv-conf", items: [backupPath] };
    },

    async revert(state: DnsState): Promise<void> {
      if (state.kind !== "resolv-conf") return;
      for (const file of state.items) await undo(file);
    },
  };
}

function fileMode(o: Original): number {
  return o.kind === "file" ? o.mode : 0o644;
}

/** The forwarder this process runs for a DnsState, if any (for status and tests). */
export function forwarderFor(state: DnsState): DnsForwarder | undefined {
  return state.kind === "resolv-conf" ? running.get(state.items[0]) : undefined;
}
