/**
 * The agent's identity handshake and per-principal policy (issue 15), in-process over loopback
 * TCP with a fake tun, against the emulator's STS checking signatures for real.
 */
import assert from "node:assert/strict";
import { FrameType } from "../../src/tunnel/wire.ts";
import { withAgent } from "./harness.ts";
import { hello, randomTunnelId, udpPacket, waitFor, WireClient } from "./helpers.ts";
import {
  ALICE,
  ALICE_ARN,
  BOB,
  BOB_ARN,
  connectAs,
  counted,
  policyOf,
  RULES,
  signedAs,
  withSts,
} from "./identity_support.ts";
import type { PacketAudit } from "../../agent/audit.ts";

const BUILT_IN_DENY = [
  "169.254.0.0/16",
  "127.0.0.0/8",
  "0.0.0.0/8",
  "224.0.0.0/4",
  "100.64.0.0/16",
];

Deno.test("identity: a verified client gets WELCOME.identity and its principal's policy", async () => {
  await withSts(async (emu) => {
    const config = { policy: policyOf(RULES), stsEndpoint: emu.url };
    await withAgent({ config }, async (agent) => {
      const alice = await connectAs(agent.addr.port, signedAs(emu.url, ALICE));
      assert.ok(alice.answer?.type === FrameType.Welcome, JSON.stringify(alice.answer));
      const w = alice.answer.welcome;
      assert.deepEqual(w.identity, { arn: ALICE_ARN, account: "111122223333" });
      assert.equal(w.identityUnverified, undefined);
      assert.deepEqual(w.policy, {
        allow: ["10.0.0.2/32:53", "10.0.1.0/24", "10.0.9.0/24"],
        deny: BUILT_IN_DENY,
      });

      const bob = await connectAs(agent.addr.port, signedAs(emu.url, BOB));
      assert.ok(bob.answer?.type === FrameType.Welcome, JSON.stringify(bob.answer));
      assert.deepEqual(bob.answer.welcome.identity, { arn: BOB_ARN, account: "111122223333" });
      assert.deepEqual(bob.answer.welcome.policy.allow, [
        "10.0.0.2/32:53",
        "10.0.2.0/24:443",
        "10.0.9.0/24",
      ]);

      const byArn = agent.registry.tunnels.map((t) => [t.id, t.principal?.arn]);
      assert.deepEqual(byArn, [[alice.hello.tunnelId, ALICE_ARN], [bob.hello.tunnelId, BOB_ARN]]);
      await alice.c.close();
      await bob.c.close();
    });
  });
});

Deno.test("identity: each principal's packets are judged by its rules; denied ones counted and answered", async () => {
  await withSts(async (emu) => {
    const seen: string[] = [];
    const audit: PacketAudit = {
      packet: (t, p, dir, verdict) =>
        seen.push(`${t.principal?.arn === ALICE_ARN ? "alice" : "bob"} ${dir} ${verdict} ${p[19]}`),
    };
    const config = { policy: policyOf(RULES), stsEndpoint: emu.url };
    await withAgent({ config, audit }, async (agent, tun) => {
      const alice = await connectAs(agent.addr.port, signedAs(emu.url, ALICE));
      const bob = await connectAs(agent.addr.port, signedAs(emu.url, BOB));
      assert.ok(alice.answer?.type === FrameType.Welcome && bob.answer?.type === FrameType.Welcome);
      const a = alice.answer.welcome.address, b = bob.answer.welcome.address;

      await alice.c.sendPackets(
        udpPacket(a, "10.0.1.5", 4000, 53),
        udpPacket(a, "10.0.2.5", 4001, 443),
      );
      await waitFor(() => agent.stats.denied === 1 && tun.written.length === 1, 3000, "Alice's");
      await bob.c.sendPackets(
        udpPacket(b, "10.0.2.6", 4000, 443),
        udpPacket(b, "10.0.1.6", 4001, 53),
      );
      await waitFor(() => agent.stats.denied === 2 && tun.written.length === 2, 3000, "Bob's");
      const dst = (p: Uint8Array) => p.subarray(16, 20).join(".");
      assert.deepEqual(tun.written.map(dst).sort(), ["10.0.1.5", "10.0.2.6"]);
      const [ta, tb] = agent.registry.tunnels;
      assert.deepEqual([ta.denied, tb.denied], [1, 1]);

      // Each denied packet comes back as ICMP administratively prohibited, from the agent.
      for (
        const [c, addr, deniedDst] of [[alice.c, a, "10.0.2.5"], [bob.c, b, "10.0.1.6"]] as const
      ) {
        const [icmp] = await c.packets(1);
        assert.ok(icmp, `no ICMP answer for ${addr}`);
        assert.deepEqual([icmp[9], icmp[20], icmp[21]], [1, 3, 13], "ICMP type 3 code 13");
        assert.deepEqual([icmp.subarray(12, 16).join("."), dst(icmp)], ["100.64.0.1", addr]);
        assert.equal(icmp.subarray(28 + 16, 28 + 20).join("."), deniedDst, "quotes the packet");
      }
      assert.equal(agent.stats.prohibitedSent, 2);

      tun.inject(udpPacket("10.0.1.5", a, 53, 4000, "reply"));
      assert.equal((await alice.c.packets(1)).length, 1);
      assert.deepEqual(seen, [
        "alice up allow 5",
        "alice up deny 5",
        "bob up allow 6",
        "bob up deny 6",
        "alice down allow 2",
      ]);
      await alice.c.close();
      await bob.c.close();
    });
  });
});

Deno.test("identity: a stripe must prove the tunnel's principal to join it", async () => {
  await withSts(async (emu) => {
    const config = { policy: policyOf(RULES), stsEndpoint: emu.url };
    await withAgent({ config }, async (agent) => {
      const tunnelId = randomTunnelId();
      const two = { tunnelId, stripes: 2 };
      const first = await connectAs(agent.addr.port, signedAs(emu.url, ALICE), two);
      assert.ok(first.answer?.type === FrameType.Welcome);

      const bob = await connectAs(agent.addr.port, signedAs(emu.url, BOB), { ...two, stripe: 1 });
      assert.ok(bob.answer?.type === FrameType.Error, JSON.stringify(bob.answer));
      assert.equal(bob.answer.error.code, "tunnel-mismatch");
      assert.ok(!bob.answer.error.message.includes(ALICE_ARN), "the owner is not named");
      assert.ok(!bob.answer.error.message.includes(tunnelId), "nor the full tunnel id");

      const old = await WireClient.connect(agent.addr.port);
      await old.sendHello(hello({ ...two, stripe: 1 }));
      const refused = await old.next();
      assert.ok(refused?.type === FrameType.Error && refused.error.code === "tunnel-mismatch");

      const second = await connectAs(agent.addr.port, signedAs(emu.url, ALICE), {
        ...two,
        stripe: 1,
      });
      assert.ok(second.answer?.type === FrameType.Welcome);
      assert.equal(second.answer.welcome.address, first.answer.welcome.address);
      assert.equal(agent.registry.byId(tunnelId)?.stripes.size, 2);

      // A tunnel an old client opened belongs to the first stripe that proves an identity.
      const open = hello({ stripes: 2 });
      const oldFirst = await WireClient.connect(agent.addr.port);
      await oldFirst.sendHello(open);
      assert.equal((await oldFirst.next())?.type, FrameType.Welcome);
      const binds = await connectAs(agent.addr.port, signedAs(emu.url, BOB), {
        tunnelId: open.tunnelId,
        stripes: 2,
        stripe: 1,
      });
      assert.ok(binds.answer?.type === FrameType.Welcome);
      assert.equal(agent.registry.byId(open.tunnelId)?.principal?.arn, BOB_ARN);
      for (const c of [first.c, bob.c, old, second.c, oldFirst, binds.c]) await c.close();
    });
  });
});

Deno.test("identity: requireIdentity refuses no proof, a forged or altered one, another nonce's, garbage", async () => {
  await withSts(async (emu) => {
    const sts = counted(emu.url);
    const config = {
      policy: { ...policyOf(RULES), requireIdentity: true },
      stsEndpoint: emu.url,
    };
    await withAgent({ config, sts }, async (agent) => {
      const old = await WireClient.connect(agent.addr.port);
      await old.sendHello(hello());
      const e1 = await old.next();
      assert.ok(e1?.type === FrameType.Error, JSON.stringify(e1));
      assert.equal(e1.error.code, "identity-required");
      assert.match(e1.error.message, /^this agent requires a verified IAM identity: upgrade/);
      assert.equal(await old.next(), undefined, "then EOF");

      const refusals: [string, (nonce: string) => Promise<string>, RegExp][] = [
        [
          "forged",
          signedAs(emu.url, { ...ALICE, secretAccessKey: "not-alice-secret" }),
          /^identity proof refused: STS says SignatureDoesNotMatch/,
        ],
        [
          "another nonce",
          (_nonce) => signedAs(emu.url, ALICE)("replayed-nonce-0000000000000000"),
          /^identity proof refused: it answers another nonce/,
        ],
        [
          "another action",
          async (nonce) => {
            const p = JSON.parse(await signedAs(emu.url, ALICE)(nonce));
            p.u = p.u.replace("Action=GetCallerIdentity&", "Action=GetSessionToken&");
            return JSON.stringify(p);
          },
          /^identity proof refused: its Action is "GetSessionToken", not GetCallerIdentity$/,
        ],
        ["garbage", () => Promise.resolve("{not json"), /^identity proof refused: it is not JSON$/],
        [
          "for another host",
          signedAs("http://127.0.0.1:9", ALICE),
          /^identity proof refused: its url is not https/,
        ],
      ];
      for (const [what, prove, message] of refusals) {
        const r = await connectAs(agent.addr.port, prove);
        assert.ok(r.answer?.type === FrameType.Error, `${what}: ${JSON.stringify(r.answer)}`);
        assert.equal(r.answer.error.code, "identity-refused", what);
        assert.match(r.answer.error.message, message, what);
        assert.equal(await r.c.next(), undefined, `${what}: then EOF`);
        await r.c.close();
      }
      assert.equal(sts.calls, 1, "only the forged proof was worth asking STS about");
      assert.equal(agent.registry.tunnels.length, 0, "no address was taken");

      const alice = await connectAs(agent.addr.port, signedAs(emu.url, ALICE));
      assert.ok(alice.answer?.type === FrameType.Welcome);
      await old.close();
      await alice.c.close();
    });
  });
});

Deno.test("identity: an old client still works with the default config", async () => {
  await withAgent({}, async (agent, tun) => {
    const c = await WireClient.connect(agent.addr.port);
    await c.sendHello(hello());
    const w = await c.next();
    assert.ok(w?.type === FrameType.Welcome);
    assert.equal("identity" in w.welcome || "identityUnverified" in w.welcome, false);
    await c.sendPackets(udpPacket(w.welcome.address, "10.1.2.3", 4000, 53));
    await waitFor(() => tun.written.length === 1, 3000, "the packet on the tun");
    assert.equal(agent.registry.tunnels[0].principal, undefined);
    await c.close();
  });
});

Deno.test("identity: the hello timeout runs until the PROOF", async () => {
  await withAgent({ helloTimeoutMs: 200, config: { policy: policyOf(RULES) } }, async (agent) => {
    const c = await WireClient.connect(agent.addr.port);
    await c.sendHello(hello({ features: ["identity"] }));
    assert.equal((await c.next())?.type, FrameType.Challenge);
    const e = await c.next(2000);
    assert.ok(e?.type === FrameType.Error, JSON.stringify(e));
    assert.deepEqual([e.error.code, e.error.message], ["protocol", "no PROOF received in time"]);
    await c.close();
  });
});

Deno.test("identity: an agent whose rules name nobody never challenges, so never waits on STS", async () => {
  const sts = counted("http://127.0.0.1:9"); // would fail if ever asked
  const none = policyOf("policy:\n  rules:\n    - allow: [10.0.9.0/24]\n");
  await withAgent({ config: { policy: none }, sts }, async (agent) => {
    const c = await WireClient.connect(agent.addr.port);
    await c.sendHello(hello({ features: ["identity"] }));
    const w = await c.next();
    assert.ok(w?.type === FrameType.Welcome, JSON.stringify(w));
    assert.equal(w.welcome.identity, undefined);
    assert.equal(w.welcome.identityUnverified, undefined, "an old agent's answer: not checked");
    assert.equal(sts.calls, 0);
    await c.close();
  });
  // The same rules with an audit trail: who it was matters, so the client is challenged.
  await withAgent({ config: { policy: none }, sts, audit: { packet() {} } }, async (agent) => {
    const c = await WireClient.connect(agent.addr.port);
    await c.sendHello(hello({ features: ["identity"] }));
    assert.equal((await c.next())?.type, FrameType.Challenge);
    await c.close();
  });
});
