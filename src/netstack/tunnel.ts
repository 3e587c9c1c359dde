/**
 * An agentless tunnel (DESIGN §9): the NetStack on the Tun, its connections carried by a pool of
 * remote-host Port sessions, DNS relayed to the VPC resolver. It has the Tunnel's shape
 * (run/stats/health/recover/close/ended), so `start` serves either mode the same way.
 */
import type { Tun } from "../net/types.ts";
import type { PortSession } from "../ssm/session.ts";
import type { TunnelHealth, TunnelStats } from "../tunnel/client.ts";
import { NetStackDriver } from "./driver.ts";
import { DnsUpstreams } from "./dns_upstream.ts";
import { parseAddr } from "./packet.ts";
import { SessionPool } from "./pool.ts";
import type { StackStats } from "./stack.ts";
import type { Destination } from "./types.ts";

export interface AgentlessOptions {
  /** StartSession (AWS-StartPortForwardingSessionToRemoteHost to dst) and PortSession.open. */
  openSession(dst: Destination): Promise<PortSession>;
  /** The VPC resolver addresses apps query (answered by the DNS relay). */
  resolvers: string[];
  /** The team's policy for this laptop, judged per packet (NetStackOptions.allowPacket). */
  allowPacket?: (packet: Uint8Array) => boolean;
  /** Resolvers to relay DNS to before the VPC resolver itself (`--dns-upstream`). */
  dnsUpstreams?: string[];
  /** Our own addresses: packets from anything else are not served (§9 allowed sources). */
  localAddresses: string[];
  log?: (line: string) => void;
  /** Session pool tuning (tests shorten these). */
  idleSessionMs?: number;
  maxSessions?: number;
}

/** What `status` shows of agentless mode. */
export interface AgentlessState {
  connections: number;
  byState: StackStats["connections"];
  /** Refused locally: UDP other than DNS, ICMP echo, other protocols. */
  refusedUdp: number;
  refusedOther: number;
  /** TCP connections the destination (or policy) refused, and those that timed out opening. */
  refusedTcp: number;
  /** Packets the team's policy refused here (ICMP administratively prohibited answered). */
  refusedPolicy: number;
  dnsQueries: number;
  dnsUpstream?: string;
  sessions: number;
}

export class AgentlessTunnel {
  readonly pool: SessionPool;
  #o: AgentlessOptions;
  #driver?: NetStackDriver;
  #dns: DnsUpstreams;
  #ended = Promise.withResolvers<string>();
  #closed = false;

  constructor(o: AgentlessOptions) {
    this.#o = o;
    this.pool = new SessionPool({
      openSession: o.openSession,
      log: o.log,
      ...(o.idleSessionMs !== undefined ? { idleMs: o.idleSessionMs } : {}),
      ...(o.maxSessions !== undefined ? { maxSessions: o.maxSessions } : {}),
    });
    this.#dns = new DnsUpstreams(this.pool, { preferred: o.dnsUpstreams, log: o.log });
  }

  /** Only close() ends it: sessions come and go with the connections. */
  get ended(): Promise<string> {
    return this.#ended.promise;
  }

  async run(tun: Tun): Promise<void> {
    const ours = this.#o.localAddresses.map(parseAddr).filter((a) => a !== undefined);
    this.#driver = new NetStackDriver(tun, {
      transport: this.pool,
      dnsTransport: this.#dns,
      resolvers: this.#o.resolvers.map(parseAddr).filter((a) => a !== undefined),
      allowSource: (a) => ours.some((o) => o.length === a.length && o.every((b, i) => b === a[i])),
      ...(this.#o.allowPacket ? { allowPacket: this.#o.allowPacket } : {}),
    });
    if (this.#closed) this.#driver.close();
    await this.#driver.run();
  }

  stats(): TunnelStats {
    const d = this.#driver;
    const sessions = this.pool.sessions();
    const c = d?.stack.stats().counters ?? {};
    return {
      packetsOut: d?.counts.packetsRead ?? 0,
      bytesOut: d?.counts.bytesRead ?? 0,
      packetsIn: d?.counts.packetsWritten ?? 0,
      bytesIn: d?.counts.bytesWritten ?? 0,
      dropsOut: Object.entries(c).filter(([k]) => k.startsWith("drop-")).reduce(
        (n, [, v]) => n + v,
        0,
      ),
      dropsIn: d?.dropsIn ?? 0,
      stripesUp: sessions.filter((s) => s.state === "up").length,
      rttMs: 0,
      reconnects: sessions.reduce((n, s) => n + s.reconnects, 0),
    };
  }

  health(): TunnelHealth {
    const sessions = this.pool.sessions();
    const healing = sessions.some((s) => s.state === "healing");
    const lastError = sessions.map((s) => s.lastError).filter(Boolean).at(-1);
    return {
      state: healing ? "healing" : "up",
      reconnects: sessions.reduce((n, s) => n + s.reconnects, 0),
      healingMs: 0,
      ...(lastError ? { lastError } : {}),
      sessions: sessions.map((s) => s.sessionId),
    };
  }

  agentless(): AgentlessState {
    const st = this.#driver?.stack.stats();
    const c = st?.counters ?? {};
    const n = (k: string) => c[k] ?? 0;
    return {
      connections: this.#driver?.stack.connectionCount ?? 0,
      byState: st?.connections ?? {},
      refusedUdp: n("refused-udp") + n("refused-dns-rejected"),
      refusedOther: n("refused-other"),
      refusedTcp: n("open-refused") + n("open-unreachable") + n("open-timeout"),
      refusedPolicy: n("refused-policy"),
      dnsQueries: n("dns-query"),
      ...(this.#dns.current ? { dnsUpstream: this.#dns.current } : {}),
      sessions: this.pool.sessions().length,
    };
  }

  /** The machine slept or the network changed: probe every session now. */
  recover(reason: string): void {
    for (const s of this.pool.sessions()) s.checkNow(reason);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#driver?.close();
    await this.pool.close();
    this.#ended.resolve("closed");
  }
}
