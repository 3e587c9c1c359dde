/**
 * The identity handshake from a client's side (issue 15), against the emulator's STS, which
 * checks SigV4 for real: credentials, proofs, a stripe that answers the CHALLENGE, and a TCP
 * relay standing in for an STS endpoint that records each request's Host header.
 */
import { buildProof, encodeProof } from "../../src/aws/identity_proof.ts";
import type { StaticCredentials } from "../../src/eks/token.ts";
import { parseFixtures } from "../../src/emulator/fixtures.ts";
import { type Emulator, startEmulator } from "../../src/emulator/server.ts";
import {
  encodeProofFrame,
  FEATURE_IDENTITY,
  type Frame,
  FrameType,
  type Hello,
} from "../../src/tunnel/wire.ts";
import { parseConfig } from "../../agent/config.ts";
import type { StsCall } from "../../agent/identity.ts";
import { stsCall, stsRouting } from "../../agent/identity_sts.ts";
import type { PolicyConfig } from "../../agent/rules.ts";
import { withEnv } from "../support/aws_env.ts";
import { hello, WireClient } from "./helpers.ts";

export const ALICE_ARN =
  "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Developer_0123456789abcdef/alice";
export const BOB_ARN = "arn:aws:iam::111122223333:user/bob";
export const ALICE: StaticCredentials = {
  accessKeyId: "ASIAALICE00000000001",
  secretAccessKey: "alice-secret",
  sessionToken: "alice-session-token",
};
export const BOB: StaticCredentials = {
  accessKeyId: "AKIABOB0000000000001",
  secretAccessKey: "bob-secret",
};

const WORLD = `
identities:
  - accessKeyId: ${ALICE.accessKeyId}
    secretAccessKey: ${ALICE.secretAccessKey}
    sessionToken: ${ALICE.sessionToken}
    arn: ${ALICE_ARN}
    userId: AROAALICE0000000000001:alice
  - accessKeyId: ${BOB.accessKeyId}
    secretAccessKey: ${BOB.secretAccessKey}
    arn: ${BOB_ARN}
    userId: AIDABOB00000000000001
`;

/** Bob may reach 10.0.2.0/24 port 443, Alice (Developer) 10.0.1.0/24; everyone 10.0.9.0/24. */
export const RULES = `
policy:
  rules:
    - principals: { users: [bob] }
      allow: [10.0.2.0/24:443]
    - principals: { permissionSets: [Developer] }
      allow: [10.0.1.0/24]
    - allow: [10.0.9.0/24]
`;

export const policyOf = (yaml: string): PolicyConfig => parseConfig(yaml).policy;

/** The real STS call for `endpoint`, counting its calls. */
export function counted(endpoint: string, timeoutMs?: number): StsCall & { calls: number } {
  const real = stsCall(stsRouting(endpoint, {}), timeoutMs);
  const f = ((proof, nonce) => {
    f.calls++;
    return real(proof, nonce);
  }) as StsCall & { calls: number };
  f.calls = 0;
  return f;
}

/** The emulator with Alice's and Bob's keys. */
export async function withSts(fn: (emu: Emulator) => Promise<void>): Promise<void> {
  const emu = await startEmulator({ port: 0, pacing: false, fixtures: parseFixtures(WORLD) });
  try {
    await fn(emu);
  } finally {
    await emu.close();
  }
}

/** Answers a CHALLENGE's nonce with the PROOF frame's text. */
export type Prover = (nonce: string) => Promise<string>;

/** Proofs signed as `creds` for STS at `origin`, as the client builds them. */
export function signedAs(origin: string, creds: StaticCredentials): Prover {
  return async (nonce) =>
    encodeProof(
      await withEnv(
        { AWS_ENDPOINT_URL_STS: origin, AWS_EC2_METADATA_DISABLED: "true" },
        () => buildProof({ aws: { region: "eu-west-1" }, nonce, credentials: creds }),
      ),
    );
}

/**
 * A stripe offering its identity: HELLO, CHALLENGE, PROOF by `prove`, then the agent's answer
 * (WELCOME or ERROR).
 */
export async function connectAs(
  port: number,
  prove: Prover,
  over: Partial<Hello> = {},
): Promise<{ c: WireClient; answer: Frame | undefined; hello: Hello }> {
  const c = await WireClient.connect(port);
  const h = hello({ features: [FEATURE_IDENTITY], ...over });
  await c.sendHello(h);
  const challenge = await c.next();
  if (challenge?.type !== FrameType.Challenge) {
    await c.close();
    throw new Error(`expected CHALLENGE, got ${JSON.stringify(challenge)}`);
  }
  await c.send(encodeProofFrame(await prove(challenge.nonce)));
  return { c, answer: await c.next(5000), hello: h };
}

/**
 * A TCP relay in front of the emulator, as an STS endpoint: it records the Host header of each
 * request, and its head (request line and headers), and passes the bytes on untouched, so the
 * emulator checks the signature against the Host the agent sent. In "hang" mode it accepts and
 * never answers (an unreachable STS).
 */
export class StsRelay {
  readonly hosts: string[] = [];
  /** Each request's first bytes as received: its head, and any body that came with it. */
  readonly heads: string[] = [];
  mode: "forward" | "hang" = "forward";
  readonly #listener: Deno.Listener;
  readonly #conns = new Set<Deno.Conn>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #accepting: Promise<void>;

  constructor(readonly upstream: { hostname: string; port: number }) {
    const listener = this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = (async () => {
      try {
        for await (const conn of listener) {
          const t = this.#serve(conn);
          this.#tasks.add(t);
          t.finally(() => this.#tasks.delete(t));
        }
      } catch { /* closed */ }
    })();
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#listener.addr as Deno.NetAddr).port}`;
  }

  async close(): Promise<void> {
    this.#listener.close();
    await this.#accepting;
    for (const c of this.#conns) close(c);
    await Promise.all([...this.#tasks]);
  }

  async #serve(conn: Deno.Conn): Promise<void> {
    this.#conns.add(conn);
    let up: Deno.Conn | undefined;
    try {
      if (this.mode === "hang") {
        while (await conn.read(new Uint8Array(4096)) !== null) { /* never answer */ }
        return;
      }
      let head = new Uint8Array(0);
      while (!new TextDecoder().decode(head).includes("\r\n\r\n")) {
        const buf = new Uint8Array(4096);
        const n = await conn.read(buf);
        if (n === null) return;
        head = new Uint8Array([...head, ...buf.subarray(0, n)]);
      }
      const text = new TextDecoder().decode(head);
      const host = /\r\nhost: *([^\r\n]*)/i.exec(text)?.[1];
      this.hosts.push(host ?? "(none)");
      this.heads.push(text);
      up = await Deno.connect(this.upstream);
      this.#conns.add(up);
      await writeAll(up, head);
      const toUpstream = pipe(conn, up).catch(() => {});
      await pipe(up, conn).catch(() => {});
      close(conn);
      close(up);
      await toUpstream;
    } catch {
      /* either side went away */
    } finally {
      close(conn);
      this.#conns.delete(conn);
      if (up) {
        close(up);
        this.#conns.delete(up);
      }
    }
  }
}

async function pipe(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(16384);
  for (let n = await from.read(buf); n !== null; n = await from.read(buf)) {
    await writeAll(to, buf.subarray(0, n));
  }
}

async function writeAll(to: Deno.Conn, b: Uint8Array): Promise<void> {
  for (let o = 0; o < b.length;) o += await to.write(b.subarray(o));
}

function close(c: Deno.Conn): void {
  try {
    c.close();
  } catch { /* already closed */ }
}
