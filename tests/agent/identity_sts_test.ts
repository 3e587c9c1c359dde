/**
 * The agent and STS (issue 15): a configured endpoint gets the proof under the Host the client
 * signed; an unreachable STS lets stripes pass unverified (or refuses them under
 * requireIdentity) without every stripe waiting for it; rules reloaded while tunnels run;
 * principals in the status file.
 */
import assert from "node:assert/strict";
import { rulesOf } from "../../agent/rules.ts";
import { FrameType } from "../../src/tunnel/wire.ts";
import { summary } from "../../agent/status_cli.ts";
import { withAgent } from "./harness.ts";
import { hello, randomTunnelId, udpPacket, waitFor, WireClient } from "./helpers.ts";
import {
  ALICE,
  ALICE_ARN,
  BOB,
  connectAs,
  counted,
  policyOf,
  RULES,
  signedAs,
  StsRelay,
  withSts,
} from "./identity_support.ts";

const REGIONAL = "https://sts.eu-west-1.amazonaws.com";

Deno.test("identity: stsEndpoint and AWS_ENDPOINT_URL_STS get the proof under the signed Host", async () => {
  await withSts(async (emu) => {
    const relay = new StsRelay({ hostname: "127.0.0.1", port: emu.port });
    try {
      // Signed for STS's public name, sent to the endpoint: the emulator behind the relay checks
      // the signature against the Host it receives, so a rewritten Host would be refused.
      const viaConfig = { policy: policyOf(RULES), stsEndpoint: relay.url };
      await withAgent({ config: viaConfig }, async (agent) => {
        const r = await connectAs(agent.addr.port, signedAs(REGIONAL, ALICE));
        assert.ok(r.answer?.type === FrameType.Welcome, JSON.stringify(r.answer));
        assert.equal(r.answer.welcome.identity?.arn, ALICE_ARN);
        await r.c.close();
      });
      assert.deepEqual(relay.hosts, ["sts.eu-west-1.amazonaws.com"]);
      // A GET of the signed query with the nonce header and Host, and no body to frame or send.
      const [line, ...headers] = relay.heads[0].replace(/\r\n\r\n$/, "").split("\r\n");
      assert.match(
        line,
        /^GET \/\?Action=GetCallerIdentity&Version=2011-06-15&[^ ]*X-Amz-SignedHeaders=host%3Bx-ssm-proxy-nonce&[^ ]* HTTP\/1\.1$/,
      );
      assert.deepEqual(
        headers.map((h) => h.slice(0, h.indexOf(":")).toLowerCase()).sort(),
        ["connection", "host", "x-ssm-proxy-nonce"],
      );
      assert.ok(relay.heads[0].endsWith("\r\n\r\n"), "nothing after the head");

      const env = { AWS_ENDPOINT_URL_STS: relay.url };
      await withAgent({ config: { policy: policyOf(RULES) }, env }, async (agent) => {
        const r = await connectAs(agent.addr.port, signedAs(REGIONAL, ALICE));
        assert.ok(r.answer?.type === FrameType.Welcome, JSON.stringify(r.answer));
        assert.equal(r.answer.welcome.identity?.arn, ALICE_ARN);
        await r.c.close();
      });
      assert.deepEqual(relay.hosts, [
        "sts.eu-west-1.amazonaws.com",
        "sts.eu-west-1.amazonaws.com",
      ]);
    } finally {
      await relay.close();
    }
  });
});

/** How long one stripe's handshake takes, and its answer. */
async function timed(port: number, prove: ReturnType<typeof signedAs>) {
  const t0 = performance.now();
  const r = await connectAs(port, prove);
  return { ...r, ms: performance.now() - t0 };
}

Deno.test("identity: STS unreachable: unverified without requireIdentity; no stripe waits twice", async () => {
  await withSts(async (emu) => {
    const relay = new StsRelay({ hostname: "127.0.0.1", port: emu.port });
    relay.mode = "hang";
    try {
      const prove = signedAs(relay.url, ALICE);
      for (const requireIdentity of [false, true]) {
        const sts = counted(relay.url, 400);
        const log: string[] = [];
        const config = {
          policy: { ...policyOf(RULES), requireIdentity },
          stsEndpoint: relay.url,
        };
        await withAgent({ config, sts, log: (l) => log.push(l) }, async (agent) => {
          const first = await timed(agent.addr.port, prove);
          const second = await timed(agent.addr.port, prove);
          assert.ok(first.ms >= 350, `the first stripe waited for STS (${first.ms} ms)`);
          // The second is answered from the remembered outage: STS is not asked again.
          assert.equal(sts.calls, 1, `the second stripe asked STS too (${second.ms} ms)`);
          for (const r of [first, second]) {
            if (requireIdentity) {
              assert.ok(r.answer?.type === FrameType.Error, JSON.stringify(r.answer));
              assert.equal(r.answer.error.code, "identity-refused");
              assert.match(r.answer.error.message, /^the agent could not reach STS .* try again/);
            } else {
              assert.ok(r.answer?.type === FrameType.Welcome, JSON.stringify(r.answer));
              const w = r.answer.welcome;
              assert.equal(w.identity, undefined);
              assert.match(w.identityUnverified ?? "", /^could not reach STS at 127\.0\.0\.1:\d+/);
              assert.deepEqual(
                w.policy.allow,
                ["10.0.0.2/32:53", "10.0.9.0/24"],
                "an unverified tunnel's rules (and DNS)",
              );
            }
            await r.c.close();
          }
          const said = log.filter((l) => l.startsWith("could not reach STS"));
          assert.equal(said.length, 1, log.join("\n"));
          assert.equal(agent.registry.tunnels.length, requireIdentity ? 0 : 2);
        });
      }
    } finally {
      await relay.close();
    }
  });
});

Deno.test("identity: STS down: a verified tunnel's own stripes rejoin on its key; nobody else gets in", async () => {
  await withSts(async (emu) => {
    const relay = new StsRelay({ hostname: "127.0.0.1", port: emu.port });
    try {
      const sts = counted(relay.url, 400);
      const log: string[] = [];
      const config = {
        policy: { ...policyOf(RULES), requireIdentity: true },
        stsEndpoint: relay.url,
      };
      await withAgent({ config, sts, log: (l) => log.push(l) }, async (agent) => {
        const tunnelId = randomTunnelId();
        const stripe = (i: number) => ({ tunnelId, stripe: i, stripes: 3 });
        const first = await connectAs(agent.addr.port, signedAs(relay.url, ALICE), stripe(0));
        assert.ok(first.answer?.type === FrameType.Welcome, JSON.stringify(first.answer));

        relay.mode = "hang"; // STS stops answering
        const healed = await connectAs(agent.addr.port, signedAs(relay.url, ALICE), stripe(1));
        assert.ok(healed.answer?.type === FrameType.Welcome, JSON.stringify(healed.answer));
        assert.deepEqual(healed.answer.welcome.identity, {
          arn: ALICE_ARN,
          account: "111122223333",
        });
        assert.equal(healed.answer.welcome.address, first.answer.welcome.address);
        assert.ok(log.some((l) => l.includes("rejoins on its verified key")), log.join("\n"));

        // Bob knows the tunnel id but signs with his own key: not the owner, not let in.
        const bob = await connectAs(agent.addr.port, signedAs(relay.url, BOB), stripe(2));
        assert.ok(bob.answer?.type === FrameType.Error, JSON.stringify(bob.answer));
        assert.equal(bob.answer.error.code, "identity-refused");
        // Alice's key opens no new tunnel while her identity cannot be checked.
        const fresh = await connectAs(agent.addr.port, signedAs(relay.url, ALICE));
        assert.ok(fresh.answer?.type === FrameType.Error, JSON.stringify(fresh.answer));
        assert.match(fresh.answer.error.message, /could not reach STS .* try again later$/);
        assert.equal(agent.registry.tunnels.length, 1);
        for (const c of [first.c, healed.c, bob.c, fresh.c]) await c.close();
      });
    } finally {
      await relay.close();
    }
  });
});

Deno.test("identity: setPolicy judges live tunnels by the new rules at once", async () => {
  await withSts(async (emu) => {
    const config = { policy: policyOf(RULES), stsEndpoint: emu.url };
    await withAgent({ config }, async (agent, tun) => {
      const alice = await connectAs(agent.addr.port, signedAs(emu.url, ALICE));
      assert.ok(alice.answer?.type === FrameType.Welcome);
      const old = await WireClient.connect(agent.addr.port);
      await old.sendHello(hello());
      const w = await old.next();
      assert.ok(w?.type === FrameType.Welcome);
      const a = alice.answer.welcome.address, o = w.welcome.address;
      const toNew = () => udpPacket(a, "10.0.3.5", 4000, 53);
      const toOpen = () => udpPacket(o, "10.0.9.5", 4000, 53);

      await alice.c.sendPackets(toNew());
      await old.sendPackets(toOpen());
      await waitFor(() => agent.stats.denied === 1 && tun.written.length === 1, 3000, "before");

      agent.registry.setPolicy({
        ...rulesOf(policyOf(`
policy:
  rules:
    - principals: { permissionSets: [Developer] }
      allow: [10.0.3.0/24]
    - allow: [10.0.9.0/24]
`)),
        requireIdentity: true,
      });
      await alice.c.sendPackets(toNew());
      await old.sendPackets(toOpen());
      await waitFor(() => agent.stats.denied === 2 && tun.written.length === 2, 3000, "after");
      const dst = (p: Uint8Array) => p.subarray(16, 20).join(".");
      assert.deepEqual(tun.written.map(dst), ["10.0.9.5", "10.0.3.5"]);
      assert.deepEqual(agent.registry.tunnels.map((t) => t.denied), [1, 1]);
      await alice.c.close();
      await old.close();
    });
  });
});

Deno.test("identity: status.json names principals, counts denials, shows no full tunnel id", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await withSts(async (emu) => {
      const log: string[] = [];
      const config = { policy: policyOf(RULES), stsEndpoint: emu.url, runtimeDir: dir };
      await withAgent({ config, log: (l) => log.push(l) }, async (agent) => {
        const alice = await connectAs(agent.addr.port, signedAs(emu.url, ALICE));
        assert.ok(alice.answer?.type === FrameType.Welcome);
        const old = await WireClient.connect(agent.addr.port);
        const oldHello = hello();
        await old.sendHello(oldHello);
        assert.equal((await old.next())?.type, FrameType.Welcome);
        await alice.c.sendPackets(udpPacket(alice.answer.welcome.address, "10.0.2.5", 1, 2));
        await waitFor(() => agent.stats.denied === 1, 3000, "the denial");

        const path = `${dir}/status.json`;
        let text = "";
        await waitFor(
          () => {
            text = Deno.readTextFileSync(path);
            return JSON.parse(text).counters.denied === 1;
          },
          5000,
          "status.json to count it",
        );
        const s = JSON.parse(text);
        assert.deepEqual(
          s.tunnels.map((t: Record<string, unknown>) => [t.id, t.principal, t.denied]),
          [
            [alice.hello.tunnelId.slice(0, 8), ALICE_ARN, 1],
            [oldHello.tunnelId.slice(0, 8), null, 0],
          ],
        );
        assert.equal((await Deno.stat(path)).mode! & 0o777, 0o644);
        for (const id of [alice.hello.tunnelId, oldHello.tunnelId]) {
          assert.ok(!text.includes(id), "no full tunnel id in status.json");
          assert.ok(!log.some((l) => l.includes(id)), `no full tunnel id in the log: ${log}`);
        }
        const lines = summary(s).split("\n");
        assert.ok(
          lines.includes(`principals: ${ALICE_ARN} (1 tunnel, denied 1), unverified (1 tunnel)`),
          lines.join("\n"),
        );
        assert.match(lines.find((l) => l.includes(ALICE_ARN) && l.startsWith("  "))!, /denied 1/);
        await alice.c.close();
        await old.close();
      });
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
