/**
 * The agent as a whole: listener, tun, forwarding/NAT, the tun read loop, lease sweeping, and a
 * close() that undoes all of it in reverse order. Usable in-process (tests, demo) or from main.ts.
 */
import { UserError } from "../src/errors.ts";
import { VERSION } from "../src/version.ts";
import { keepMemoryTrimmed } from "../src/runtime.ts";
import type { Tun, TunConfig } from "../src/net/types.ts";
import { type AgentConfig, IFNAME } from "./config.ts";
import { formatCidr, formatIpv4 } from "./cidr.ts";
import { formatCidr6, formatIpv6 } from "./cidr6.ts";
import { type ConnContext, serveConnection } from "./connection.ts";
import { fromTun } from "./dispatch.ts";
import { enableForwarding } from "./forwarding.ts";
import { type Ipv6Setup, startIpv6 } from "./ipv6.ts";
import { installNat } from "./nat.ts";
import type { PacketAudit } from "./audit.ts";
import { filePolicy, identityMatters, startAccess } from "./access.ts";
import type { LoadParameters } from "./policy_source.ts";
import { IdentityVerifier, type StsCall } from "./identity.ts";
import { stsCall, stsRouting } from "./identity_sts.ts";
import { LeaseFile } from "./leases.ts";
import { AddressPool } from "./pool.ts";
import { DEFAULT_LIMITS, type QueueLimits } from "./sendqueue.ts";
import { type AgentStats, newStats } from "./stats.ts";
import { IdleStop } from "./idle.ts";
import { processStartTime, StatusFile, tunnelStatus } from "./status.ts";
import type { StripeConn } from "./stripe.ts";
import { detectResolver, detectUplink } from "./sysinfo.ts";
import { Registry } from "./tunnels.ts";

export interface AgentOptions {
  config: AgentConfig;
  /** Default: the platform's tun (src/net/platform.ts). Tests pass a fake. */
  openTun?: (cfg: TunConfig) => Promise<Tun>;
  /** Turn on /proc/sys ip_forward (and IPv6 forwarding), restoring them on close (default true). */
  manageSysctls?: boolean;
  /** Give the tun its IPv6 address (default: rtnetlink). Tests with a fake tun pass their own. */
  addTunAddress6?: Ipv6Setup["addTunAddress6"];
  log?: (line: string) => void;
  /** Clock for leases (ms). */
  now?: () => number;
  limits?: QueueLimits;
  helloTimeoutMs?: number;
  /** Where STS's endpoint overrides come from (AWS_ENDPOINT_URL_STS…); default Deno.env. */
  env?: Record<string, string | undefined>;
  /** Checks identity proofs; default: executeProof as stsEndpoint and `env` say (tests wrap it). */
  sts?: StsCall;
  /** Told about every packet (instead of cfg.audit's file or journal). */
  audit?: PacketAudit;
  /** Parameter Store's read for policyParameterPath (default: the SDK, instance credentials). */
  loadParameters?: LoadParameters;
}

export interface Agent {
  /** Where stripes connect (the real port when the config said 0). */
  readonly addr: Deno.NetAddr;
  readonly tunName: string;
  readonly address: string;
  /** The tun's IPv6 address; undefined while IPv6 is off (registry.ipv6 says why). */
  readonly address6?: string;
  readonly nat: "nft" | "iptables" | "off";
  readonly stats: AgentStats;
  readonly registry: Registry;
  /** Present when the config turns idle stop on. */
  readonly idleStop?: IdleStop;
  /** Path of status.json; undefined when the config has no runtimeDir. */
  readonly statusFile?: string;
  /** Settles when the agent fails on its own (the tun broke); close() still has to be called. */
  readonly failed: Promise<Error>;
  /** Say goodbye to every stripe, close the tun, remove NAT, restore forwarding. Idempotent. */
  close(): Promise<void>;
}

const TUN_POLL_MS = 200;

export async function startAgent(opts: AgentOptions): Promise<Agent> {
  const cfg = opts.config;
  const startedAt = new Date().toISOString();
  const log = opts.log ?? ((l: string) => console.error(`ssm-proxy-agent: ${l}`));
  const undo: (() => Promise<void> | void)[] = [];
  const unwind = async () => {
    for (const u of undo.reverse()) {
      try {
        await u();
      } catch (e) {
        log(`cleanup: ${(e as Error).message}`);
      }
    }
    undo.length = 0;
  };

  try {
    let uplink = cfg.uplink;
    if (cfg.nat !== "off" && !uplink) {
      uplink = await detectUplink();
      if (!uplink || !IFNAME.test(uplink)) {
        throw new UserError(
          "no IPv4 default route to masquerade through: set uplink in the config",
        );
      }
    }
    // Without NAT the uplink matters to IPv6 only, for its accept_ra (forwarding.ts).
    if (cfg.nat === "off" && cfg.ipv6 === "on" && !uplink && (opts.manageSysctls ?? true)) {
      const found = await detectUplink();
      uplink = found && IFNAME.test(found) ? found : undefined;
    }
    const resolver = cfg.resolver ?? await detectResolver();
    const pool = new AddressPool(cfg.pool, cfg.leaseGraceSeconds * 1000, opts.now);
    if (cfg.stateDir) {
      const leases = new LeaseFile(cfg.stateDir, formatCidr(cfg.pool), log);
      const n = pool.restore(await leases.load());
      if (n) log(`restored ${n} lease${n === 1 ? "" : "s"} from ${leases.path}`);
      pool.onChange = () => leases.save(() => pool.snapshot());
      undo.push(() => leases.flushed());
    }
    const routing = stsRouting(cfg.stsEndpoint, opts.env ?? Deno.env.toObject());
    const stats = newStats();
    const registry = new Registry({
      pool,
      pool6: cfg.pool6,
      policy: filePolicy(cfg, resolver),
      mtu: cfg.mtu,
      resolver,
      agentVersion: VERSION,
      log,
    });

    // Listen before touching the system, so a busy port fails without side effects.
    let listener: Deno.Listener;
    try {
      listener = Deno.listen({ hostname: cfg.listen.hostname, port: cfg.listen.port });
    } catch (e) {
      throw new UserError(
        `cannot listen on ${cfg.listen.hostname}:${cfg.listen.port}: ${(e as Error).message}`,
      );
    }
    const closeListener = () => {
      try {
        listener.close();
      } catch { /* already closed by the shutdown step */ }
    };
    undo.push(closeListener);

    const address = formatIpv4(pool.agentAddress);
    const openTun = opts.openTun ?? (async (c: TunConfig) => {
      const { netPlatform } = await import("../src/net/platform.ts");
      return (await netPlatform()).openTun(c);
    });
    let tun: Tun;
    try {
      // One tun for the whole pool: the /prefix gives the kernel an on-link route for every
      // tunnel address, so replies from the VPC come back into it.
      tun = await openTun({
        name: cfg.tunName,
        mtu: cfg.mtu,
        address,
        peer: address,
        prefixLength: cfg.pool.prefix,
      });
    } catch (e) {
      if (e instanceof UserError) throw e;
      throw new UserError(`cannot create the tun device: ${(e as Error).message}`);
    }
    undo.push(() => tun.close());
    const manage = opts.manageSysctls ?? true;
    if (manage) {
      const fwd = await enableForwarding().catch((e) => {
        throw new UserError(`cannot enable IPv4 forwarding: ${(e as Error).message}`);
      });
      undo.push(() => fwd.restore());
    }
    let natBackend: Agent["nat"] = "off";
    if (cfg.nat !== "off") {
      const nat = await installNat(cfg.nat, {
        pool: cfg.pool,
        tun: tun.name,
        uplink: uplink!,
        mtu: cfg.mtu,
      });
      natBackend = nat.backend;
      undo.push(async () => {
        // With leases kept for the next start, keep the NAT too: removing it mid-flow makes
        // the kernel answer the VPC's replies with RSTs, killing connections a restart should
        // carry over. The next start replaces the rules atomically (no duplicates).
        if (cfg.stateDir) {
          log(`NAT rules kept for the next start (leases persist in ${cfg.stateDir})`);
          return;
        }
        const problem = await nat.remove();
        if (problem) log(problem);
      });
    }

    const v6 = await startIpv6({
      cfg,
      tun,
      uplink,
      nat: natBackend,
      manageSysctls: manage,
      addTunAddress6: opts.addTunAddress6,
      log,
    });
    undo.push(...v6.undo);
    registry.ipv6 = v6.state;
    const address6 = "pool6" in v6.state ? formatIpv6(v6.state.pool6.agentAddress) : undefined;
    const oldForm = !cfg.policy.rules;
    if (
      address6 && oldForm && cfg.policy.allow.length &&
      !cfg.policy.allow.some((c) => c.includes(":"))
    ) {
      log("policy.allow names no IPv6 network: tunnels' IPv6 traffic is denied everywhere");
    }

    // Rules from Parameter Store and the audit trail; the first read happens before any tunnel.
    let policyChanged = () => {};
    const access = await startAccess({
      cfg,
      resolver,
      apply: (p) => {
        registry.setPolicy(p);
        policyChanged();
      },
      log,
      ...(opts.audit ? { audit: opts.audit } : {}),
      ...(opts.loadParameters ? { load: opts.loadParameters } : {}),
    });
    undo.push(() => access.close());
    const audit = access.audit;

    // The tun loop. close() stops it before closing the tun: a pending read must not see a
    // closed fd.
    let stopping = false;
    let reportFailure!: (e: Error) => void;
    const failed = new Promise<Error>((r) => (reportFailure = r));
    const tunLoop = (async () => {
      while (!stopping) {
        let packets: Uint8Array[];
        try {
          packets = await tun.read(TUN_POLL_MS);
        } catch (e) {
          if (!stopping) {
            log(`tun ${tun.name} failed: ${(e as Error).message}`);
            reportFailure(e as Error);
          }
          return;
        }
        if (packets.length) fromTun(packets, registry, stats, audit);
      }
    })();
    undo.push(async () => {
      stopping = true;
      await tunLoop;
    });

    const sweep = setInterval(() => registry.sweep(), Math.min(5000, Math.max(100, pool.graceMs)));
    undo.push(() => clearInterval(sweep));

    const verifier = new IdentityVerifier({
      allowedHosts: routing.allowedHosts,
      sts: opts.sts ?? stsCall(routing),
      log,
    });
    const open = new Set<StripeConn>();
    const handlers = new Set<Promise<void>>();
    const ctx: ConnContext = {
      registry,
      verifier,
      wantsIdentity: () =>
        identityMatters(registry.policy, {
          audit: audit !== undefined,
          store: cfg.policyParameterPath !== undefined,
        }),
      tun,
      stats,
      audit,
      limits: opts.limits ?? DEFAULT_LIMITS,
      helloTimeoutMs: opts.helloTimeoutMs ?? 10_000,
      open,
      log,
    };
    const accepting = (async () => {
      try {
        for await (const conn of listener) {
          // Stripes carry interactive packets: no Nagle delay behind a delayed ACK.
          (conn as Deno.TcpConn).setNoDelay(true);
          const h = serveConnection(conn, ctx).catch((e) => log(`stripe: ${e.stack ?? e}`));
          handlers.add(h);
          h.finally(() => handlers.delete(h));
        }
      } catch { /* listener closed */ }
    })();
    undo.push(async () => {
      // Runs before the tun loop stops and the tun closes (undo runs in reverse).
      closeListener();
      await accepting;
      for (const link of open) {
        link.close({ code: "shutdown", message: "ssm-proxy-agent is stopping" });
      }
      await Promise.all([...handlers]);
    });

    const listen = `${cfg.listen.hostname}:${(listener.addr as Deno.NetAddr).port}`;
    log(
      `listening on ${listen}; tun ${tun.name} ` +
        `${address}/${cfg.pool.prefix} (pool ${formatCidr(cfg.pool)}), NAT ${natBackend}` +
        (uplink && natBackend !== "off" ? ` via ${uplink}` : "") +
        (resolver ? `, resolver ${resolver}` : "") + `; ${v6.summary}` +
        (registry.policy.requireIdentity ? "; a verified identity is required" : "") +
        (routing.endpoint ? `; identities checked with STS at ${routing.endpoint.host}` : ""),
    );

    // Start-up (config, nft, module loading) leaves malloc holding freed memory; give it back.
    undo.push(keepMemoryTrimmed());

    // Idle stop and the status file follow the tunnels through the registry's events.
    const idleStop = cfg.idleStopAfterMs > 0
      ? new IdleStop(
        { afterMs: cfg.idleStopAfterMs, command: cfg.idleStopCommand, log },
        registry.connectedCount,
      )
      : undefined;
    if (idleStop) undo.push(() => idleStop.close());
    const pidStartTime = processStartTime("self") ?? null;
    const status = cfg.runtimeDir
      ? new StatusFile(cfg.runtimeDir, () => ({
        schema: 1,
        version: VERSION,
        pid: Deno.pid,
        pidStartTime,
        startedAt,
        listen,
        tun: tun.name,
        address,
        pool: formatCidr(cfg.pool),
        ipv6: address6
          ? { address: address6, pool: formatCidr6(cfg.pool6) }
          : { off: "off" in v6.state ? v6.state.off : "" },
        nat: natBackend,
        stateDir: cfg.stateDir ?? null,
        tunnelCount: registry.tunnels.length,
        connectedTunnels: registry.connectedCount,
        tunnels: registry.tunnels.map(tunnelStatus),
        idleStop: idleStop?.status() ?? null,
        access: access.status(),
        counters: stats,
      }), log)
      : undefined;
    registry.onChange = () => {
      idleStop?.update(registry.connectedCount);
      status?.changed();
    };
    policyChanged = () => status?.changed();
    if (status) {
      status.start();
      // Runs first on close: a stopping agent no longer claims to serve.
      undo.push(() => status.stop());
    }

    let closing: Promise<void> | undefined;
    return {
      addr: listener.addr as Deno.NetAddr,
      tunName: tun.name,
      address,
      address6,
      nat: natBackend,
      stats,
      registry,
      idleStop,
      statusFile: status?.path,
      failed,
      close: () => (closing ??= unwind()),
    };
  } catch (e) {
    await unwind();
    throw e;
  }
}
