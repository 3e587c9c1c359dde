/**
 * The tunnel client against agents that misbehave: real sessions through the emulator to a
 * scripted TCP peer on 127.0.0.1 standing in for ssm-proxy-agent.
 */
import assert from "node:assert/strict";
import { startEmulator } from "../../src/emulator/server.ts";
import { PortSession } from "../../src/ssm/session.ts";
import * as ssm from "../../src/aws/ssm.ts";
import { Tunnel } from "../../src/tunnel/client.ts";
import {
  encodeError,
  encodePackets,
  encodeWelcome,
  FrameReader,
  FrameType,
} from "../../src/tunnel/wire.ts";
import { awsEnv, withEnv } from "../support/aws_env.ts";

type Script = (conn: Deno.Conn, hello: Uint8Array) => Promise<void>;

/** A one-shot fake agent: reads the HELLO frame, then runs the script. */
function fakeAgent(script: Script) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const done = (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      const reader = new FrameReader();
      const buf = new Uint8Array(4096);
      let hello: Uint8Array | undefined;
      while (!hello) {
        const n = await conn.read(buf);
        if (n === null) break;
        const frames = reader.push(buf.slice(0, n));
        if (frames.some((f) => f.type === FrameType.Hello)) hello = buf.slice(0, n);
      }
      if (hello) await script(conn, hello).catch(() => {});
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await done;
    },
  };
}

const welcome = encodeWelcome({
  version: 1,
  address: "100.64.0.2",
  peer: "100.64.0.1",
  mtu: 1400,
  policy: { allow: [], deny: [] },
  agent: "fake",
});

async function connect(agentPort: number) {
  const emu = await startEmulator({ port: 0, pacing: false });
  return await withEnv(awsEnv(emu.url), async () => {
    const aws = {};
    try {
      const t = await Tunnel.connect({
        stripes: 1,
        agentPort,
        mtu: 1400,
        openSession: async () =>
          PortSession.open({
            grant: await ssm.startSession(aws, {
              target: "i-0123456789abcdef0",
              documentName: "AWS-StartPortForwardingSession",
              parameters: { portNumber: [String(agentPort)] },
            }),
            api: ssm.sessionApi(aws),
          }),
      });
      return { tunnel: t, emu };
    } catch (e) {
      await emu.close();
      throw e;
    }
  });
}

Deno.test("tunnel client: an agent that speaks another protocol version is named in one line", async () => {
  const agent = fakeAgent(async (conn) => {
    await conn.write(encodeError({ code: "unsupported-version", message: "no", versions: [7] }));
  });
  try {
    await assert.rejects(
      connect(agent.port),
      /does not speak this client's protocol \(it speaks 7\)/,
    );
  } finally {
    await agent.close();
  }
});

Deno.test("tunnel client: garbage instead of a welcome is a protocol error, not a hang", async () => {
  const agent = fakeAgent(async (conn) => {
    await conn.write(new TextEncoder().encode("\x02\x00\x00\x05{bad}"));
  });
  try {
    await assert.rejects(connect(agent.port), /protocol error from the agent: malformed welcome/);
  } finally {
    await agent.close();
  }
});

Deno.test("tunnel client: a malformed PACKETS frame takes the stripe down with the reason", async () => {
  const agent = fakeAgent(async (conn) => {
    await conn.write(welcome);
    await new Promise((r) => setTimeout(r, 300)); // after the client attached its tun
    // A packet length running past its frame.
    await conn.write(new Uint8Array([FrameType.Packets, 0, 0, 4, 0, 9, 0x45, 0]));
  });
  const { tunnel, emu } = await connect(agent.port);
  try {
    const written: Uint8Array[] = [];
    const tun = {
      name: "fake0",
      index: 1,
      mtu: 1400,
      read: (ms: number) =>
        new Promise<Uint8Array[]>((r) => setTimeout(() => r([]), Math.min(ms, 20))),
      write: (p: Uint8Array) => (written.push(p.slice()), true),
      close() {},
    };
    const running = tunnel.run(tun);
    const reason = await tunnel.ended;
    assert.match(reason, /packet length 9 overruns its frame/);
    assert.equal(written.length, 0);
    await tunnel.close();
    await running;
  } finally {
    await emu.close();
    await agent.close();
  }
});

Deno.test("tunnel client: packets from the agent reach the tun in order", async () => {
  const pkts = [1, 2, 3].map((i) => new Uint8Array(20).fill(i).map((x, j) => (j === 0 ? 0x45 : x)));
  const agent = fakeAgent(async (conn) => {
    await conn.write(welcome);
    await new Promise((r) => setTimeout(r, 300)); // after the client attached its tun
    await conn.write(encodePackets(pkts));
  });
  const { tunnel, emu } = await connect(agent.port);
  try {
    const written: Uint8Array[] = [];
    const got = Promise.withResolvers<void>();
    const tun = {
      name: "fake0",
      index: 1,
      mtu: 1400,
      read: (ms: number) =>
        new Promise<Uint8Array[]>((r) => setTimeout(() => r([]), Math.min(ms, 20))),
      write: (p: Uint8Array) => {
        written.push(p.slice());
        if (written.length === 3) got.resolve();
        return true;
      },
      close() {},
    };
    const running = tunnel.run(tun);
    await got.promise;
    assert.deepEqual(written, pkts);
    assert.equal(tunnel.welcome.address, "100.64.0.2");
    await tunnel.close();
    await running;
  } finally {
    await emu.close();
    await agent.close();
  }
});
