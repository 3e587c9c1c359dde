/**
 * One accepted TCP connection from the SSM agent's Port session: the HELLO handshake, then the
 * stripe's frames until it ends. Anything wrong with one connection closes that connection only.
 */
import {
  encodeLoad,
  encodePong,
  encodeWelcome,
  FEATURE_LOAD,
  type Frame,
  FrameReader,
  FrameType,
  WireError,
} from "../src/tunnel/wire.ts";
import type { Tun } from "../src/net/types.ts";
import { fromClient } from "./dispatch.ts";
import type { Policy } from "./policy.ts";
import { type QueueLimits, SendQueue } from "./sendqueue.ts";
import type { AgentStats } from "./stats.ts";
import { StripeConn } from "./stripe.ts";
import type { Registry, Tunnel } from "./tunnels.ts";

export interface ConnContext {
  registry: Registry;
  policy: Policy;
  tun: Tun;
  stats: AgentStats;
  limits: QueueLimits;
  helloTimeoutMs: number;
  /** Every open connection, so shutdown can say goodbye to stripes still in the handshake. */
  open: Set<StripeConn>;
  log: (line: string) => void;
}

const ARENA = 64 * 1024;
/** How often a stripe whose client asked for them gets a LOAD report (while it has news). */
const LOAD_EVERY_MS = 500;

/**
 * Reads chunks into a shared arena: FrameReader keeps views of pushed chunks, so a region is
 * never reused; a fresh arena is started when the current one is nearly used up.
 */
function chunkReader(conn: Deno.Conn): () => Promise<Uint8Array | null> {
  let arena = new Uint8Array(ARENA);
  let off = 0;
  return async () => {
    if (arena.length - off < 4096) {
      arena = new Uint8Array(ARENA);
      off = 0;
    }
    const n = await conn.read(arena.subarray(off));
    if (n === null) return null;
    const chunk = arena.subarray(off, off + n);
    off += n;
    return chunk;
  };
}

export async function serveConnection(conn: Deno.Conn, ctx: ConnContext): Promise<void> {
  const link = new StripeConn(conn, new SendQueue(ctx.limits));
  ctx.open.add(link);
  const read = chunkReader(conn);
  const reader = new FrameReader();
  let tunnel: Tunnel | undefined;
  let index = -1;
  let loadTimer: ReturnType<typeof setInterval> | undefined;
  const protocolError = (message: string, code: "protocol" | "bad-hello" = "protocol") => {
    ctx.stats.protocolErrors++;
    ctx.log(`stripe ${describe(conn)}: ${message}; closing it`);
    link.close({ code, message });
  };
  // A connection that never says HELLO would hold a slot forever.
  const helloTimer = setTimeout(() => {
    ctx.log(`stripe ${describe(conn)}: no HELLO within ${ctx.helloTimeoutMs} ms; closing it`);
    link.close({ code: "protocol", message: "no HELLO received in time" });
  }, ctx.helloTimeoutMs);
  try {
    let pending: Frame[] = [];
    while (!tunnel) {
      const chunk = await read();
      if (chunk === null || link.isClosing) return;
      // Fail fast on a stream that is not ours instead of waiting for a bogus length to fill.
      if (reader.pending === 0 && chunk[0] !== FrameType.Hello) {
        return protocolError("first frame is not HELLO", "bad-hello");
      }
      try {
        pending = reader.push(chunk);
      } catch (e) {
        return protocolError(`bad HELLO: ${(e as Error).message}`, "bad-hello");
      }
      if (pending.length === 0) continue;
      const first = pending.shift()!;
      if (first.type !== FrameType.Hello) return protocolError("first frame is not HELLO");
      const joined = ctx.registry.join(first.hello, link);
      if ("error" in joined) {
        ctx.log(`stripe ${describe(conn)}: refused: ${joined.error.message}`);
        return link.close(joined.error);
      }
      clearTimeout(helloTimer);
      tunnel = joined.tunnel;
      index = first.hello.stripe;
      link.send(encodeWelcome(joined.welcome));
      if (first.hello.features.includes(FEATURE_LOAD)) loadTimer = reportLoad(link);
    }
    for (;;) {
      for (const f of pending) {
        if (!handleFrame(f, tunnel, index, link, ctx)) return;
      }
      const chunk = await read();
      if (chunk === null || link.isClosing) return;
      try {
        pending = reader.push(chunk);
      } catch (e) {
        if (!(e instanceof WireError)) throw e;
        return protocolError(e.message);
      }
    }
  } catch (e) {
    // A reset or a close during shutdown; anything else is a bug worth a log line.
    if (
      !(e instanceof Deno.errors.ConnectionReset || e instanceof Deno.errors.BadResource ||
        e instanceof Deno.errors.Interrupted || e instanceof Deno.errors.BrokenPipe)
    ) {
      ctx.log(`stripe ${describe(conn)}: ${(e as Error).message}`);
    }
  } finally {
    clearTimeout(helloTimer);
    clearInterval(loadTimer);
    if (tunnel) ctx.registry.leave(tunnel, index, link);
    link.close();
    await link.closed;
    ctx.open.delete(link);
  }
}

/**
 * LOAD reports for a client that can use them (it sizes and balances its stripes by them); an
 * idle stripe says nothing after one report of zero.
 */
function reportLoad(link: StripeConn): ReturnType<typeof setInterval> {
  let quiet = true;
  return setInterval(() => {
    const l = link.sampleLoad();
    const news = l.busy >= 1 || l.drops > 0;
    if (news || !quiet) link.send(encodeLoad(l));
    quiet = !news;
  }, LOAD_EVERY_MS);
}

/** False when the stripe must end. */
function handleFrame(
  f: Frame,
  tunnel: Tunnel,
  index: number,
  link: StripeConn,
  ctx: ConnContext,
): boolean {
  switch (f.type) {
    case FrameType.Packets:
      tunnel.heard(f.packets, index);
      fromClient(f.packets, tunnel, ctx.policy, ctx.tun, ctx.stats);
      return true;
    case FrameType.Ping:
      link.send(encodePong(f.nonce));
      return true;
    case FrameType.Pong:
      return true;
    case FrameType.Error:
      ctx.log(`tunnel ${tunnel.id}: client closed a stripe: ${f.error.code} ${f.error.message}`);
      link.close();
      return false;
    case FrameType.Hello:
    case FrameType.Welcome:
      ctx.stats.protocolErrors++;
      link.close({ code: "protocol", message: "unexpected handshake frame" });
      return false;
    default:
      return true; // unknown frame types are skipped (wire.ts: forward compatibility)
  }
}

function describe(conn: Deno.Conn): string {
  const a = conn.remoteAddr as Deno.NetAddr;
  return `${a.hostname}:${a.port}`;
}
