/**
 * `--spread` in the namespace lab with two instances, paced like the real SSM agent (1 KiB/ms
 * per session): 8 parallel downloads through one instance with 4 stripes, then through both
 * instances with 4 stripes each, and through one instance with 8 stripes: the same number of
 * sessions with no spreading, which shows what this machine can carry at all (the emulator
 * plays both instances' SSM agents in one process, so it, not an instance, is the ceiling here).
 * Needs root. Prints a table and a JSON line.
 */
import { createLab, type Lab } from "../scripts/lab.ts";
import { spreadFixtures, startAgent, startEmulator, startTunnel } from "../scripts/lab/stack.ts";

export interface SpreadRun {
  what: string;
  /** Aggregate MB/s over the whole transfer. */
  MBps: number;
}

export interface SpreadBench {
  one: SpreadRun;
  spread: SpreadRun;
  /** One instance with as many sessions as the spread run: this machine's ceiling. */
  ceiling: SpreadRun;
  /** spread / one. */
  ratio: number;
}

const PARALLEL = 8;

async function parallelDownload(lab: Lab, size: number): Promise<number> {
  const url = `http://${lab.serviceAddress}/blob?size=${size}`;
  const code =
    `const t=performance.now();let n=0;await Promise.all(Array.from({length:${PARALLEL}},` +
    `async()=>{const r=await fetch(${
      JSON.stringify(url)
    });for await(const c of r.body)n+=c.length;}));` +
    `console.log(JSON.stringify({bytes:n,secs:(performance.now()-t)/1000}));`;
  const r = await lab.exec("laptop", ["timeout", "120", Deno.execPath(), "eval", code]);
  const line = r.stdout.trim().split("\n").at(-1);
  if (!r.success || !line) throw new Error(`downloads failed: ${r.stderr}`);
  const { bytes, secs } = JSON.parse(line) as { bytes: number; secs: number };
  if (bytes !== size * PARALLEL) throw new Error(`got ${bytes} of ${size * PARALLEL} bytes`);
  return bytes / secs / 1e6;
}

export async function benchSpread(sizePerFlow = 4e6): Promise<SpreadBench> {
  const lab = await createLab({ instances: 2, handleSignals: true });
  const runs: SpreadRun[] = [];
  try {
    await startEmulator(lab, { pacing: true, fixtures: await spreadFixtures(lab) });
    await startAgent(lab);
    await startAgent(lab, "", "instance2");
    const cases: [string, string[]][] = [
      ["one instance x 4 stripes", ["--target", "i-0123456789abcdef0"]],
      ["2 instances x 4 stripes (--spread)", ["--spread"]],
      ["one instance x 8 stripes (the same sessions, not spread)", [
        "--target",
        "i-0123456789abcdef0",
        "--stripes",
        "8",
      ]],
    ];
    for (const [n, [what, args]] of cases.entries()) {
      const t = await startTunnel(lab, "laptop", {
        name: `sp${n}`,
        cidrs: [lab.vpcNetwork],
        extra: ["--stripes", "4", ...args, "--no-dns"],
      });
      try {
        await parallelDownload(lab, 256 * 1024); // warm-up: sessions and windows open
        runs.push({ what, MBps: await parallelDownload(lab, sizePerFlow) });
      } catch (e) {
        throw new Error(`${what}: ${(e as Error).message}\n${t.proc.tail()}`);
      } finally {
        t.proc.kill("SIGTERM");
        await t.proc.status;
      }
    }
  } finally {
    await lab.destroy();
  }
  const [one, spread, ceiling] = runs;
  return { one, spread, ceiling, ratio: spread.MBps / one.MBps };
}

export function spreadRows(b: SpreadBench): [string, string, string][] {
  return [
    [
      `tunnel, pacing on, ${PARALLEL} parallel downloads, ${b.one.what}`,
      `${b.one.MBps.toFixed(2)} MB/s`,
      "",
    ],
    [
      `tunnel, pacing on, ${PARALLEL} parallel downloads, ${b.spread.what}`,
      `${b.spread.MBps.toFixed(2)} MB/s (${b.ratio.toFixed(2)}x one instance)`,
      ">= 1.8x one instance",
    ],
    [
      `tunnel, pacing on, ${PARALLEL} parallel downloads, ${b.ceiling.what}`,
      `${b.ceiling.MBps.toFixed(2)} MB/s (spread is ${
        (b.spread.MBps / b.ceiling.MBps).toFixed(2)
      }x this)`,
      "",
    ],
  ];
}

if (import.meta.main) {
  const b = await benchSpread();
  for (const row of spreadRows(b)) console.log(row.join("  |  "));
  console.log(JSON.stringify({ spread: b }));
}
