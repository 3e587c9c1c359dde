/**
 * A stand-in for ssm-proxy-agent, written from the wire description (src/tunnel/wire.ts) and
 * not from agent/*, so the client's identity handshake is checked against a second reading of
 * the protocol: a TCP listener the emulator's Port sessions dial, a script per connection, and
 * its own check of a proof (send it to the emulator's STS as is, read the ARN back).
 */
import assert from "node:assert/strict";
import { startEmulator } from "../../src/emulator/server.ts";
import { parseFixtures } from "../../src/emulator/fixtures.ts";
import * as ssm from "../../src/aws/ssm.ts";
import { PortSession } from "../../src/ssm/session.ts";
import { Tunnel, type TunnelOptions } from "../../src/tunnel/client.ts";
import {
  encodeChallenge,
  encodeError,
  encodeWelcome,
  type Frame,
  FrameReader,
  FrameType,
  type Hello,
  type Welcome,
  type WireErrorCode,
} from "../../src/tunnel/wire.ts";
import { awsEnv, withEnv } from "../support/aws_env.ts";

export const TARGET = "i-0123456789abcdef0";
export const JANE_ARN = "arn:aws:iam::210987654321:user/jane";
export const JANE = {
  AWS_ACCESS_KEY_ID: "AKIAJANE000000000001",
  AWS_SECRET_ACCESS_KEY: "jane-secret",
};
/** STS in the emulator knows only Jane, and checks every signature. */
export const WORLD = `
identities:
  - accessKeyId: ${JANE.AWS_ACCESS_KEY_ID}
    secretAccessKey: ${JANE.AWS_SECRET_ACCESS_KEY}
    arn: ${JANE_ARN}
    userId: AIDAJANE0000000000001
`;

/** One connection from the client, as the script sees it. */
export class Peer {
  #reader = new FrameReader();
  #frames: Frame[] = [];
  #wake?: () => void;
  #closed = false;

  constructor(readonly conn: Deno.Conn) {
    (async () => {
      const buf = new Uint8Array(65536);
      while (true) {
        const n = await conn.read(buf).catch(() => null);
        if (n === null) break;
        this.#frames.push(...this.#reader.push(buf.slice(0, n)));
        this.#wake?.();
      }
      this.#closed = true;
      this.#wake?.();
    })();
  }

  /** The next frame from the client; undefined once it closed. */
  async next(ms = 20_000): Promise<Frame | undefined> {
    const t0 = Date.now();
    while (this.#frames.length === 0 && !this.#closed) {
      if (Date.now() - t0 > ms) throw new Error("the client sent nothing");
      await new Promise<void>((r) => {
        this.#wake = r;
        setTimeout(r, 50);
      });
    }
    return this.#frames.shift();
  }

  async send(bytes: Uint8Array): Promise<void> {
    await this.conn.write(bytes).catch(() => {});
  }

  close(): void {
    try {
      this.conn.close();
    } catch { /* closed */ }
  }
}

/** Runs `script` on every connection once its HELLO is in; counts HELLOs. */
export function standIn(script: (peer: Peer, hello: Hello, n: number) => Promise<void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const peers: Peer[] = [];
  const hellos: Hello[] = [];
  const done = (async () => {
    for await (const conn of listener) {
      const peer = new Peer(conn);
      peers.push(peer);
      (async () => {
        const f = await peer.next();
        if (f?.type !== FrameType.Hello) return peer.close();
        hellos.push(f.hello);
        await script(peer, f.hello, hellos.length);
      })().catch(() => peer.close());
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    hellos,
    peers,
    async close() {
      listener.close();
      for (const p of peers) p.close();
      await done;
    },
  };
}

export type StandIn = ReturnType<typeof standIn>;

export const baseWelcome: Welcome = {
  version: 1,
  address: "100.64.0.2",
  peer: "100.64.0.1",
  mtu: 1400,
  policy: { allow: ["10.0.0.0/16"], deny: [] },
  agent: "stand-in",
};

export function nonce(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16)).join("")
    .padEnd(24, "0");
}

/**
 * What this stand-in makes of a proof: the nonce header must be the one it sent, then STS (the
 * emulator) must accept the request exactly as signed. An identity, or why not.
 */
export async function verify(
  proofText: string,
  sent: string,
): Promise<{ arn: string; account: string } | { refused: string }> {
  const p = JSON.parse(proofText) as { m: string; u: string; h: Record<string, string> };
  if (p.h["x-ssm-proxy-nonce"] !== sent) return { refused: "it answers another nonce" };
  // Replayed as signed: a presigned GET, its one header, no body.
  const res = await fetch(p.u, { method: p.m, headers: p.h });
  const text = await res.text();
  if (res.status !== 200) {
    return { refused: `STS says ${/<Code>(.*?)<\/Code>/.exec(text)?.[1] ?? res.status}` };
  }
  const arn = /<Arn>(.*?)<\/Arn>/.exec(text)?.[1];
  const account = /<Account>(.*?)<\/Account>/.exec(text)?.[1];
  assert.ok(arn && account, text);
  return { arn, account };
}

/**
 * An agent that checks identities: CHALLENGE, PROOF, then WELCOME naming who STS says the
 * client is, or ERROR identity-refused when STS (or `allow`) says no.
 */
export function checkingAgent(
  o: { allow?: (arn: string, n: number) => boolean; proofs?: string[] } = {},
) {
  return standIn(async (peer, hello, n) => {
    if (!hello.features.includes("identity")) {
      return await refuse(peer, "identity-required", "this agent requires a verified IAM identity");
    }
    const sent = nonce();
    await peer.send(encodeChallenge(sent));
    const f = await peer.next();
    if (f?.type !== FrameType.Proof) return peer.close();
    o.proofs?.push(f.proof);
    const who = await verify(f.proof, sent);
    if ("refused" in who) {
      return await refuse(peer, "identity-refused", `identity proof refused: ${who.refused}`);
    }
    if (o.allow && !o.allow(who.arn, n)) {
      return await refuse(
        peer,
        "identity-refused",
        `${who.arn} is not allowed by this agent's policy`,
      );
    }
    await peer.send(encodeWelcome({ ...baseWelcome, identity: who }));
  });
}

export async function refuse(peer: Peer, code: WireErrorCode, message: string): Promise<void> {
  await peer.send(encodeError({ code, message }));
  peer.close();
}

/**
 * The emulator (with WORLD's STS) and the client's environment: Jane's keys unless `creds`
 * says otherwise. `fn` gets a connect function for a tunnel to the stand-in on `port`.
 */
export async function withWorld(
  fn: (
    connect: (port: number, o?: Partial<TunnelOptions>) => Promise<Tunnel>,
    emu: Awaited<ReturnType<typeof startEmulator>>,
  ) => Promise<void>,
  creds: Record<string, string> = JANE,
  extraEnv: Record<string, string> = {},
): Promise<void> {
  const emu = await startEmulator({ port: 0, pacing: false, fixtures: parseFixtures(WORLD) });
  try {
    await withEnv({ ...awsEnv(emu.url), ...creds, ...extraEnv }, async () => {
      const aws = {};
      const connect = (port: number, o: Partial<TunnelOptions> = {}) =>
        Tunnel.connect({
          stripes: 1,
          agentPort: port,
          mtu: 1400,
          pingMs: 0,
          target: TARGET,
          openSession: async () =>
            PortSession.open({
              grant: await ssm.startSession(aws, {
                target: TARGET,
                documentName: "AWS-StartPortForwardingSession",
                parameters: { portNumber: [String(port)] },
              }),
              api: ssm.sessionApi(aws),
            }),
          ...o,
        });
      await fn(connect, emu);
    });
  } finally {
    await emu.close();
  }
}

/** A tun that delivers nothing and keeps what it is given. */
export function sinkTun() {
  const written: Uint8Array[] = [];
  return {
    written,
    name: "fake0",
    index: 1,
    mtu: 1400,
    read: (ms: number) =>
      new Promise<Uint8Array[]>((r) => setTimeout(() => r([]), Math.min(ms, 20))),
    write: (p: Uint8Array) => (written.push(p.slice()), true),
    close() {},
  };
}

export async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
