/**
 * Bulk throughput through `ssm-proxy forward` + the emulator, each in its own process as in real
 * use, with the destination and the load in this one. Prints a table and a JSON line.
 */
import { download, pattern, sha256hex, startDestination, upload } from "../tests/support/net.ts";
import { awsEnv } from "../tests/support/aws_env.ts";

const ROOT = new URL("..", import.meta.url).pathname;
/** The real agent's ceiling: 1024 bytes per message, one message per ms. */
const PACED_CEILING = 1024 * 1000;

interface Proc {
  child: Deno.ChildProcess;
  lines: AsyncIterator<string>;
}

function spawn(args: string[], env: Record<string, string>): Proc {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--cached-only", `${ROOT}main.ts`, ...args],
    env,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(splitLines())[
    Symbol.asyncIterator
  ]();
  return { child, lines };
}

function splitLines(): TransformStream<string, string> {
  let rest = "";
  return new TransformStream({
    transform(chunk, ctl) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      for (const p of parts) ctl.enqueue(p);
    },
    flush(ctl) {
      if (rest) ctl.enqueue(rest);
    },
  });
}

async function waitFor(p: Proc, re: RegExp): Promise<RegExpMatchArray> {
  while (true) {
    const r = await p.lines.next();
    if (r.done) throw new Error(`process ended before printing ${re}`);
    const m = r.value.match(re);
    if (m) return m;
  }
}

async function stopProc(p: Proc) {
  try {
    p.child.kill("SIGINT");
  } catch { /* gone */ }
  await p.child.status;
  await p.lines.return?.();
}

/** The emulator and `forward` in their own processes; `fn` gets forward's local port. */
async function withForward<T>(
  o: { pacing: boolean; args?: string[]; env?: Record<string, string> },
  fn: (localPort: number) => Promise<T>,
): Promise<T> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const emu = spawn([
    "emulator",
    "--listen",
    `127.0.0.1:${port}`,
    ...(o.pacing ? [] : ["--no-pacing"]),
  ], {});
  await waitFor(emu, /emulator listening/);
  const dest = startDestination();
  const env: Record<string, string> = { ...awsEnv(`http://127.0.0.1:${port}`), ...o.env };
  const fwd = spawn([
    "forward",
    "--target",
    "i-0123456789abcdef0",
    "--remote-port",
    String(dest.port),
    ...(o.args ?? []),
  ], env);
  const [, localPort] = await waitFor(fwd, /^Local port: (\d+)/);
  try {
    return await fn(Number(localPort));
  } finally {
    await stopProc(fwd);
    await stopProc(emu);
    await dest.close();
  }
}

export async function benchForward(
  pacing: boolean,
  sizes: { up: number; down: number },
  messageSize?: number,
) {
  const env: Record<string, string> = {};
  if (messageSize) env.SSM_PROXY_MESSAGE_SIZE = String(messageSize);
  return await withForward({ pacing, env }, async (lp) => {
    // Warm up the path (JIT, TCP windows) before timing.
    await download(lp, 64 * 1024);
    const upData = pattern(sizes.up, 5);
    let t = performance.now();
    const digest = await upload(lp, upData);
    const upSecs = (performance.now() - t) / 1000;
    if (digest !== sha256hex(upData)) throw new Error("upload corrupted");
    t = performance.now();
    const down = await download(lp, sizes.down);
    const downSecs = (performance.now() - t) / 1000;
    if (down.length !== sizes.down) throw new Error("download short");
    return {
      pacing,
      messageSize: messageSize ?? 1024,
      upMBps: sizes.up / upSecs / 1e6,
      downMBps: sizes.down / downSecs / 1e6,
      downOfCeiling: sizes.down / downSecs / PACED_CEILING,
      upOfCeiling: sizes.up / upSecs / PACED_CEILING,
    };
  });
}

export interface ForwardSessionsBench {
  /** Aggregate MB/s of 4 parallel downloaders, paced, with one session and with `--sessions auto`. */
  oneMBps: number;
  autoMBps: number;
  ratio: number;
}

/**
 * Four downloaders in parallel, each fetching piece after piece (new connections keep coming,
 * as with a browser or a package manager), paced: `--sessions 1` against `--sessions auto`.
 * Auto starts with one session too, so its first seconds are the same.
 */
export async function benchForwardSessions(total = 16e6): Promise<ForwardSessionsBench> {
  const run = (sessions: string) =>
    withForward({ pacing: true, args: ["--sessions", sessions] }, async (lp) => {
      await download(lp, 64 * 1024);
      const piece = 500_000;
      let left = Math.ceil(total / piece);
      const t = performance.now();
      await Promise.all(Array.from({ length: 4 }, async () => {
        while (left-- > 0) {
          if ((await download(lp, piece)).length !== piece) throw new Error("download short");
        }
      }));
      return Math.ceil(total / piece) * piece / ((performance.now() - t) / 1000) / 1e6;
    });
  const oneMBps = await run("1");
  const autoMBps = await run("auto");
  return { oneMBps, autoMBps, ratio: autoMBps / oneMBps };
}

export function forwardSessionsRows(b: ForwardSessionsBench): [string, string, string][] {
  return [[
    "forward, pacing on, 4 parallel downloads, sessions 1 / auto",
    `${b.oneMBps.toFixed(2)} / ${b.autoMBps.toFixed(2)} MB/s (x${b.ratio.toFixed(2)})`,
    "auto > 1",
  ]];
}

if (import.meta.main) {
  const b = await benchForwardSessions();
  for (const r of forwardSessionsRows(b)) console.log(r.join("  "));
  console.log(JSON.stringify(b));
}
