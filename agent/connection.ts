/**
 * One accepted TCP connection from the SSM agent's Port session: the handshake (handshake.ts),
 * then the stripe's frames until it ends. Anything wrong with one connection closes that
 * connection only.
 */
import {
  encodeLoad,
  encodePong,
  FEATURE_LOAD,
  type Frame,
  FrameType,
  WireError,
} from "../src/tunnel/wire.ts";
import { type DataPath, fromClient } from "./dispatch.ts";
import { handshake, protocolError, type Side } from "./handshake.ts";
import type { IdentityVerifier } from "./identity.ts";
import { type QueueLimits, SendQueue } from "./sendqueue.ts";
import { StripeConn } from "./stripe.ts";
import { StripeReader } from "./stripe_reader.ts";
import { shortId, type Tunnel } from "./tunnels.ts";

/** What every connection shares; the registry holds the policy in force. */
export interface ConnContext extends DataPath {
  /** Checks the PROOF of a client that offers its identity. */
  verifier: IdentityVerifier;
  /**
   * Whether identities matter now (access.ts identityMatters): only then is a client that offers
   * one challenged, so an agent whose rules name nobody never waits on STS.
   */
  wantsIdentity: () => boolean;
  limits: QueueLimits;
  /** How long a stripe may take to send its HELLO, and its PROOF when it offers one. */
  helloTimeoutMs: number;
  /** Every open connection, so shutdown can say goodbye to stripes still in the handshake. */
  open: Set<StripeConn>;
  log: (line: string) => void;
}

/** How often a stripe whose client asked for them gets a LOAD report (while it has news). */
const LOAD_EVERY_MS = 500;

export async function serveConnection(conn: Deno.Conn, ctx: ConnContext): Promise<void> {
  const link = new StripeConn(conn, new SendQueue(ctx.limits));
  ctx.open.add(link);
  const side: Side = { link, reader: new StripeReader(conn), ctx, label: describe(conn) };
  let tunnel: Tunnel | undefined;
  let index = -1;
  let loadTimer: ReturnType<typeof setInterval> | undefined;
  try {
    const joined = await handshake(side);
    if (!joined) return;
    tunnel = joined.tunnel;
    index = joined.hello.stripe;
    if (link.isClosing) return;
    if (joined.hello.features.includes(FEATURE_LOAD)) loadTimer = reportLoad(link);
    let pending: Frame[] | null = joined.rest;
    for (;;) {
      for (const f of pending) {
        if (!handleFrame(f, tunnel, index, link, ctx)) return;
      }
      try {
        pending = await side.reader.next();
      } catch (e) {
        if (!(e instanceof WireError)) throw e;
        return void protocolError(side, e.message);
      }
      if (pending === null || link.isClosing) return;
    }
  } catch (e) {
    // A reset or a close during shutdown; anything else is a bug worth a log line.
    if (
      !(e instanceof Deno.errors.ConnectionReset || e instanceof Deno.errors.BadResource ||
        e instanceof Deno.errors.Interrupted || e instanceof Deno.errors.BrokenPipe)
    ) {
      ctx.log(`stripe ${side.label}: ${(e as Error).message}`);
    }
  } finally {
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
      fromClient(f.packets, tunnel, ctx);
      return true;
    case FrameType.Ping:
      link.send(encodePong(f.nonce));
      return true;
    case FrameType.Pong:
      return true;
    case FrameType.Error:
      ctx.log(
        `tunnel ${shortId(tunnel.id)}: client closed a stripe: ${f.error.code} ${f.error.message}`,
      );
      link.close();
      return false;
    case FrameType.Hello:
    case FrameType.Welcome:
    case FrameType.Challenge:
    case FrameType.Proof:
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
