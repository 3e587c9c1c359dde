/**
 * A stripe's handshake (DESIGN §3, issue 15): HELLO; from a client that offers its identity,
 * CHALLENGE and PROOF, checked with STS (identity.ts); then the registry's WELCOME, or one ERROR
 * saying why not. The hello timeout runs until the PROOF arrives; STS has its own.
 */
import {
  encodeChallenge,
  encodePong,
  encodeWelcome,
  FEATURE_IDENTITY,
  type Frame,
  FrameType,
  type Hello,
  WireError,
  type WireErrorBody,
} from "../src/tunnel/wire.ts";
import type { ConnContext } from "./connection.ts";
import { admitProof } from "./identity.ts";
import type { StripeConn } from "./stripe.ts";
import { NotHello, type StripeReader } from "./stripe_reader.ts";
import type { StripeIdentity, Tunnel } from "./tunnels.ts";

export interface Joined {
  tunnel: Tunnel;
  hello: Hello;
  /** Frames that arrived after the handshake's own, not yet handled. */
  rest: Frame[];
}

/** One connection as the handshake sees it. */
export interface Side {
  link: StripeConn;
  reader: StripeReader;
  ctx: ConnContext;
  /** The peer, for log lines. */
  label: string;
}

/** The stripe's tunnel, or undefined when the stripe was refused or went away. */
export async function handshake(s: Side): Promise<Joined | undefined> {
  const { link, ctx } = s;
  let awaiting = "HELLO";
  // A connection that never completes its handshake would hold a slot forever.
  const timer = setTimeout(() => {
    ctx.log(`stripe ${s.label}: no ${awaiting} within ${ctx.helloTimeoutMs} ms; closing it`);
    link.close({ code: "protocol", message: `no ${awaiting} received in time` });
  }, ctx.helloTimeoutMs);
  try {
    let frames = await nextFrames(s, true);
    if (!frames) return;
    const first = frames.shift()!;
    if (first.type !== FrameType.Hello) return protocolError(s, "first frame is not HELLO");
    const hello = first.hello;
    let who: StripeIdentity = {};
    if (hello.features.includes(FEATURE_IDENTITY) && ctx.wantsIdentity()) {
      const nonce = ctx.verifier.challenge();
      awaiting = "PROOF";
      link.send(encodeChallenge(nonce));
      let proof: string | undefined;
      while (proof === undefined) {
        if (!frames.length && !(frames = await nextFrames(s, false))) return;
        const f = frames.shift()!;
        if (f.type === FrameType.Proof) proof = f.proof;
        else if (f.type === FrameType.Ping) link.send(encodePong(f.nonce));
        else if (f.type !== FrameType.Pong && f.type !== "unknown") {
          return protocolError(s, `expected PROOF, got frame type ${f.type}`);
        }
      }
      clearTimeout(timer);
      const outcome = await Promise.race([ctx.verifier.check(proof, nonce), link.closed]);
      if (!outcome || link.isClosing) return;
      const admitted = admitProof(outcome, ctx.registry.policy.requireIdentity);
      if ("error" in admitted) return refuse(s, admitted.error);
      who = admitted.who;
    }
    const joined = ctx.registry.join(hello, link, who);
    if ("error" in joined) return refuse(s, joined.error);
    link.send(encodeWelcome(joined.welcome));
    return { tunnel: joined.tunnel, hello, rest: frames };
  } finally {
    clearTimeout(timer);
  }
}

/** The next frames (at least one), or undefined when the stripe is gone or was closed. */
async function nextFrames(s: Side, beforeHello: boolean): Promise<Frame[] | undefined> {
  for (;;) {
    let got: Frame[] | null;
    try {
      got = await s.reader.next();
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      if (!beforeHello) return protocolError(s, e.message);
      return protocolError(
        s,
        e instanceof NotHello ? e.message : `bad HELLO: ${e.message}`,
        "bad-hello",
      );
    }
    if (got === null || s.link.isClosing) return undefined;
    if (got.length) return got;
  }
}

/** Count, log and close with ERROR: the stripe broke the protocol. */
export function protocolError(
  s: Side,
  message: string,
  code: "protocol" | "bad-hello" = "protocol",
): undefined {
  s.ctx.stats.protocolErrors++;
  s.ctx.log(`stripe ${s.label}: ${message}; closing it`);
  s.link.close({ code, message });
  return undefined;
}

function refuse(s: Side, error: WireErrorBody): undefined {
  s.ctx.log(`stripe ${s.label}: refused: ${error.message}`);
  s.link.close(error);
  return undefined;
}
