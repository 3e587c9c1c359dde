/**
 * Striping in the namespace lab, paced like the real SSM agent (1 KiB/ms per session): 8
 * parallel downloads (kernel-chosen source ports) with 1, 2, 4 and 8 stripes and with `auto`,
 * and how long `auto` takes to reach 5x one stripe and its plateau. Needs root. Prints a table
 * and a JSON line.
 */
import { createLab, type Lab } from "../scripts/lab.ts";
import { startAgent, startEmulator, startTunnel, tunnelStatus } from "../scripts/lab/stack.ts";
import { fault, installFaultScripts, slowTransfer } from "../tests/support/lab_faults.ts";

export interface StripesRun {
  stripes: string;
  /** Aggregate MB/s over the whole transfer. */
  MBps: number;
  /** 1 s rolling aggregate rate, every 250 ms (MB/s). */
  curve: number[];
}

export interface StripesBench {
  runs: StripesRun[];
  /** `auto`: seconds until the 1 s rate first reached 5x the one-stripe rate (-1: never). */
  autoTo5xSecs: number;
  /** `auto`: seconds until the 1 s rate first reached 90 % of its best. */
  autoPlateauSecs: number;
  /** A session gone silent mid-transfer (no close): ms until a new session replaced it. */
  silentReplacedMs: number;
}

const PARALLEL = 8;

/** N parallel fetches; prints the bytes so far every 250 ms, then the total and seconds. */
function script(url: string, n: number): string {
  return `let got=0;const t=performance.now();const marks=[];` +
    `const tick=setInterval(()=>marks.push(got),250);` +
    `await Promise.all(Array.from({length:${n}},async()=>{` +
    `const r=await fetch(${JSON.stringify(url)});for await(const c of r.body)got+=c.length;}));` +
    `clearInterval(tick);` +
    `console.log(JSON.stringify({bytes:got,secs:(performance.now()-t)/1000,marks}));`;
}

async function parallelDownload(lab: Lab, size: number): Promise<Omit<StripesRun, "stripes">> {
  const url = `http://${lab.serviceAddress}/blob?size=${size}`;
  const r = await lab.exec("laptop", [
    "timeout",
    "120",
    Deno.execPath(),
    "eval",
    script(url, PARALLEL),
  ]);
  const line = r.stdout.trim().split("\n").at(-1);
  if (!r.success || !line) throw new Error(`downloads failed: ${r.stderr}`);
  const { bytes, secs, marks } = JSON.parse(line) as {
    bytes: number;
    secs: number;
    marks: number[];
  };
  if (bytes !== size * PARALLEL) throw new Error(`got ${bytes} of ${size * PARALLEL} bytes`);
  const curve = marks.map((m, i) => (m - (marks[i - 4] ?? 0)) / Math.min(1, (i + 1) / 4) / 1e6);
  return { MBps: bytes / secs / 1e6, curve };
}

export async function benchStripes(sizePerFlow = 4e6): Promise<StripesBench> {
  const lab = await createLab({ laptops: 1, handleSignals: true });
  const runs: StripesRun[] = [];
  let silentReplacedMs = -1;
  try {
    await startEmulator(lab, { pacing: true });
    await startAgent(lab);
    for (const stripes of ["1", "2", "4", "8", "auto"]) {
      const t = await startTunnel(lab, "laptop", {
        name: `s${stripes}`,
        cidrs: [lab.vpcNetwork],
        extra: ["--stripes", stripes, "--max-stripes", "8"],
      });
      try {
        // Auto must start from one stripe: no warm-up for it.
        if (stripes !== "auto") await parallelDownload(lab, 256 * 1024);
        const size = stripes === "1" || stripes === "2" ? sizePerFlow / 4 : sizePerFlow;
        runs.push({ stripes, ...(await parallelDownload(lab, size)) });
      } catch (e) {
        throw new Error(`stripes ${stripes}: ${(e as Error).message}\n${t.proc.tail()}`);
      } finally {
        t.proc.kill("SIGTERM");
        await t.proc.status;
      }
    }
    silentReplacedMs = await silentSession(lab);
  } finally {
    await lab.destroy();
  }
  const one = runs[0].MBps;
  const auto = runs.at(-1)!.curve;
  const best = Math.max(...auto);
  const at = (ok: (v: number) => boolean) => {
    const i = auto.findIndex(ok);
    return i < 0 ? -1 : (i + 1) * 0.25;
  };
  return {
    runs,
    autoTo5xSecs: at((v) => v >= 5 * one),
    autoPlateauSecs: at((v) => v >= 0.9 * best),
    silentReplacedMs,
  };
}

/** The SSM agent's side of a session stops answering, without a close, under a transfer. */
async function silentSession(lab: Lab): Promise<number> {
  await installFaultScripts(lab);
  const t = await startTunnel(lab, "laptop", {
    name: "silent",
    cidrs: [lab.vpcNetwork],
    extra: ["--stripes", "1"],
  });
  try {
    const first = t.status.sessions[0];
    const transfer = slowTransfer(lab, 4 << 20);
    await new Promise((r) => setTimeout(r, 1000));
    await fault(lab, { action: "stall", ms: 120_000, sessionId: first });
    const t0 = performance.now();
    while (performance.now() - t0 < 60_000) {
      const s = await tunnelStatus(lab, "laptop", "silent");
      if (s?.status === "up" && s.sessions[0] && s.sessions[0] !== first) {
        const ms = performance.now() - t0;
        await transfer;
        return ms;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    return -1;
  } finally {
    await fault(lab, { action: "reset" }, false).catch(() => {});
    t.proc.kill("SIGTERM");
    await t.proc.status;
  }
}

export function stripesRows(b: StripesBench): [string, string, string][] {
  const one = b.runs[0].MBps;
  return [
    ...b.runs.map((r): [string, string, string] => [
      `tunnel, pacing on, ${PARALLEL} parallel downloads, stripes ${r.stripes}`,
      `${r.MBps.toFixed(2)} MB/s (${(r.MBps / one).toFixed(1)}x one stripe)`,
      r.stripes === "8" ? ">= 6x one stripe" : "",
    ]),
    [
      "stripes auto: 1 s rate reaches 5x one stripe after",
      b.autoTo5xSecs < 0 ? "never" : `${b.autoTo5xSecs.toFixed(2)} s`,
      "<= 5 s",
    ],
    [
      "stripes auto: plateau (90 % of best 1 s rate) after",
      `${b.autoPlateauSecs.toFixed(2)} s`,
      "",
    ],
    [
      "a session gone silent mid-transfer: replaced after",
      b.silentReplacedMs < 0 ? "never (60 s)" : `${(b.silentReplacedMs / 1000).toFixed(1)} s`,
      "<= 15 s",
    ],
  ];
}

if (import.meta.main) {
  const b = await benchStripes();
  for (const row of stripesRows(b)) console.log(row.join("  |  "));
  console.log(JSON.stringify({ stripes: b }));
}
