/**
 * The client's identity handshake (issue 15) against a stand-in agent (standin_agent.ts) over
 * real Port sessions through the emulator, whose STS checks SigV4 for real: CHALLENGE answered
 * with a proof bound to its nonce, refusals in one line with ExitCode.Auth and no healing loop,
 * an old agent that never challenges, denials counted on the way to the tun.
 */
import assert from "node:assert/strict";
import { ExitCode, UserError } from "../../src/errors.ts";
import { identityProver } from "../../src/start/prover.ts";
import { IdentityRefused, type Prover } from "../../src/tunnel/identity.ts";
import { encodeChallenge, encodePackets, encodeWelcome, FrameType } from "../../src/tunnel/wire.ts";
import {
  baseWelcome,
  checkingAgent,
  JANE,
  JANE_ARN,
  nonce,
  type Peer,
  sinkTun,
  standIn,
  TARGET,
  until,
  verify,
  withWorld,
} from "./standin_agent.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, sanitizeOps: false, sanitizeResources: false, fn });

/** Expects `p` to fail with one line matching `re`, of ExitCode.Auth. */
async function refusedWith(p: Promise<unknown>, re: RegExp): Promise<UserError> {
  const e = await p.then(() => assert.fail("expected a refusal"), (e) => e);
  assert.ok(e instanceof UserError, `not a UserError: ${(e as Error).stack}`);
  assert.match(e.message, re);
  assert.ok(!e.message.includes("\n"), `more than one line: ${e.message}`);
  assert.equal(e.exitCode, ExitCode.Auth);
  return e;
}

/** Waits for the client's first PING: its tunnel is then running and delivering to the tun. */
async function untilRunning(peer: Peer): Promise<void> {
  for (let f = await peer.next(); f; f = await peer.next()) {
    if (f.type === FrameType.Ping) return;
  }
}

/** ICMP "administratively prohibited" from the agent, quoting a TCP SYN to 10.0.9.5:5432. */
function prohibited(): Uint8Array {
  const outer = [0x45, 0, 0, 56, 0, 0, 0, 0, 64, 1, 0, 0, 100, 64, 0, 1, 100, 64, 0, 2];
  const icmp = [3, 13, 0, 0, 0, 0, 0, 0];
  const quoted = [0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, 6, 0, 0, 100, 64, 0, 2, 10, 0, 9, 5];
  const tcp = [0xc3, 0x50, 0x15, 0x38, 0, 0, 0, 1];
  return new Uint8Array([...outer, ...icmp, ...quoted, ...tcp]);
}

/** A UDP packet from 10.0.0.7 back to the client: not a denial. */
function reply(): Uint8Array {
  const ip = [0x45, 0, 0, 29, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 7, 100, 64, 0, 2];
  return new Uint8Array([...ip, 0, 53, 0xc3, 0x50, 0, 9, 0, 0, 0x61]);
}

test("identity: each stripe answers its CHALLENGE with a proof STS verifies for that nonce", async () => {
  const proofs: string[] = [];
  const agent = checkingAgent({ proofs });
  try {
    await withWorld(async (connect) => {
      const t = await connect(agent.port, { stripes: 2, prover: identityProver({}) });
      try {
        assert.equal(agent.hellos.length, 2);
        for (const h of agent.hellos) assert.ok(h.features.includes("identity"), h.features.join());
        assert.equal(t.identity(), JANE_ARN);
        assert.deepEqual(t.welcome.identity, { arn: JANE_ARN, account: "210987654321" });
        assert.equal(proofs.length, 2);
        for (const p of proofs) {
          const { m, u, h, ...rest } = JSON.parse(p);
          assert.deepEqual(rest, {}, "nothing but m, u and h");
          assert.equal(m, "GET");
          assert.deepEqual(Object.keys(h), ["x-ssm-proxy-nonce"]);
          const q = new URL(u).searchParams;
          assert.equal(q.get("Action"), "GetCallerIdentity");
          assert.equal(q.get("X-Amz-SignedHeaders"), "host;x-ssm-proxy-nonce");
        }
        const nonces = proofs.map((p) => JSON.parse(p).h["x-ssm-proxy-nonce"]);
        assert.notEqual(nonces[0], nonces[1], "one proof answered both challenges");
        // The nonce is signed: the same proof for another nonce is not Jane's to STS.
        const other = nonce();
        const replayed = JSON.parse(proofs[0]);
        replayed.h["x-ssm-proxy-nonce"] = other;
        const r = await verify(JSON.stringify(replayed), other);
        assert.ok("refused" in r, `a proof moved to another nonce passed: ${JSON.stringify(r)}`);
        assert.match(r.refused, /^STS says SignatureDoesNotMatch$/);
        // The hello carries no credentials, nor does the proof.
        for (const p of proofs) assert.ok(!p.includes(JANE.AWS_SECRET_ACCESS_KEY));
      } finally {
        await t.close();
      }
    });
  } finally {
    await agent.close();
  }
});

test("identity: a forged proof (a secret STS does not know) is refused in one line", async () => {
  const agent = checkingAgent();
  try {
    await withWorld(async (connect) => {
      const e = await refusedWith(
        connect(agent.port, { prover: identityProver({}) }),
        new RegExp(
          `^ssm-proxy-agent on ${TARGET} refused this client's IAM identity: identity proof refused: STS says \\w+; use credentials its policy allows`,
        ),
      );
      assert.ok(e instanceof IdentityRefused);
      assert.equal(agent.hellos.length, 1);
    }, { ...JANE, AWS_SECRET_ACCESS_KEY: "not-jane-secret" });
  } finally {
    await agent.close();
  }
});

test("identity: an identity the agent's policy refuses ends start with ExitCode.Auth", async () => {
  const agent = checkingAgent({ allow: () => false });
  try {
    await withWorld(async (connect) => {
      await refusedWith(
        connect(agent.port, { stripes: 2, prover: identityProver({}) }),
        new RegExp(`refused this client's IAM identity: ${JANE_ARN} is not allowed`),
      );
      // The first stripe's refusal ends the attempt: no second session tries again.
      assert.equal(agent.hellos.length, 1);
    });
  } finally {
    await agent.close();
  }
});

test("identity: an agent that requires an identity refuses a client without a prover", async () => {
  const agent = checkingAgent();
  try {
    await withWorld(async (connect) => {
      await refusedWith(
        connect(agent.port),
        new RegExp(
          `^ssm-proxy-agent on ${TARGET} requires a verified IAM identity: this agent requires`,
        ),
      );
      assert.ok(!agent.hellos[0].features.includes("identity"));
    });
  } finally {
    await agent.close();
  }
});

test("identity: an old agent answers WELCOME at once; the prover is never asked", async () => {
  const agent = standIn(async (peer) => {
    await peer.send(encodeWelcome(baseWelcome));
    await untilRunning(peer);
    await peer.send(encodePackets([prohibited(), reply()]));
  });
  let asked = 0;
  const prover: Prover = () => (asked++, Promise.reject(new Error("must not be asked")));
  try {
    await withWorld(async (connect) => {
      const t = await connect(agent.port, { prover });
      const tun = sinkTun();
      const running = t.run(tun);
      try {
        assert.equal(t.identity(), "agent does not check identities");
        await until("both packets on the tun", () => tun.written.length === 2);
        assert.equal(asked, 0);
        const st = t.stats();
        assert.equal(st.denied, 1, "the reply is not a denial");
        assert.equal(st.deniedLast, "10.0.9.5:5432/tcp");
      } finally {
        await t.close();
        await running;
      }
    });
  } finally {
    await agent.close();
  }
});

test("identity: a WELCOME saying the identity could not be checked is shown as such", async () => {
  const agent = standIn(async (peer) => {
    await peer.send(encodeChallenge(nonce()));
    if ((await peer.next())?.type !== FrameType.Proof) return;
    await peer.send(encodeWelcome({ ...baseWelcome, identityUnverified: "STS did not answer" }));
  });
  try {
    await withWorld(async (connect) => {
      const t = await connect(agent.port, { prover: identityProver({}) });
      assert.equal(t.identity(), "not verified: STS did not answer");
      await t.close();
    });
  } finally {
    await agent.close();
  }
});

test("identity: a CHALLENGE to a client that offered no proof is a protocol error", async () => {
  const agent = standIn(async (peer) => await peer.send(encodeChallenge(nonce())));
  try {
    await withWorld(async (connect) => {
      await assert.rejects(
        connect(agent.port),
        /^UserError: protocol error from the agent: an identity CHALLENGE though this client offered no proof$/,
      );
    });
  } finally {
    await agent.close();
  }
});

test("identity: a CHALLENGE after the WELCOME takes the stripe down for good", async () => {
  const agent = standIn(async (peer) => {
    await peer.send(encodeChallenge(nonce()));
    if ((await peer.next())?.type !== FrameType.Proof) return;
    await peer.send(encodeWelcome(baseWelcome));
    await untilRunning(peer);
    await peer.send(encodeChallenge(nonce()));
  });
  try {
    await withWorld(async (connect) => {
      const t = await connect(agent.port, { prover: identityProver({}) });
      const running = t.run(sinkTun());
      try {
        assert.match(await t.ended, /an identity CHALLENGE after the handshake/);
        assert.equal(agent.hellos.length, 1, "a protocol error is not healed");
      } finally {
        await t.close();
        await running;
      }
    });
  } finally {
    await agent.close();
  }
});

test("identity: a prover that cannot sign ends the handshake in one line", async () => {
  const agent = checkingAgent();
  try {
    await withWorld(async (connect) => {
      await refusedWith(
        connect(agent.port, { prover: () => Promise.reject(new Error("no credentials")) }),
        /^could not sign the identity proof ssm-proxy-agent asked for: no credentials$/,
      );
    });
  } finally {
    await agent.close();
  }
});
