/**
 * The checks of `ssm-proxy doctor` that concern this machine only: privileges, the tun device,
 * DNS set-up. The probe is injectable so every branch is testable on any OS.
 */
import type { Check } from "./doctor.ts";
import {
  FORWARDER_ADDRESS,
  IMPLICIT_NAMESERVER,
  ownerPid,
  parseResolvConf,
} from "../dns/resolv_conf.ts";

export interface LocalProbe {
  os: string;
  /** null on Windows. */
  uid: number | null;
  exists(path: string): boolean;
  /** Whether a file can be created in `dir` (tried, then removed). */
  canCreateIn(dir: string): boolean;
  /** A text file's content (through symlinks), or undefined when it cannot be read. */
  readText(path: string): string | undefined;
}

export function systemProbe(): LocalProbe {
  return {
    os: Deno.build.os,
    uid: Deno.uid(),
    exists(path) {
      try {
        Deno.statSync(path);
        return true;
      } catch {
        return false;
      }
    },
    canCreateIn(dir) {
      const probe = `${dir}/.ssm-proxy-doctor-${Deno.pid}`;
      try {
        Deno.writeFileSync(probe, new Uint8Array(), { createNew: true });
        Deno.removeSync(probe);
        return true;
      } catch {
        return false;
      }
    },
    readText(path) {
      try {
        return Deno.readTextFileSync(path);
      } catch {
        return undefined;
      }
    },
  };
}

/** systemd-resolved is usable when its runtime directory and the system bus both exist. */
const RESOLVED_DIR = "/run/systemd/resolve";
const SYSTEM_BUS = "/run/dbus/system_bus_socket";
const RESOLV_CONF = "/etc/resolv.conf";

/** How --dns-domain works on a Linux machine: systemd-resolved, or the resolv.conf forwarder. */
function linuxDnsCheck(p: LocalProbe): Check {
  if (p.exists(RESOLVED_DIR) && p.exists(SYSTEM_BUS)) {
    return {
      ok: true,
      name: "DNS",
      detail: "systemd-resolved is running: --dns-domain configures it for the tunnel",
    };
  }
  const text = p.readText(RESOLV_CONF) ?? "";
  const owner = ownerPid(text);
  if (owner !== undefined) {
    return {
      ok: false,
      name: "DNS",
      detail: `${RESOLV_CONF} was written by ssm-proxy (pid ${owner}) for a tunnel's ` +
        `--dns-domain: while it runs, no second tunnel can use --dns-domain`,
      fix: "stop that tunnel first, or start the next one without --dns-domain",
    };
  }
  const servers = parseResolvConf(text).nameservers;
  const upstreams = servers.length
    ? servers.join(", ")
    : `${IMPLICIT_NAMESERVER} (${RESOLV_CONF} names none)`;
  return {
    ok: true,
    name: "DNS",
    detail: `no systemd-resolved: --dns-domain points ${RESOLV_CONF} at a forwarder on ` +
      `${FORWARDER_ADDRESS} (restored on stop) that sends other names to ${upstreams}`,
  };
}

export function localChecks(p: LocalProbe = systemProbe()): Check[] {
  const out: Check[] = [];
  if (p.os !== "linux" && p.os !== "darwin") {
    out.push({
      ok: false,
      name: "platform",
      detail: `${p.os}: the tunnel (start) runs on Linux and macOS only`,
      fix: "use forward here, or run start on Linux or macOS",
    });
    return out;
  }
  const root = p.uid === 0;
  out.push(
    root ? { ok: true, name: "privileges", detail: "running as root" } : {
      ok: false,
      name: "privileges",
      detail: `not root (uid ${p.uid}): start creates an interface and routes`,
      fix: "run start (and this check) with sudo; forward needs no root",
    },
  );
  if (p.os === "linux") {
    out.push(
      p.exists("/dev/net/tun")
        ? { ok: true, name: "tun device", detail: "/dev/net/tun present" }
        : {
          ok: false,
          name: "tun device",
          detail: "/dev/net/tun is missing",
          fix:
            "load the tun module (sudo modprobe tun); in a container, pass --device /dev/net/tun",
        },
    );
    out.push(linuxDnsCheck(p));
  } else {
    out.push(
      p.exists("/dev/utun0") || p.exists("/dev")
        ? { ok: true, name: "tun device", detail: "utun interfaces are built into macOS" }
        : { ok: false, name: "tun device", detail: "/dev is missing", fix: "check the system" },
    );
    const dir = "/etc/resolver";
    const writable = p.exists(dir) ? p.canCreateIn(dir) : root;
    out.push(
      writable
        ? {
          ok: true,
          name: "DNS",
          detail: p.exists(dir)
            ? `${dir} is writable (--dns-domain works)`
            : `${dir} will be created by start (--dns-domain works)`,
        }
        : {
          ok: false,
          name: "DNS",
          detail: `${dir} is not writable${p.exists(dir) ? "" : " (and does not exist)"}`,
          fix: "run start with sudo: it writes one file per --dns-domain there",
        },
    );
  }
  return out;
}
