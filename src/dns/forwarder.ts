/**
 * The local split-DNS forwarder for hosts without systemd-resolved: listens on UDP and TCP (a
 * loopback address, port 53) and sends each query either to the tunnel's resolver (names in or
 * under a tunnel zone) or to the machine's previous nameservers (everything else), relaying the
 * answer unchanged. Each list is tried in order from the server that answered last, with a
 * deadline per server. Bounded: queries in flight and TCP connections are capped, and whatever is
 * over a cap or not a standard query is dropped without touching other queries.
 */
import dgram from "node:dgram";
import { frame, FrameReader } from "../netstack/dns_framing.ts";
import { optUdpSize, servfail } from "../netstack/dns_message.ts";
import { exchangeTcp, exchangeUdp, type Server, serverText } from "./exchange.ts";
import { inZone, normalizeZone, questionName, truncated, worthRetrying } from "./query.ts";

export interface ForwarderOptions {
  /** Listen address, e.g. 127.0.0.153. */
  address: string;
  /** Listen port: 53 unless a test says otherwise (resolv.conf cannot name a port). */
  port?: number;
  /** Tunnel zones; the root "." holds every name (full tunnel: upstreams are never asked). */
  zones: string[];
  /** The tunnel's resolver(s), for names in the zones. */
  zoneServers: Server[];
  /** The previous nameservers, for everything else. */
  upstreams: Server[];
  /** Deadline per server and query. */
  timeoutMs?: number;
  maxInflight?: number;
  maxTcpConnections?: number;
  /** A TCP connection quiet this long is closed (RFC 7766 §6.2.3). */
  tcpIdleMs?: number;
}

export interface ForwarderStats {
  queries: number;
  zone: number;
  other: number;
  /** Not a standard query, or over a limit. */
  dropped: number;
  /** No server answered: the client got SERVFAIL. */
  failed: number;
}

/** What a list of servers needs: the servers, and which answered last (tried first). */
interface Route {
  servers: Server[];
  good: number;
}

const CLASSIC_UDP = 512;
/** Queries one TCP connection may have in flight (RFC 7766 pipelining). */
const PER_CONNECTION = 16;

export class DnsForwarder {
  readonly stats: ForwarderStats = { queries: 0, zone: 0, other: 0, dropped: 0, failed: 0 };
  #zones: string[];
  #zone: Route;
  #other: Route;
  #timeoutMs: number;
  #maxInflight: number;
  #maxTcp: number;
  #idleMs: number;
  #inflight = 0;
  #closing = new AbortController();
  #udp!: dgram.Socket;
  #tcp!: Deno.TcpListener;
  #conns = new Set<Deno.Conn>();
  #accepting: Promise<void> = Promise.resolve();

  private constructor(readonly address: string, readonly port: number, o: ForwarderOptions) {
    const self = (s: Server) => s.port === port && s.host === address;
    // Never to itself: a previous resolv.conf naming our address would loop every query.
    this.#zone = { servers: o.zoneServers.filter((s) => !self(s)), good: 0 };
    this.#other = { servers: o.upstreams.filter((s) => !self(s)), good: 0 };
    this.#zones = o.zones.map(normalizeZone);
    this.#timeoutMs = o.timeoutMs ?? 2000;
    this.#maxInflight = o.maxInflight ?? 256;
    this.#maxTcp = o.maxTcpConnections ?? 64;
    this.#idleMs = o.tcpIdleMs ?? 10_000;
  }

  /** Listening on both transports, or the bind error (address in use, no permission). */
  static async start(o: ForwarderOptions): Promise<DnsForwarder> {
    // Datagrams may arrive before the forwarder exists (it needs the bound port): dropped.
    const ready: { f?: DnsForwarder } = {};
    const udp = await bindUdp(o.address, o.port ?? 53, (msg, from) => {
      if (ready.f) ready.f.#onDatagram(msg, from);
    });
    // Port 0 (tests): TCP takes the port the kernel gave UDP.
    const f = ready.f = new DnsForwarder(o.address, udp.address().port, o);
    f.#udp = udp;
    try {
      f.#tcp = Deno.listen({ hostname: o.address, port: f.port });
    } catch (e) {
      await closeUdp(udp);
      throw e;
    }
    f.#accepting = f.#accept();
    return f;
  }

  get upstreams(): string[] {
    return this.#other.servers.map(serverText);
  }

  async close(): Promise<void> {
    if (this.#closing.signal.aborted) return;
    this.#closing.abort();
    await closeUdp(this.#udp);
    try {
      this.#tcp.close();
    } catch { /* closed */ }
    for (const c of this.#conns) closeQuietly(c);
    await this.#accepting;
  }

  #admit(msg: Uint8Array): string | undefined {
    const name = questionName(msg);
    if (name === undefined || this.#inflight >= this.#maxInflight || this.#closing.signal.aborted) {
      this.stats.dropped++;
      return undefined;
    }
    this.stats.queries++;
    return name;
  }

  #onDatagram(msg: Uint8Array, from: dgram.RemoteInfo): void {
    const name = this.#admit(msg);
    if (name === undefined) return;
    this.#inflight++;
    this.#resolve(msg, name, false)
      .then((answer) => {
        if (!this.#closing.signal.aborted) this.#udp.send(answer, from.port, from.address);
      })
      .catch(() => {})
      .finally(() => this.#inflight--);
  }

  async #accept(): Promise<void> {
    try {
      for await (const c of this.#tcp) {
        if (this.#conns.size >= this.#maxTcp) {
          this.stats.dropped++;
          closeQuietly(c);
          continue;
        }
        this.#conns.add(c);
        this.#serveTcp(c).catch(() => {}).finally(() => {
          this.#conns.delete(c);
          closeQuietly(c);
        });
      }
    } catch { /* listener closed */ }
  }

  async #serveTcp(c: Deno.Conn): Promise<void> {
    const frames = new FrameReader();
    const buf = new Uint8Array(4096);
    const tasks = new Set<Promise<void>>();
    let writing = Promise.resolve();
    let idle = setTimeout(() => closeQuietly(c), this.#idleMs);
    try {
      while (true) {
        const n = await c.read(buf).catch(() => null);
        if (n === null) break;
        clearTimeout(idle);
        idle = setTimeout(() => closeQuietly(c), this.#idleMs);
        for (const msg of frames.push(buf.subarray(0, n))) {
          if (tasks.size >= PER_CONNECTION) {
            this.stats.dropped++;
            continue;
          }
          const name = this.#admit(msg);
          if (name === undefined) continue;
          this.#inflight++;
          const task: Promise<void> = this.#resolve(msg, name, true).then((answer) => {
            // Answers go out whole and one at a time; their order may differ from the queries'
            // (RFC 7766 §7), the client matches them by id.
            writing = writing.then(() => writeAll(c, frame(answer))).catch(() => closeQuietly(c));
            return writing;
          }).catch(() => {}).finally(() => {
            tasks.delete(task);
            this.#inflight--;
          });
          tasks.add(task);
        }
      }
      // A client may send its queries and half-close: it still gets the answers.
      await Promise.allSettled([...tasks]);
    } finally {
      clearTimeout(idle);
    }
  }

  /** The answer to relay: a server's, or SERVFAIL when none answered. */
  async #resolve(query: Uint8Array, name: string, tcp: boolean): Promise<Uint8Array> {
    const zone = inZone(name, this.#zones);
    if (zone) this.stats.zone++;
    else this.stats.other++;
    const route = zone ? this.#zone : this.#other;
    const signal = this.#closing.signal;
    const n = route.servers.length;
    let fallback: Uint8Array | undefined;
    for (let k = 0; k < n && !signal.aborted; k++) {
      const i = (route.good + k) % n;
      const server = route.servers[i];
      let answer = tcp
        ? await exchangeTcp(server, query, this.#timeoutMs, signal)
        : await exchangeUdp(server, query, this.#timeoutMs, signal);
      if (!answer) continue;
      if (!tcp && truncated(answer)) {
        // Fetch it whole over TCP; if it fits what the client accepts over UDP it saves the
        // client a round trip, otherwise the client gets TC and asks us over TCP itself.
        const whole = await exchangeTcp(server, query, this.#timeoutMs, signal);
        if (whole && whole.length <= udpLimit(query)) answer = whole;
      }
      if (worthRetrying(answer)) {
        fallback = answer;
        continue;
      }
      route.good = i;
      return answer;
    }
    if (fallback) return fallback;
    this.stats.failed++;
    // questionName() accepted the query, so servfail() has a question to echo.
    return servfail(query)!;
  }
}

function udpLimit(query: Uint8Array): number {
  return Math.max(CLASSIC_UDP, optUdpSize(query) ?? CLASSIC_UDP);
}

function bindUdp(
  address: string,
  port: number,
  onMessage: (msg: Uint8Array, from: dgram.RemoteInfo) => void,
): Promise<dgram.Socket> {
  const { promise, resolve, reject } = Promise.withResolvers<dgram.Socket>();
  const sock = dgram.createSocket(address.includes(":") ? "udp6" : "udp4");
  sock.once("error", reject);
  sock.on("message", (msg, from) => {
    try {
      onMessage(new Uint8Array(msg), from);
    } catch { /* one bad datagram never stops the others */ }
  });
  sock.bind(port, address, () => {
    sock.off("error", reject);
    // After binding, a send error (client gone) concerns one answer only.
    sock.on("error", () => {});
    resolve(sock);
  });
  return promise;
}

/** Resolves once the port is free again (dgram closes asynchronously). */
function closeUdp(sock: dgram.Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      sock.close(() => resolve());
    } catch {
      resolve(); // already closed
    }
  });
}

async function writeAll(c: Deno.Conn, b: Uint8Array): Promise<void> {
  for (let o = 0; o < b.length;) o += await c.write(b.subarray(o));
}

function closeQuietly(c: Deno.Conn): void {
  try {
    c.close();
  } catch { /* closed */ }
}
