/**
 * The session pool against the real emulator over loopback: real PortSessions (data channel,
 * smux, healing) to the emulated agent, which dials local TCP servers standing in for VPC
 * destinations through AWS-StartPortForwardingSessionToRemoteHost.
 */
import assert from "node:assert/strict";
import { type PoolOptions, SessionPool } from "../../src/netstack/pool.ts";
import type {
  Destination,
  OpenResult,
  RemoteStream,
  RemoteStreamEvents,
} from "../../src/netstack/types.ts";
import { PortSession } from "../../src/ssm/session.ts";
import { ExitCode, UserError } from "../../src/errors.ts";
import { closedPort, echoServer, startEmulator, tcpServer } from "../emulator/harness.ts";
import { pattern, sha256hex } from "../support/net.ts";

const INSTANCE = "i-0123456789abcdef0";
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const to = (port: number): Destination => ({ family: 4, host: "127.0.0.1", port });

type Server = { port: number; close(): Promise<void> };

interface World {
  emu: ReturnType<typeof startEmulator>;
  pool: SessionPool;
  /** Every PortSession the pool had opened, in order. */
  sessions: PortSession[];
  logs: string[];
  server(s: Server): Server;
}

type Opener = (dst: Destination) => Promise<PortSession>;

async function world(
  o: Partial<PoolOptions> & { wrap?: (real: Opener) => Opener },
  fn: (w: World) => Promise<void>,
): Promise<void> {
  const emu = startEmulator();
  const sessions: PortSession[] = [];
  const logs: string[] = [];
  const servers: Server[] = [];
  const real: Opener = async (dst) => {
    const g = emu.registry.start(INSTANCE, "AWS-StartPortForwardingSessionToRemoteHost", {
      host: [dst.host],
      portNumber: [String(dst.port)],
    });
    const s = await PortSession.open({
      grant: { sessionId: g.SessionId, streamUrl: g.StreamUrl, tokenValue: g.TokenValue },
      api: {
        resume: (id) => Promise.resolve({ tokenValue: emu.registry.resume(id)?.TokenValue ?? "" }),
        terminate: (id) => Promise.resolve(void emu.registry.terminate(id)),
      },
    });
    sessions.push(s);
    return s;
  };
  const pool = new SessionPool({
    ...o,
    openSession: o.wrap?.(real) ?? real,
    log: (l) => logs.push(l),
  });
  try {
    await fn({ emu, pool, sessions, logs, server: (s) => (servers.push(s), s) });
  } finally {
    await pool.close();
    for (const s of sessions) await s.terminate();
    await emu.close();
    for (const s of servers) await s.close();
  }
}

/** A stream's events, recorded, with promises for the milestones. */
function recorder() {
  const opened = Promise.withResolvers<OpenResult>();
  const ended = Promise.withResolvers<string>();
  const r = {
    chunks: [] as Uint8Array[],
    bytes: 0,
    result: undefined as OpenResult | undefined,
    writableEvents: 0,
    opened: opened.promise,
    /** "end", or "aborted: <reason>". */
    ended: ended.promise,
    onWritable: () => {},
    events: {
      opened: (res) => {
        assert.equal(r.result, undefined, "opened() is called once");
        r.result = res;
        opened.resolve(res);
      },
      data: (c) => {
        assert.equal(r.result, "ok", "data only after opened('ok')");
        r.chunks.push(c);
        r.bytes += c.length;
      },
      end: () => ended.resolve("end"),
      aborted: (reason) => ended.resolve(`aborted: ${reason}`),
      writable: () => {
        r.writableEvents++;
        r.onWritable();
      },
    } as RemoteStreamEvents,
    received: () => {
      const out = new Uint8Array(r.bytes);
      let o = 0;
      for (const c of r.chunks) out.set(c, (o += c.length) - c.length);
      return out;
    },
  };
  return r;
}

async function openOk(pool: SessionPool, dst: Destination) {
  const r = recorder();
  const stream = pool.open(dst, r.events);
  assert.equal(await r.opened, "ok");
  return { r, stream };
}

async function until(what: string, cond: () => boolean, ms = 5_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Write `data` respecting writable() and the writable event, as the netstack does. */
async function writeAll(stream: RemoteStream, r: ReturnType<typeof recorder>, data: Uint8Array) {
  for (let o = 0; o < data.length; o += 16 * 1024) {
    while (!stream.writable()) await new Promise<void>((res) => (r.onWritable = res));
    stream.write(data.subarray(o, o + 16 * 1024));
  }
}

/** A destination that sends `size` bytes on connect, then waits for the client to close. */
function talker(size: number) {
  return tcpServer(async (conn) => {
    const data = pattern(size, 5);
    for (let o = 0; o < size;) o += await conn.write(data.subarray(o));
    await conn.read(new Uint8Array(16)).catch(() => null);
  });
}

Deno.test("pool: streams to one destination share a session; another gets its own", async () => {
  await world({}, async ({ pool, server, emu }) => {
    const a = server(echoServer()), b = server(echoServer());
    const [s1, s2, s3] = await Promise.all([
      openOk(pool, to(a.port)),
      openOk(pool, to(a.port)),
      openOk(pool, to(b.port)),
    ]);
    const st = pool.stats();
    assert.equal(st.sessions, 2);
    assert.equal(st.streams, 3);
    assert.equal(emu.registry.list().length, 2, "one StartSession per destination");
    for (const [i, { r, stream }] of [s1, s2, s3].entries()) {
      stream.write(new TextEncoder().encode(`hello ${i}`));
      await until("echo", () => r.bytes === 7);
      assert.equal(new TextDecoder().decode(r.received()), `hello ${i}`);
      stream.close();
    }
    await until("streams gone", () => pool.stats().streams === 0);
    assert.equal(pool.stats().sessions, 2, "idle sessions stay for idleMs");
  });
});

Deno.test("pool: 1 MB echoed byte-exact through backpressure both ways", async () => {
  await world({}, async ({ pool, server }) => {
    const { port } = server(echoServer());
    const { r, stream } = await openOk(pool, to(port));
    const data = pattern(1 << 20, 9);
    const writing = writeAll(stream, r, data);
    await until("some echo", () => r.bytes >= 256 * 1024);
    stream.pause(true);
    const held = r.bytes;
    await sleep(200);
    assert.equal(r.bytes, held, "no data while the consumer is paused");
    stream.pause(false);
    await writing;
    await until("the echo", () => r.bytes >= data.length, 20_000);
    assert.equal(sha256hex(r.received()), sha256hex(data));
    assert.ok(r.writableEvents > 0, "writes waited for the writable event");
    stream.close();
  });
});

Deno.test("pool: first open waits the grace period; a destination that sent data does not", async () => {
  await world({}, async ({ pool, server }) => {
    const { port } = server(echoServer());
    const { r, stream } = await openOk(pool, to(port));
    let t0 = Date.now();
    const second = await openOk(pool, to(port)); // same session, still no byte from the port
    const cold = Date.now() - t0;
    stream.write(new Uint8Array([1]));
    await until("echo", () => r.bytes === 1);
    t0 = Date.now();
    const warm = await openOk(pool, to(port));
    const hot = Date.now() - t0;
    // G = 1.5 × the measured RTT (≈0 on loopback) + 50 ms.
    assert.ok(cold >= 50 && cold < 600, `unproven destination: ok after ${cold} ms of grace`);
    assert.ok(hot < 50, `known destination answered in ${hot} ms`);
    for (const s of [stream, second.stream, warm.stream]) s.close();
  });
});

Deno.test("pool: a refused port is opened('refused'); the negative cache answers at once", async () => {
  await world({}, async ({ pool, emu, logs }) => {
    const port = closedPort();
    const r = recorder();
    pool.open(to(port), r.events);
    assert.equal(await r.opened, "refused");
    const t0 = Date.now();
    const again = recorder();
    pool.open(to(port), again.events);
    assert.equal(await again.opened, "refused");
    assert.ok(Date.now() - t0 < 20, "answered from the cache");
    assert.equal(emu.registry.list().length, 1, "no second StartSession");
    assert.equal(pool.stats().refused, 2);
    assert.equal(logs.filter((l) => l.includes("refused")).length, 1, "one log line");
  });
});

Deno.test("pool: a known destination that stops listening: ok, then aborted('refused…')", async () => {
  await world({}, async ({ pool }) => {
    const srv = echoServer();
    const { r, stream } = await openOk(pool, to(srv.port));
    stream.write(new Uint8Array([7]));
    await until("echo", () => r.bytes === 1);
    await srv.close();
    const late = recorder();
    pool.open(to(srv.port), late.events);
    assert.equal(await late.opened, "ok", "known-good: ok as soon as the SYN is out");
    assert.equal(await late.ended, "aborted: refused by the destination");
    stream.close();
  });
});

Deno.test("pool: an idle session is terminated after idleMs", async () => {
  await world({ idleMs: 200 }, async ({ pool, server, emu }) => {
    const { port } = server(echoServer());
    const { stream } = await openOk(pool, to(port));
    const [id] = pool.stats().sessionIds;
    await sleep(300);
    assert.equal(pool.stats().sessions, 1, "a session with a stream is never idle");
    stream.close();
    await until("idle close", () => pool.stats().sessions === 0, 2_000);
    await until("terminated", () => emu.registry.get(id)?.state === "terminated");
  });
});

Deno.test("pool: at the cap the oldest idle session makes room", async () => {
  await world({ maxSessions: 2 }, async ({ pool, server, emu }) => {
    const [a, b, c] = [server(echoServer()), server(echoServer()), server(echoServer())];
    const sa = await openOk(pool, to(a.port));
    const sb = await openOk(pool, to(b.port));
    const [idA, idB] = pool.stats().sessionIds;
    sa.stream.close();
    await sleep(20);
    sb.stream.close();
    await until("both idle", () => pool.stats().streams === 0);
    const sc = await openOk(pool, to(c.port));
    const ids = pool.stats().sessionIds;
    assert.equal(ids.length, 2);
    assert.ok(!ids.includes(idA) && ids.includes(idB), "the longest idle went");
    await until("A terminated", () => emu.registry.get(idA)?.state === "terminated");
    sc.stream.close();
  });
});

Deno.test("pool: at the cap with every session busy a new destination waits, then times out", async () => {
  await world({ maxSessions: 1, waitMs: 300 }, async ({ pool, server }) => {
    const [a, b] = [server(echoServer()), server(echoServer())];
    const sa = await openOk(pool, to(a.port));
    const r = recorder();
    const t0 = Date.now();
    pool.open(to(b.port), r.events);
    assert.equal(await r.opened, "timeout");
    assert.ok(Date.now() - t0 >= 290, "waited waitMs");
    // A session going idle serves a waiting destination at once.
    const r2 = recorder();
    pool.open(to(b.port), r2.events);
    await sleep(100);
    sa.stream.close();
    assert.equal(await r2.opened, "ok");
    assert.equal(pool.stats().sessions, 1);
  });
});

Deno.test("pool: StartSession denied → refused and cached 60 s; other failures → unreachable", async () => {
  const broken = closedPort();
  const denied: Destination = { family: 4, host: "127.0.0.2", port: broken };
  const wrap = (real: Opener): Opener => (dst) => {
    if (dst.host === denied.host) {
      return Promise.reject(
        new UserError("access denied: you may not call ssm:StartSession", ExitCode.Auth),
      );
    }
    if (dst.port === broken) return Promise.reject(new Error("TargetNotConnected"));
    return real(dst);
  };
  await world({ wrap }, async ({ pool, logs }) => {
    for (let i = 0; i < 3; i++) {
      const r = recorder();
      pool.open(denied, r.events);
      assert.equal(await r.opened, "refused");
      const u = recorder();
      pool.open(to(broken), u.events);
      assert.equal(await u.opened, "unreachable");
    }
    const st = pool.stats();
    assert.equal(st.failedSessions, 4, "the denial was cached; the other failure was not");
    assert.equal(logs.filter((l) => l.includes("access denied")).length, 1);
    assert.equal(logs.filter((l) => l.includes("TargetNotConnected")).length, 1);
  });
});

Deno.test("pool: a slow StartSession is opened('timeout'); the late session is kept", async () => {
  const wrap = (real: Opener): Opener => async (dst) => (await sleep(400), real(dst));
  await world({ wrap, openTimeoutMs: 150 }, async ({ pool, server }) => {
    const { port } = server(echoServer());
    const r = recorder();
    pool.open(to(port), r.events);
    assert.equal(await r.opened, "timeout");
    await until("the late session", () => pool.stats().sessions === 1);
    const { stream } = await openOk(pool, to(port));
    stream.close();
  });
});

Deno.test("pool: new sessions are rate-limited (token bucket)", async () => {
  await world({ sessionsPerSecond: 5, sessionBurst: 2 }, async ({ pool, server }) => {
    const ports = [0, 1, 2].map(() => server(echoServer()).port);
    const t0 = Date.now();
    const times = await Promise.all(
      ports.map(async (p) => (await openOk(pool, to(p)), Date.now() - t0)),
    );
    assert.ok(times[2] >= 190, `the third waited for a token (${times.join(", ")} ms)`);
    assert.ok(times[0] < times[2] && times[1] < times[2]);
  });
});

Deno.test("pool: a session closed by the service aborts its streams; the next open starts anew", async () => {
  await world({}, async ({ pool, server, emu }) => {
    const { port } = server(echoServer());
    const { r, stream } = await openOk(pool, to(port));
    const [id] = pool.stats().sessionIds;
    emu.mgs.faults.channelClosed(id, "maintenance");
    assert.match(await r.ended, /^aborted: .*closed by AWS: maintenance/);
    await until("retired", () => pool.stats().sessions === 0);
    stream.write(new Uint8Array([1])); // after the end: ignored, no throw
    const next = await openOk(pool, to(port));
    assert.notEqual(pool.stats().sessionIds[0], id);
    next.stream.close();
  });
});

Deno.test("pool: a dropped WebSocket is resumed and the stream carries on", async () => {
  await world({}, async ({ pool, server, emu, sessions }) => {
    const { port } = server(echoServer());
    const { r, stream } = await openOk(pool, to(port));
    const data = pattern(256 * 1024, 3);
    const half = data.length / 2;
    await writeAll(stream, r, data.subarray(0, half));
    emu.mgs.faults.dropWebSocket(sessions[0].sessionId);
    await writeAll(stream, r, data.subarray(half));
    await until("the echo", () => r.bytes >= data.length, 10_000);
    assert.equal(sha256hex(r.received()), sha256hex(data));
    assert.ok(sessions[0].reconnects >= 1, "the session resumed");
    assert.equal(pool.stats().sessions, 1);
    stream.close();
  });
});

Deno.test("pool: pause(true) stops the session acking; pause(false) delivers the rest", async () => {
  await world({}, async ({ pool, server }) => {
    const size = 200 * 1024;
    const { port } = server(talker(size));
    const r = recorder();
    const stream = pool.open(to(port), r.events);
    stream.pause(true);
    assert.equal(await r.opened, "ok");
    await sleep(400);
    assert.equal(r.bytes, 0, "nothing taken while paused");
    stream.pause(false);
    await until("the rest", () => r.bytes === size, 10_000);
    assert.equal(sha256hex(r.received()), sha256hex(pattern(size, 5)));
    stream.close();
  });
});

Deno.test("pool: a stream unanswered for blockedMs sends new streams to a fresh session", async () => {
  await world({ blockedMs: 300 }, async ({ pool, server, logs }) => {
    const { port } = server(echoServer()); // silent until spoken to: looks like a stuck dial
    const stuck = await openOk(pool, to(port));
    await sleep(350);
    const b = await openOk(pool, to(port));
    assert.equal(pool.stats().sessions, 2);
    b.stream.write(new Uint8Array([1]));
    await until("echo on the new session", () => b.r.bytes === 1);
    const c = await openOk(pool, to(port));
    assert.equal(pool.stats().sessions, 2, "the fresh session, now answered, is reused");
    assert.equal(logs.filter((l) => l.includes("another session")).length, 1);
    for (const s of [stuck, b, c]) s.stream.close();
  });
});

Deno.test("pool: close() aborts open streams, answers pending opens, ends sessions", async () => {
  await world({}, async ({ pool, server, emu }) => {
    const { port } = server(echoServer());
    const { r } = await openOk(pool, to(port));
    const id = pool.stats().sessionIds[0];
    const pending = recorder();
    pool.open(to(server(echoServer()).port), pending.events);
    await pool.close();
    assert.equal(await r.ended, "aborted: the session pool closed");
    assert.equal(await pending.opened, "unreachable");
    assert.equal(emu.registry.get(id)?.state, "terminated");
    const late = recorder();
    pool.open(to(port), late.events);
    assert.equal(await late.opened, "unreachable");
  });
});

Deno.test("pool: an IPv6 destination is started with its bare address", async () => {
  await world({}, async ({ pool, server }) => {
    const { port } = server(echoServer("::1"));
    const { r, stream } = await openOk(pool, { family: 6, host: "::1", port });
    stream.write(new Uint8Array([6]));
    await until("echo", () => r.bytes === 1);
    stream.close();
  });
});

Deno.test("pool: a host the agent forbids is refused once, then from the cache", async () => {
  let starts = 0;
  const wrap = (real: Opener): Opener => (dst) => (starts++, real(dst));
  await world({ wrap }, async ({ pool, logs }) => {
    // The agent checks the host after the handshake and ends the session (§8, port.go).
    const imds: Destination = { family: 4, host: "169.254.169.254", port: 80 };
    const r = recorder();
    pool.open(imds, r.events);
    assert.equal(await r.opened, "refused");
    assert.equal(starts, 1, "refused without a second StartSession");
    const again = recorder();
    pool.open({ ...imds, port: 443 }, again.events);
    assert.equal(await again.opened, "refused", "the whole host is cached as forbidden");
    assert.equal(starts, 1);
    assert.ok(logs.some((l) => /is forbidden/.test(l)), logs.join("\n"));
  });
});
