/**
 * TCP scenarios for kernel_lab.ts: real kernel sockets as the app, services on loopback as the
 * destinations. Each returns figures for kernel_test.ts to assert on, or throws. Every scenario
 * has its own port, so one that times out cannot disturb the next.
 */
import net from "node:net";
import { once } from "node:events";
import { blobChunks } from "../../scripts/lab/blob.ts";
import { DEFAULT_LIMITS } from "../../src/netstack/tcp_conn.ts";
import {
  check,
  download,
  echo,
  envNumber,
  type Progress,
  readExactly,
  readLine,
  REMOTE,
  type Scenario,
  serve,
  sink,
  sleep,
  source,
  upload,
  withDeadline,
  writeAll,
} from "./kernel_io.ts";

const ms = (t0: number) => Math.round(performance.now() - t0);

export const TCP_SCENARIOS: Record<string, Scenario> = {
  /** One download of LAB_SIZE bytes (100 MB), hashed. */
  async download() {
    const n = envNumber("LAB_SIZE", 100 << 20);
    return await serve(9002, source, async () => {
      const t0 = performance.now();
      const r = await download(REMOTE, 9002, n);
      check(r, n);
      return { bytes: r.bytes, mbps: n / 1e6 / (ms(t0) / 1000) };
    });
  },

  async upload() {
    const n = envNumber("LAB_SIZE", 100 << 20);
    return await serve(9003, sink, async () => {
      const t0 = performance.now();
      const r = await upload(REMOTE, 9003, n);
      check(r, n);
      return { bytes: r.bytes, mbps: n / 1e6 / (ms(t0) / 1000) };
    });
  },

  /**
   * LAB_BOTH_SIZE bytes (20 MB) down and up at the same time, both hashed, within
   * LAB_BOTH_DEADLINE_MS (30 s); past it, says how far each direction came.
   */
  async both() {
    const n = envNumber("LAB_BOTH_SIZE", 20 << 20);
    const deadline = envNumber("LAB_BOTH_DEADLINE_MS", 30_000);
    return await serve(9010, source, () =>
      serve(9011, sink, async () => {
        const t0 = performance.now();
        const down: Progress = { bytes: 0 };
        const up: Progress = { bytes: 0 };
        const timed = <T>(p: Promise<T>, pr: Progress) => p.finally(() => (pr.doneMs = ms(t0)));
        const say = (pr: Progress) =>
          pr.doneMs === undefined
            ? `${pr.bytes} of ${n} bytes and waiting`
            : `done in ${pr.doneMs} ms`;
        const [d, u] = await withDeadline(
          Promise.all([
            timed(download(REMOTE, 9010, n, { progress: down }), down),
            timed(upload(REMOTE, 9011, n, up), up),
          ]),
          deadline,
          () =>
            `not done after ${deadline} ms: download ${say(down)}; upload (app writes) ${say(up)}`,
        );
        check(d, n);
        check(u, n);
        return { down: d.bytes, up: u.bytes, ms: ms(t0), downMs: down.doneMs, upMs: up.doneMs };
      }));
  },

  /**
   * LAB_CONNS (200) connections at once, each echoing LAB_CONN_SIZE (256 KiB) byte-exact, spread
   * over LAB_CONN_DESTS (8) destination addresses: the stack admits 32 opens per destination at
   * a time (§9) and drops further SYNs, which the kernel resends only after 1 s, 3 s, 7 s.
   */
  async concurrent() {
    const count = envNumber("LAB_CONNS", 200);
    const each = envNumber("LAB_CONN_SIZE", 256 << 10);
    const dests = envNumber("LAB_CONN_DESTS", 8);
    return await serve(9012, echo, async () => {
      const t0 = performance.now();
      let maxConnectMs = 0;
      const results = await Promise.all(Array.from({ length: count }, async (_, i) => {
        try {
          const hostname = dests > 1 ? `10.200.1.${1 + (i % dests)}` : REMOTE;
          const c = await Deno.connect({ hostname, port: 9012 });
          maxConnectMs = Math.max(maxConnectMs, ms(t0));
          try {
            const data = new Uint8Array(each).map((_, j) => (i * 7 + j) & 0xff);
            const reading = readExactly(c, each);
            const [got] = await Promise.all([reading, writeAll(c, data)]);
            if (got.length !== each) return `${got.length} of ${each} bytes`;
            return got.every((b, j) => b === data[j]) ? "ok" : "different bytes";
          } finally {
            c.close();
          }
        } catch (e) {
          return (e as Error).name;
        }
      }));
      const bad: Record<string, number> = {};
      for (const r of results) if (r !== "ok") bad[r] = (bad[r] ?? 0) + 1;
      if (Object.keys(bad).length) {
        throw new Error(`of ${count} echo connections: ${JSON.stringify(bad)}`);
      }
      return { connections: count, bytesEach: each, ms: ms(t0), maxConnectMs };
    });
  },

  async refused() {
    const t0 = performance.now();
    try {
      const c = await Deno.connect({ hostname: REMOTE, port: 9099 });
      c.close();
    } catch (e) {
      return { error: (e as Error).name, ms: ms(t0) };
    }
    throw new Error("connect to a port nobody listens on succeeded");
  },

  /** The client shuts its write side and still reads the whole 1 MiB reply (§3.6 linger). */
  async halfclose() {
    const reply = new Uint8Array(1 << 20).map((_, i) => i & 0xff);
    return await serve(9004, async (c) => {
      await readLine(c);
      await writeAll(c, reply);
    }, async () => {
      const c = await Deno.connect({ hostname: REMOTE, port: 9004 });
      try {
        await writeAll(c, new TextEncoder().encode("hello\n"));
        await c.closeWrite();
        const got = await readExactly(c, reply.length + 1);
        if (got.length !== reply.length || !got.every((b, i) => b === reply[i])) {
          throw new Error(`reply ${got.length} of ${reply.length} bytes, or different`);
        }
        return { bytes: got.length };
      } finally {
        c.close();
      }
    });
  },

  /**
   * The app resets mid-download (SO_LINGER 0: node's resetAndDestroy): the destination learns at
   * once (its writes fail) and the stream is gone.
   */
  async clientrst({ transport }) {
    let ended = 0;
    const done = Promise.withResolvers<void>();
    return await serve(9005, async (c) => {
      try {
        for (const chunk of blobChunks(50 << 20)) await writeAll(c, chunk);
      } catch { /* reset: what we want */ }
      ended = performance.now();
      done.resolve();
    }, async () => {
      const s = net.connect(9005, REMOTE);
      s.on("error", () => {});
      await once(s, "data");
      await sleep(100);
      const t0 = performance.now();
      s.resetAndDestroy();
      await Promise.race([done.promise, sleep(5000)]);
      if (!ended) throw new Error("the destination never learned of the reset");
      await sleep(50);
      return {
        ms: Math.round(ended - t0),
        streamsTo9005: transport.liveTo.get(`${REMOTE}|9005`) ?? 0,
      };
    });
  },

  /**
   * The destination resets mid-transfer (SO_LINGER 0, after 256 KiB of 4 MiB): the app's read
   * ends at once, with a reset or EOF, and does not hang.
   */
  async serverrst() {
    let resetAt = 0;
    const server = net.createServer((s) => {
      s.on("error", () => {});
      s.write(new Uint8Array(256 * 1024), () => {
        resetAt = performance.now();
        s.resetAndDestroy();
      });
    });
    server.listen(9006, "127.0.0.1");
    await once(server, "listening");
    try {
      const c = await Deno.connect({ hostname: REMOTE, port: 9006 });
      let total = 0;
      let ended = "eof";
      const reading = (async () => {
        const buf = new Uint8Array(65536);
        try {
          let n: number | null;
          while ((n = await c.read(buf)) !== null) total += n;
        } catch (e) {
          ended = (e as Error).name;
        }
      })();
      const hang = await Promise.race([reading.then(() => false), sleep(5000).then(() => true)]);
      c.close();
      await reading;
      if (hang) throw new Error(`the app's read still waits after 5 s (got ${total} bytes)`);
      return { bytes: total, ended, ms: Math.round(performance.now() - resetAt) };
    } finally {
      server.close();
    }
  },

  /** The destination sends 300 kB and closes normally: the app gets all of it, then EOF. */
  async serverclose() {
    return await serve(9008, async (c) => {
      await writeAll(c, new Uint8Array(300_000).fill(7));
    }, async () => {
      const c = await Deno.connect({ hostname: REMOTE, port: 9008 });
      try {
        const got = await readExactly(c, 300_001);
        if (got.length !== 300_000) throw new Error(`got ${got.length} of 300000 bytes`);
        return { bytes: got.length };
      } finally {
        c.close();
      }
    });
  },

  /**
   * A slow reader and a fast server: what one connection holds for the kernel stays within
   * sndCap plus one transport read (§5.4), sampled after every chunk from the destination; the
   * server's writes block (backpressure reaches it); no read waits more than a second.
   */
  async slowreader({ driver, transport }) {
    const n = envNumber("LAB_SLOW_SIZE", 6 << 20);
    let maxQueued = 0;
    transport.afterData = () => {
      const q = driver.stack.maxSendQueued();
      if (q > maxQueued) maxQueued = q;
    };
    let serverDone = 0;
    const pauses = transport.pauses;
    try {
      return await serve(9007, async (c) => {
        await source(c);
        serverDone = performance.now();
      }, async () => {
        const t0 = performance.now();
        let last = t0;
        let maxGap = 0;
        const pace = async () => {
          const now = performance.now();
          maxGap = Math.max(maxGap, now - last);
          await sleep(2);
          last = performance.now();
        };
        const r = await download(REMOTE, 9007, n, { pace, readSize: 16 * 1024 });
        check(r, n);
        const total = ms(t0);
        return {
          bytes: r.bytes,
          maxQueued,
          bound: DEFAULT_LIMITS.sndCap + transport.readSize,
          ms: total,
          serverDoneMs: Math.round(serverDone - t0),
          maxReadGapMs: Math.round(maxGap),
          pauses: transport.pauses - pauses,
        };
      });
    } finally {
      transport.afterData = undefined;
    }
  },
};
