/**
 * Whether the agent carries IPv6, and setting it up: the tun's pool6 address, IPv6 forwarding
 * and NAT66. `decideIpv6` is pure; `startIpv6` does the I/O and returns its undo steps.
 *
 * `ipv6: auto` turns on only when it can work unattended: NAT66 through nft, out of an uplink that
 * has a global IPv6 address. Otherwise it stays off, and the reason is what clients asking for
 * IPv6 are told (Welcome.ipv6Off). `ipv6: on` insists: what cannot be done is an error at start.
 */
import { UserError } from "../src/errors.ts";
import type { Tun } from "../src/net/types.ts";
import { formatCidr6, formatIpv6, Pool6 } from "./cidr6.ts";
import type { AgentConfig, Ipv6Mode } from "./config.ts";
import { enableIpv6Forwarding } from "./forwarding.ts";
import { dropStaleNat6, installNat6 } from "./nat.ts";
import { detectGlobalIpv6, hasIpv6Stack } from "./sysinfo.ts";
import type { Ipv6State } from "./tunnels.ts";

export interface Ipv6Facts {
  mode: Ipv6Mode;
  /** The config file, for the reason when it says off. */
  file?: string;
  /** The NAT backend in use. */
  nat: "nft" | "iptables" | "off";
  uplink?: string;
  /** Has the host an IPv6 stack at all? */
  stack: boolean;
  /** The uplink's global-scope IPv6 addresses; undefined: not checked (tests). */
  global?: string[];
  /** pool6 as text, for messages. */
  pool6: string;
}

export type Ipv6Plan =
  | { on: true; nat66: boolean; warning?: string }
  | { on: false; reason: string };

/** What to do about IPv6; throws a UserError when `ipv6: on` cannot be honoured. */
export function decideIpv6(f: Ipv6Facts): Ipv6Plan {
  const on = f.mode === "on";
  if (f.mode === "off") {
    return { on: false, reason: `ipv6: off in ${f.file ?? "the agent's config"}` };
  }
  if (!f.stack) {
    if (on) {
      throw new UserError(
        "ipv6: on, but this host has IPv6 disabled (booted with ipv6.disable=1?): " +
          "enable it, or set ipv6: off",
      );
    }
    return { on: false, reason: "IPv6 is disabled on the instance" };
  }
  if (f.nat === "iptables") {
    if (on) {
      throw new UserError(
        "ipv6: on needs nft for NAT66, but the agent NATs with iptables: install nftables, " +
          "or set ipv6: off",
      );
    }
    return { on: false, reason: "the agent NATs with iptables, and NAT66 needs nft" };
  }
  if (f.nat === "off") {
    if (on) return { on: true, nat66: false };
    return {
      on: false,
      reason: `the agent does not NAT (nat: off); set ipv6: on to route ${f.pool6} yourself`,
    };
  }
  const uplink = f.uplink ?? "the uplink";
  if (f.global?.length === 0) {
    if (!on) return { on: false, reason: `the instance has no IPv6 address on ${uplink}` };
    return {
      on: true,
      nat66: true,
      warning: `ipv6: on, but ${uplink} has no global IPv6 address: tunnels' IPv6 has no way out`,
    };
  }
  return { on: true, nat66: true };
}

export interface Ipv6Setup {
  cfg: AgentConfig;
  tun: Tun;
  uplink?: string;
  nat: Ipv6Facts["nat"];
  manageSysctls: boolean;
  /** Default: rtnetlink (tun6.ts). Tests with a fake tun pass their own, and skip host checks. */
  addTunAddress6?: (tun: Tun, address: Uint8Array, prefixLength: number) => Promise<void>;
  log: (line: string) => void;
}

export interface Ipv6Started {
  state: Ipv6State;
  /** In the order done; run them in reverse. */
  undo: (() => Promise<void>)[];
  /** For the agent's "listening on" line. */
  summary: string;
}

export async function startIpv6(s: Ipv6Setup): Promise<Ipv6Started> {
  const { cfg, tun, uplink } = s;
  const checkHost = cfg.ipv6 !== "off" && s.addTunAddress6 === undefined;
  const plan = decideIpv6({
    mode: cfg.ipv6,
    file: cfg.file,
    nat: s.nat,
    uplink,
    stack: checkHost ? await hasIpv6Stack() : true,
    global: !checkHost ? undefined : uplink ? await detectGlobalIpv6(uplink) : [],
    pool6: formatCidr6(cfg.pool6),
  });
  const off = async (reason: string): Promise<Ipv6Started> => {
    if (s.nat === "nft") await dropStaleNat6();
    return { state: { off: reason }, undo: [], summary: `IPv6 off (${reason})` };
  };
  if (!plan.on) return off(plan.reason);
  if (plan.warning) s.log(plan.warning);

  const pool6 = new Pool6(cfg.pool6, cfg.pool);
  const address = formatIpv6(pool6.agentAddress);
  const undo: (() => Promise<void>)[] = [];
  const step = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (e) {
      if (e instanceof UserError) throw e;
      throw new UserError(`${what}: ${(e as Error).message}`);
    }
  };
  try {
    const add = s.addTunAddress6 ??
      (async (t: Tun, a: Uint8Array, len: number) =>
        (await import("./tun6.ts")).addTunAddress6(t, a, len));
    await step(
      `cannot give ${tun.name} its IPv6 address ${address}`,
      () => add(tun, pool6.agentAddress, cfg.pool6.prefix),
    );
    if (s.manageSysctls) {
      const fwd = await step("cannot enable IPv6 forwarding", () => enableIpv6Forwarding(uplink));
      undo.push(() => fwd.restore());
    }
    if (plan.nat66) {
      const nat = await installNat6({
        pool6: cfg.pool6,
        tun: tun.name,
        uplink: uplink!,
        mtu: cfg.mtu,
      });
      undo.push(async () => {
        // Kept with the IPv4 rules when leases persist (server.ts says why).
        if (cfg.stateDir) return;
        const problem = await nat.remove();
        if (problem) s.log(problem);
      });
    }
  } catch (e) {
    for (const u of undo.reverse()) await u().catch(() => {});
    if (cfg.ipv6 === "on") throw e;
    const reason = `IPv6 setup failed: ${(e as Error).message}`;
    s.log(reason);
    return off(reason);
  }
  return {
    state: { pool6 },
    undo,
    summary: `IPv6 ${address}/${cfg.pool6.prefix}` + (plan.nat66 ? " NAT66" : ""),
  };
}
