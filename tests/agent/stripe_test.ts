/** The agent's stripe handling over real loopback TCP, with an in-memory tun. */
import assert from "node:assert/strict";
import { encodeHello, encodePing, FrameType } from "../../src/tunnel/wire.ts";
import { pickStripe } from "../../src/tunnel/packet.ts";
import { VERSION } from "../../src/version.ts";
import { withAgent } from "./harness.ts";
import { hello, udpPacket, waitFor, WireClient } from "./helpers.ts";

/** Connect one stripe and complete the handshake; returns the client and its address. */
async function join(port: number, h = hello()) {
  const c = await WireClient.connect(port);
  await c.sendHello(h);
  const f = await c.next();
  assert.equal(f?.type, FrameType.Welcome, `expected WELCOME, got ${JSON.stringify(f)}`);
  return { c, address: f.type === FrameType.Welcome ? f.welcome.address : "", hello: h };
}

Deno.test("stripe: HELLO gets a WELCOME with address, peer, mtu, resolver, policy, version", async () => {
  await withAgent({}, async (agent, tun) => {
    const c = await WireClient.connect(agent.addr.port);
    await c.sendHello(hello({ mtu: 1300 }));
    const f = await c.next();
    assert.ok(f?.type === FrameType.Welcome);
    assert.deepEqual(f.welcome, {
      version: 1,
      address: "100.64.0.2",
      peer: "100.64.0.1",
      mtu: 1300,
      resolver: "10.0.0.2",
      policy: {
        allow: ["0.0.0.0/0"],
        deny: ["169.254.0.0/16", "127.0.0.0/8", "0.0.0.0/8", "224.0.0.0/4", "100.64.0.0/16"],
      },
      agent: `ssm-proxy-agent ${VERSION}`,
    });
    assert.deepEqual(
      [tun.cfg.address, tun.cfg.peer, tun.cfg.prefixLength, tun.cfg.mtu],
      ["100.64.0.1", "100.64.0.1", 16, 1400],
    );
    await c.send(encodePing(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])));
    const pong = await c.next();
    assert.ok(pong?.type === FrameType.Pong);
    assert.deepEqual([...pong.nonce], [1, 2, 3, 4, 5, 6, 7, 8]);
    await c.close();
  });
});

Deno.test("stripe: an unknown version gets ERROR unsupported-version listing ours, then close", async () => {
  await withAgent({}, async (agent) => {
    const c = await WireClient.connect(agent.addr.port);
    await c.sendHello(hello({ versions: [7, 9] }));
    const f = await c.next();
    assert.ok(f?.type === FrameType.Error);
    assert.equal(f.error.code, "unsupported-version");
    assert.deepEqual(f.error.versions, [1]);
    assert.equal(await c.next(), undefined, "then EOF");
    await c.close();
    assert.equal(agent.registry.tunnels.length, 0, "no address was taken");
  });
});

Deno.test("stripe: garbage and malformed frames close that stripe only", async () => {
  await withAgent({}, async (agent, tun) => {
    const good = await join(agent.addr.port);

    const garbage = await WireClient.connect(agent.addr.port);
    await garbage.send(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    const e1 = await garbage.next();
    assert.ok(e1?.type === FrameType.Error && e1.error.code === "bad-hello");
    assert.equal(await garbage.next(), undefined);

    const badJson = await WireClient.connect(agent.addr.port);
    await badJson.send(new Uint8Array([1, 0, 0, 3, 0x7b, 0x7b, 0x7d]));
    const e2 = await badJson.next();
    assert.ok(e2?.type === FrameType.Error && e2.error.code === "bad-hello");

    // A joined stripe that then sends a PACKETS frame whose inner length overruns it.
    const broken = await join(agent.addr.port);
    await broken.c.send(new Uint8Array([3, 0, 0, 4, 0x05, 0xdc, 0x45, 0x00]));
    const e3 = await broken.c.next();
    assert.ok(e3?.type === FrameType.Error && e3.error.code === "protocol");
    assert.equal(await broken.c.next(), undefined);

    // The first tunnel never noticed.
    await good.c.sendPackets(udpPacket(good.address, "10.1.2.3", 4000, 53));
    await waitFor(() => tun.written.length === 1, 3000, "good packet written");
    tun.inject(udpPacket("10.1.2.3", good.address, 53, 4000, "reply"));
    assert.equal((await good.c.packets(1)).length, 1);
    assert.ok(agent.stats.protocolErrors >= 3);
    for (const c of [good.c, garbage, badJson, broken.c]) await c.close();
  });
});

Deno.test("stripe: no HELLO within the timeout → ERROR and close", async () => {
  await withAgent({ helloTimeoutMs: 150 }, async (agent) => {
    const c = await WireClient.connect(agent.addr.port);
    const f = await c.next(2000);
    assert.ok(f?.type === FrameType.Error && f.error.code === "protocol");
    assert.equal(await c.next(), undefined);
    await c.close();
  });
});

Deno.test("stripe: spoofed sources and denied destinations are dropped and counted", async () => {
  await withAgent({}, async (agent, tun) => {
    const { c, address } = await join(agent.addr.port);
    await c.sendPackets(
      udpPacket("100.64.0.99", "10.1.2.3", 1, 2), // another tunnel's address
      udpPacket("10.0.0.5", "10.1.2.3", 1, 2), // a VPC address
      udpPacket(address, "169.254.169.254", 1, 80), // instance metadata
      udpPacket(address, "100.64.0.1", 1, 2), // the pool
      new Uint8Array([0x60, 0, 0, 0]), // not IPv4
      udpPacket(address, "10.1.2.3", 1, 2, "fine"),
    );
    await waitFor(() => agent.stats.packetsIn === 1, 3000, "the good packet");
    assert.equal(tun.written.length, 1);
    assert.equal(tun.written[0][19], 3);
    assert.deepEqual(
      [agent.stats.spoofed, agent.stats.denied, agent.stats.notIpv4],
      [2, 2, 1],
    );
    await c.close();
  });
});

Deno.test("stripe: packets from the tun go back to the right tunnel", async () => {
  await withAgent({}, async (agent, tun) => {
    const a = await join(agent.addr.port);
    const b = await join(agent.addr.port);
    assert.notEqual(a.address, b.address);
    tun.inject(
      udpPacket("10.1.1.1", a.address, 53, 1000, "for-a-1"),
      udpPacket("10.1.1.1", b.address, 53, 1000, "for-b"),
      udpPacket("10.1.1.1", a.address, 53, 1001, "for-a-2"),
      udpPacket("10.1.1.1", "100.64.0.200", 53, 1000, "nobody"),
    );
    const text = (p: Uint8Array) => new TextDecoder().decode(p.subarray(28));
    assert.deepEqual((await a.c.packets(2)).map(text), ["for-a-1", "for-a-2"]);
    assert.deepEqual((await b.c.packets(1)).map(text), ["for-b"]);
    await waitFor(() => agent.stats.noTunnel === 1, 1000, "noTunnel counted");
    await a.c.close();
    await b.c.close();
  });
});

Deno.test("stripe: two stripes of one tunnel; flows stick to a stripe and move when it dies", async () => {
  await withAgent({}, async (agent, tun) => {
    const h0 = hello({ stripes: 2, stripe: 0 });
    const s0 = await join(agent.addr.port, h0);
    const s1 = await join(agent.addr.port, { ...h0, stripe: 1 });
    assert.equal(s1.address, s0.address, "same tunnel, same address");
    const addr = s0.address;
    const flows = Array.from(
      { length: 40 },
      (_, i) => udpPacket("10.1.1.1", addr, 53, 2000 + i, `${i}`),
    );
    const expected = flows.map((p) => pickStripe(p, [0, 1]));
    const on1 = expected.filter((s) => s === 1).length;
    assert.ok(on1 > 0 && on1 < 40, "both stripes carry some flows");
    // Each flow twice, so "stays on one stripe" is checked per flow.
    tun.inject(...flows, ...flows);
    const got0 = await s0.c.packets(2 * (40 - on1));
    const got1 = await s1.c.packets(2 * on1);
    const port = (p: Uint8Array) => (p[22] << 8) | p[23];
    for (const p of got0) assert.equal(expected[port(p) - 2000], 0);
    for (const p of got1) assert.equal(expected[port(p) - 2000], 1);
    assert.equal(got0.length + got1.length, 80);

    // Client → agent works on both stripes.
    await s1.c.sendPackets(udpPacket(addr, "10.1.2.3", 1, 2));
    await waitFor(() => tun.written.length === 1);

    await s1.c.close();
    const tunnel = agent.registry.byAddress(agent.registry.tunnels[0].address)!;
    await waitFor(() => tunnel.live.length === 1, 3000, "stripe 1 gone");
    tun.inject(...flows);
    assert.equal((await s0.c.packets(40)).length, 40, "all flows now on stripe 0");
    await s0.c.close();
  });
});

Deno.test("stripe: a repeated stripe index replaces the old connection", async () => {
  await withAgent({}, async (agent, tun) => {
    const first = await join(agent.addr.port);
    const second = await join(agent.addr.port, first.hello);
    assert.equal(second.address, first.address);
    const e = await first.c.next();
    assert.ok(e?.type === FrameType.Error && /replaced/.test(e.error.message));
    assert.equal(await first.c.next(), undefined);
    tun.inject(udpPacket("10.1.1.1", first.address, 53, 1, "x"));
    assert.equal((await second.c.packets(1)).length, 1);
    assert.equal(agent.registry.tunnels[0].live.length, 1);
    await first.c.close();
    await second.c.close();
  });
});

Deno.test("stripe: a healing client gets its address back; grace 0 frees it at once", async () => {
  await withAgent({}, async (agent) => {
    const a = await join(agent.addr.port);
    await a.c.close();
    await waitFor(() => agent.registry.tunnels[0].live.length === 0);
    const again = await join(agent.addr.port, a.hello);
    assert.equal(again.address, a.address);
    await again.c.close();
  });
  await withAgent({ config: { leaseGraceSeconds: 0 } }, async (agent) => {
    const a = await join(agent.addr.port);
    await a.c.close();
    await waitFor(() => agent.registry.tunnels.length === 0, 3000, "tunnel released");
  });
});

Deno.test("stripe: pool exhausted → ERROR pool-exhausted; stripe count mismatch refused", async () => {
  const { parseCidr } = await import("../../agent/cidr.ts");
  await withAgent({ config: { pool: parseCidr("100.64.7.0/30")! } }, async (agent) => {
    const a = await join(agent.addr.port, hello({ stripes: 2 }));
    assert.equal(a.address, "100.64.7.2");
    const b = await WireClient.connect(agent.addr.port);
    await b.sendHello(hello());
    const f = await b.next();
    assert.ok(f?.type === FrameType.Error && f.error.code === "pool-exhausted");
    const c = await WireClient.connect(agent.addr.port);
    await c.sendHello({ ...a.hello, stripe: 1, stripes: 3 });
    const g = await c.next();
    assert.ok(g?.type === FrameType.Error && g.error.code === "tunnel-mismatch");
    for (const x of [a.c, b, c]) await x.close();
  });
});

Deno.test("stripe: a client that stops reading makes its queue drop, not grow", async () => {
  const limits = { maxBytes: 64 * 1024, maxDelayMs: 50 };
  await withAgent({ limits }, async (agent, tun) => {
    const { c, address } = await join(agent.addr.port);
    // Stop reading: the agent's writes fill the kernel socket buffers, then its queue.
    const payload = new Uint8Array(1372);
    for (let i = 0; i < 400 && agent.stats.queueDrops === 0; i++) {
      tun.inject(
        ...Array.from({ length: 50 }, () => udpPacket("10.1.1.1", address, 53, 9, payload)),
      );
      await new Promise((r) => setTimeout(r, 5));
      for (const t of agent.registry.tunnels) {
        for (const link of t.stripes.values()) {
          assert.ok(
            (link as unknown as { queue: { bytes: number } }).queue.bytes <= limits.maxBytes,
          );
        }
      }
    }
    assert.ok(agent.stats.queueDrops > 0, "packets were dropped");
    await c.close();
  });
});

Deno.test("stripe: shutdown sends ERROR shutdown to every stripe and closes the tun", async () => {
  let client: WireClient | undefined;
  let fake: { closed: boolean } | undefined;
  await withAgent({}, async (agent, tun) => {
    fake = tun;
    client = (await join(agent.addr.port)).c;
    const pending = await WireClient.connect(agent.addr.port); // still in the handshake
    await pending.send(encodeHello(hello()).subarray(0, 3));
    await agent.close();
    const f = await client.next();
    assert.ok(f?.type === FrameType.Error && f.error.code === "shutdown");
    assert.equal(await client.next(), undefined);
    const g = await pending.next();
    assert.ok(g?.type === FrameType.Error && g.error.code === "shutdown");
    await pending.close();
  });
  assert.ok(fake?.closed);
  await client?.close();
});

Deno.test("stripe: each flow is answered on the stripe the client last sent it on", async () => {
  await withAgent({}, async (agent, tun) => {
    const h0 = hello({ stripes: 2, stripe: 0 });
    const s0 = await join(agent.addr.port, h0);
    const s1 = await join(agent.addr.port, { ...h0, stripe: 1 });
    const addr = s0.address;
    const out = (i: number) => udpPacket(addr, "10.1.1.1", 2000 + i, 53, "q");
    const back = (i: number) => udpPacket("10.1.1.1", addr, 53, 2000 + i, "a");
    // The client puts flows 0-9 on stripe 1, whatever the hash says; then flow 0 moves to 0.
    await s1.c.sendPackets(...Array.from({ length: 10 }, (_, i) => out(i)));
    await waitFor(() => tun.written.length === 10);
    tun.inject(...Array.from({ length: 10 }, (_, i) => back(i)));
    assert.equal((await s1.c.packets(10)).length, 10, "all answered on stripe 1");
    await s0.c.sendPackets(out(0));
    await waitFor(() => tun.written.length === 11);
    tun.inject(back(0), back(1));
    const [moved] = await s0.c.packets(1);
    assert.equal((moved[22] << 8) | moved[23], 2000, "flow 0 followed the client to stripe 0");
    assert.equal((await s1.c.packets(1)).length, 1, "flow 1 stayed");
    await s0.c.close();
    await s1.c.close();
  });
});

Deno.test("stripe: LOAD reports only for clients that ask, while the stripe is busy", async () => {
  // A queue of 4 KiB: a burst of 40 packets overflows it, as a paced session's backlog would.
  await withAgent({ limits: { maxBytes: 4096, maxDelayMs: 50 } }, async (agent, tun) => {
    const asks = await join(agent.addr.port, hello({ features: ["load"] }));
    const quiet = await join(agent.addr.port, hello());
    const big = new Uint8Array(1200);
    const burst = (addr: string) =>
      Array.from({ length: 40 }, (_, i) => udpPacket("10.1.1.1", addr, 53, 3000 + i, big));
    for (let n = 0; n < 10; n++) {
      tun.inject(...burst(asks.address), ...burst(quiet.address));
      await new Promise((r) => setTimeout(r, 100));
    }
    const loads = async (c: typeof asks.c) => {
      const out = [];
      for (
        let f = await c.next(1000).catch(() => undefined);
        f;
        f = await c.next(700).catch(() => undefined)
      ) {
        if (f.type === FrameType.Load) out.push(f.load);
      }
      return out;
    };
    const got = await loads(asks.c);
    assert.ok(got.some((l) => l.drops > 0), JSON.stringify(got));
    assert.deepEqual(await loads(quiet.c), [], "no LOAD for a client that did not ask");
    assert.ok(agent.stats.queueDrops > 0);
    await asks.c.close();
    await quiet.c.close();
  });
});
