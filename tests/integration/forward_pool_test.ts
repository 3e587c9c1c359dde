/**
 * `forward` with more than one Port session, end to end against the emulator: a saturated
 * session with several busy connections gets a second one for new connections, a single
 * connection never does, idle extras close, a lost extra takes only its own connections, and
 * every session heals and ends on its own.
 */
import assert from "node:assert/strict";
import { type OpenForward, openForward } from "../../src/cli/forward.ts";
import { startEmulator } from "../../src/emulator/server.ts";
import { awsEnv, withEnv } from "../support/aws_env.ts";
import { download, pattern, sha256hex, startDestination, upload } from "../support/net.ts";

const INSTANCE = "i-0123456789abcdef0";
const MB = 1024 * 1024;

type Emu = Awaited<ReturnType<typeof startEmulator>>;

async function lab(
  pacing: boolean,
  fn: (ctx: { emu: Emu; destPort: number }) => Promise<void>,
): Promise<void> {
  const emu = await startEmulator({ port: 0, pacing });
  const dest = startDestination();
  try {
    await withEnv(awsEnv(emu.url), () => fn({ emu, destPort: dest.port }));
  } finally {
    await dest.close();
    await emu.close();
  }
}

function forwardTo(
  destPort: number,
  o: Pick<Parameters<typeof openForward>[0], "sessions" | "pool" | "log"> = {},
) {
  return openForward({
    target: INSTANCE,
    remoteHost: "localhost",
    remotePort: destPort,
    localPort: 0,
    bind: "127.0.0.1",
    log: () => {},
    ...o,
  });
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const openOnService = (emu: Emu) => emu.registry.list().filter((s) => s.state === "open").length;

/** An echo connection through the forward ('E' mode of the destination). */
async function echo(port: number) {
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  await c.write(new TextEncoder().encode("E"));
  return {
    conn: c,
    /** Round trip `text`; null if the connection was closed. */
    async ping(text: string): Promise<string | null> {
      try {
        await c.write(new TextEncoder().encode(text));
        const buf = new Uint8Array(text.length);
        let n = 0;
        while (n < buf.length) {
          const r = await c.read(buf.subarray(n));
          if (r === null) return null;
          n += r;
        }
        return new TextDecoder().decode(buf);
      } catch {
        return null;
      }
    },
  };
}

Deno.test("forward pool: 4 parallel downloads open a second session and new connections use it (paced)", async () => {
  await lab(true, async ({ emu, destPort }) => {
    const lines: string[] = [];
    const f = await forwardTo(destPort, {
      log: (l) => lines.push(l),
      pool: { retireIdleMs: 1_500 },
    });
    try {
      const port = f.forwarder.addr.port;
      const onBoth = () => f.pool.lanes.length >= 2 && f.pool.lanes[1].accepted > 0;
      // Each worker downloads one piece after another, so connections keep arriving.
      const size = 400_000;
      const expected = sha256hex(pattern(size, size));
      let bad = 0;
      await Promise.all(Array.from({ length: 4 }, async () => {
        for (let i = 0; i < 60 && !onBoth(); i++) {
          if (sha256hex(await download(port, size)) !== expected) bad++;
        }
      }));
      assert.equal(bad, 0, "every download intact");
      assert.ok(onBoth(), `connections on both sessions; log:\n${lines.join("\n")}`);
      assert.ok(f.pool.stats.added >= 1);
      assert.ok(f.pool.lanes[0].accepted >= 4, "the first four stayed where they were");
      assert.ok(emu.registry.list().length >= 2, "a second StartSession");
      assert.ok(
        lines.some((l) =>
          /^session 2 added \(\S+\): session 1 at the pacing ceiling .* with \d+ active connections$/
            .test(l)
        ),
        lines.join("\n"),
      );
      // Idle again: the extras close, session 1 stays.
      await until(() => f.pool.lanes.length === 1, 10_000, "the extra sessions closed");
      await until(() => openOnService(emu) === 1, 2_000, "the service saw them end");
      assert.ok(lines.some((l) => /^session 2 closed \(\S+\): no connections for \d+ s$/.test(l)));
      assert.equal(f.pool.lanes[0].session, f.session);
    } finally {
      await f.stop();
    }
  });
});

Deno.test("forward pool: one busy connection (and an idle one) never opens a second session (paced)", async () => {
  await lab(true, async ({ emu, destPort }) => {
    const f = await forwardTo(destPort, { pool: { growAfterMs: 500, tickMs: 100 } });
    try {
      const port = f.forwarder.addr.port;
      const idle = await echo(port);
      assert.equal(await idle.ping("hi"), "hi");
      // Open but quiet: it no longer counts as active.
      await until(() => f.pool.lanes[0].busyConnections() === 0, 5_000, "the ping is old");
      // About 3 s at the pacing ceiling: six times the growth delay.
      const down = await download(port, 3 * MB);
      assert.equal(sha256hex(down), sha256hex(pattern(3 * MB, 3 * MB)));
      assert.equal(f.pool.stats.added, 0);
      assert.equal(f.pool.lanes.length, 1);
      assert.equal(emu.registry.list().length, 1);
      idle.conn.close();
    } finally {
      await f.stop();
    }
  });
});

Deno.test("forward pool: --sessions 2 spreads connections; a lost extra takes only its own and is replaced", async () => {
  await lab(false, async ({ emu, destPort }) => {
    const lines: string[] = [];
    const f = await forwardTo(destPort, {
      sessions: "2",
      log: (l) => lines.push(l),
      pool: { tickMs: 100 },
    });
    try {
      assert.equal(f.pool.lanes.length, 2);
      assert.equal(openOnService(emu), 2);
      const port = f.forwarder.addr.port;
      const a = await echo(port);
      assert.equal(await a.ping("a"), "a");
      const b = await echo(port);
      assert.equal(await b.ping("b"), "b");
      assert.deepEqual(f.pool.lanes.map((l) => l.accepted), [1, 1], "one on each");
      const second = f.pool.lanes[1].session;
      emu.mgs.faults.channelClosed(second.sessionId, "gone");
      assert.equal(await b.ping("b2"), null, "the connection on the lost session is closed");
      assert.equal(await a.ping("a2"), "a2", "the other one is untouched");
      assert.equal(f.session.state, "up");
      await until(() => f.pool.lanes.length === 2, 5_000, "the lost session was replaced");
      assert.notEqual(f.pool.lanes[1].session, second);
      assert.ok(
        lines.some((l) => /^session 2 lost \(.*gone\); its 1 connection was closed$/.test(l)),
      );
      assert.ok(lines.some((l) => /^session 3 added \(\S+\): keeping 2 sessions/.test(l)));
      const c = await echo(port);
      assert.equal(await c.ping("c"), "c");
      assert.equal(f.pool.lanes[1].accepted, 1, "the new connection went to the new session");
      a.conn.close();
      c.conn.close();
    } finally {
      await f.stop();
    }
  });
});

Deno.test("forward pool: every session heals on its own; stop ends them all on the service", async () => {
  await lab(false, async ({ emu, destPort }) => {
    let f: OpenForward | undefined = await forwardTo(destPort, { sessions: 3 });
    try {
      const port = f.forwarder.addr.port;
      const data = [pattern(12 * MB, 1), pattern(12 * MB, 2), pattern(12 * MB, 3)];
      const transfers = data.map((d) => upload(port, d));
      await until(() => f!.pool.lanes.every((l) => l.connections === 1), 5_000, "one each");
      await new Promise((r) => setTimeout(r, 100));
      emu.mgs.faults.dropWebSocket();
      const digests = await Promise.all(transfers);
      assert.deepEqual(digests, data.map(sha256hex));
      for (const s of f.pool.sessions) assert.ok(s.reconnects >= 1, `${s.sessionId} healed`);
      await f.stop();
      f = undefined;
      const all = emu.registry.list();
      assert.equal(all.length, 3);
      await until(
        () => emu.registry.list().every((s) => s.state === "terminated"),
        2_000,
        "all three terminated",
      );
    } finally {
      await f?.stop();
    }
  });
});
