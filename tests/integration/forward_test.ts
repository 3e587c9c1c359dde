/**
 * `forward` end to end on loopback: the real client (CLI code path, SDK, data channel, smux)
 * against the emulator's SSM API, MGS and emulated agent, which dials a local destination.
 */
import assert from "node:assert/strict";
import { openForward } from "../../src/cli/forward.ts";
import { startEmulator } from "../../src/emulator/server.ts";
import { awsEnv, withEnv } from "../support/aws_env.ts";
import { download, pattern, sha256hex, startDestination, upload } from "../support/net.ts";

const INSTANCE = "i-0123456789abcdef0";
const MB = 1024 * 1024;
const quiet = () => {};

async function lab<T>(
  opts: { pacing?: boolean },
  fn: (ctx: { emu: Awaited<ReturnType<typeof startEmulator>>; destPort: number }) => Promise<T>,
): Promise<T> {
  const emu = await startEmulator({ port: 0, pacing: opts.pacing ?? false });
  const dest = startDestination();
  try {
    return await withEnv(awsEnv(emu.url), () => fn({ emu, destPort: dest.port }));
  } finally {
    await dest.close();
    await emu.close();
  }
}

function forwardTo(
  destPort: number,
  session?: { heartbeatMs?: number; deadAfterMs?: number },
) {
  return openForward({
    target: INSTANCE,
    remoteHost: "localhost",
    remotePort: destPort,
    localPort: 0,
    bind: "127.0.0.1",
    log: quiet,
    session,
  });
}

Deno.test("forward: 50 MB each way, SHA-256 equal at both ends (pacing off)", async () => {
  await lab({}, async ({ destPort }) => {
    const f = await forwardTo(destPort);
    try {
      const port = f.forwarder.addr.port;
      const up = pattern(50 * MB, 7);
      assert.equal(await upload(port, up), sha256hex(up));
      const down = await download(port, 50 * MB);
      assert.equal(down.length, 50 * MB);
      assert.equal(sha256hex(down), sha256hex(pattern(50 * MB, 50 * MB)));
    } finally {
      await f.stop();
    }
  });
});

Deno.test("forward: many concurrent connections over one session", async () => {
  await lab({}, async ({ emu, destPort }) => {
    const f = await forwardTo(destPort);
    try {
      const port = f.forwarder.addr.port;
      const sizes = Array.from({ length: 12 }, (_, i) => (i + 1) * 97_000);
      const results = await Promise.all(sizes.map(async (n, i) => {
        const data = pattern(n, i + 1);
        return (await upload(port, data)) === sha256hex(data);
      }));
      assert.deepEqual(results, sizes.map(() => true));
      assert.equal(emu.registry.list().filter((s) => s.state === "open").length, 1);
    } finally {
      await f.stop();
    }
  });
});

Deno.test("forward: a dropped WebSocket heals without dropping established connections", async () => {
  await lab({}, async ({ emu, destPort }) => {
    const f = await forwardTo(destPort);
    try {
      const port = f.forwarder.addr.port;
      const data = pattern(30 * MB, 3);
      const transfer = upload(port, data);
      const downTransfer = download(port, 20 * MB);
      await new Promise((r) => setTimeout(r, 150));
      emu.mgs.faults.dropWebSocket();
      await new Promise((r) => setTimeout(r, 400));
      emu.mgs.faults.dropWebSocket();
      assert.equal(await transfer, sha256hex(data));
      assert.equal(sha256hex(await downTransfer), sha256hex(pattern(20 * MB, 20 * MB)));
      assert.ok(f.session.reconnects >= 1, `reconnects ${f.session.reconnects}`);
    } finally {
      await f.stop();
    }
  });
});

Deno.test("forward: 50 MB each way through duplicated, reordered and delayed frames", async () => {
  await lab({}, async ({ emu, destPort }) => {
    emu.mgs.faults.duplicate(0.05);
    emu.mgs.faults.reorder(0.05);
    emu.mgs.faults.delay(1);
    const f = await forwardTo(destPort);
    try {
      const port = f.forwarder.addr.port;
      const up = pattern(50 * MB, 11);
      const [digest, down] = await Promise.all([upload(port, up), download(port, 50 * MB)]);
      assert.equal(digest, sha256hex(up));
      assert.equal(sha256hex(down), sha256hex(pattern(50 * MB, 50 * MB)));
      assert.ok(f.session.channel.stats.duplicates > 0, "the fault really duplicated frames");
    } finally {
      await f.stop();
    }
  });
});

Deno.test("forward: paced session delivers 1024-byte messages and the data intact", async () => {
  await lab({ pacing: true }, async ({ destPort }) => {
    const f = await forwardTo(destPort);
    try {
      const down = await download(f.forwarder.addr.port, 200 * 1024);
      assert.equal(sha256hex(down), sha256hex(pattern(200 * 1024, 200 * 1024)));
      const s = f.session.channel.stats;
      assert.ok(s.bytesIn / s.framesIn <= 1024, `average ${s.bytesIn / s.framesIn}`);
    } finally {
      await f.stop();
    }
  });
});

Deno.test("forward: stop() sends TerminateSession and the session ends on the service", async () => {
  await lab({}, async ({ emu, destPort }) => {
    const f = await forwardTo(destPort);
    const id = f.session.sessionId;
    await f.stop();
    await f.serving;
    for (let i = 0; i < 50 && emu.registry.get(id)?.state !== "terminated"; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(emu.registry.get(id)?.state, "terminated");
  });
});

Deno.test("forward: a refused destination is reported per connection; the session survives", async () => {
  await lab({}, async ({ destPort }) => {
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const deadPort = (closed.addr as Deno.NetAddr).port;
    closed.close();
    const lines: string[] = [];
    const f = await openForward({
      target: INSTANCE,
      remoteHost: "localhost",
      remotePort: deadPort,
      localPort: 0,
      bind: "127.0.0.1",
      log: (l) => lines.push(l),
    });
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port: f.forwarder.addr.port });
      const n = await c.read(new Uint8Array(10)).catch(() => null);
      c.close();
      assert.equal(n, null);
      await new Promise((r) => setTimeout(r, 50));
      assert.ok(lines.some((l) => l.includes("refused")), lines.join("\n"));
      assert.equal(f.forwarder.stats.refused, 1);
      assert.equal(f.session.state, "up");
    } finally {
      await f.stop();
    }
    void destPort;
  });
});

Deno.test("forward: channel_closed from the service ends the session with its message", async () => {
  await lab({}, async ({ emu, destPort }) => {
    const f = await forwardTo(destPort);
    try {
      emu.mgs.faults.channelClosed(
        f.session.sessionId,
        "Your session timed out due to inactivity and has been terminated.",
      );
      const end = await f.session.ended;
      assert.equal(end.kind, "closed");
      assert.match(end.message, /timed out due to inactivity/);
    } finally {
      await f.stop();
    }
  });
});

Deno.test("forward: a stalled WebSocket is detected by the heartbeat and healed", async () => {
  await lab({}, async ({ emu, destPort }) => {
    const f = await forwardTo(destPort, { heartbeatMs: 200, deadAfterMs: 800 });
    try {
      const port = f.forwarder.addr.port;
      const data = pattern(5 * MB, 5);
      const transfer = upload(port, data);
      await new Promise((r) => setTimeout(r, 50));
      emu.mgs.faults.stall(5_000);
      assert.equal(await transfer, sha256hex(data));
      assert.ok(f.session.reconnects >= 1, `reconnects ${f.session.reconnects}`);
    } finally {
      emu.mgs.faults.reset();
      await f.stop();
    }
  });
});

Deno.test("forward: the heartbeat keeps an idle session under the idle timeout", async () => {
  await lab({}, async ({ emu, destPort }) => {
    emu.mgs.faults.idleTimeout(600);
    const f = await forwardTo(destPort, { heartbeatMs: 150 });
    try {
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(f.session.state, "up");
      const data = pattern(100_000, 9);
      assert.equal(await upload(f.forwarder.addr.port, data), sha256hex(data));
      // Control: without the heartbeat the same idle timeout does end a session.
      const quietOne = await forwardTo(destPort, { heartbeatMs: 60_000 });
      const end = await quietOne.session.ended;
      assert.match(end.message, /inactivity/);
      await quietOne.stop();
    } finally {
      emu.mgs.faults.reset();
      await f.stop();
    }
  });
});

Deno.test("forward: pause_publication holds traffic, start_publication resumes it intact", async () => {
  await lab({}, async ({ emu, destPort }) => {
    const f = await forwardTo(destPort);
    try {
      const port = f.forwarder.addr.port;
      const transfer = download(port, 8 * MB);
      await new Promise((r) => setTimeout(r, 30));
      emu.mgs.faults.pausePublication(300);
      assert.equal(sha256hex(await transfer), sha256hex(pattern(8 * MB, 8 * MB)));
    } finally {
      await f.stop();
    }
  });
});
