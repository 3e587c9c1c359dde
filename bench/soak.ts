/**
 * Healing soak (DESIGN §4 "Healing") in the namespace lab: slow TCP transfers (SHA-256 checked)
 * and a 20 Hz UDP echo run through the tunnel while the emulator injects faults at random
 * (dropped WebSocket, closed session, short stalls). Prints faults injected, recovery time
 * (median / p95 / max, measured on the data path: the UDP gap around each fault), bytes
 * corrupted and TCP connections reset, then a JSON line. Needs root.
 *
 *   deno run -A bench/soak.ts [--seconds 300] [--seed 1]
 *
 * Targets: 0 bytes corrupted, no reset for gaps < 30 s, median recovery after a dropped
 * WebSocket ≤ 1 s.
 */
import { createLab, type Lab } from "../scripts/lab.ts";
import { EMULATOR_PORT, startAgent, startEmulator, startTunnel } from "../scripts/lab/stack.ts";

const BLOB = 16 << 20;

const READER = `
import { createHash } from "node:crypto";
const [url, want] = Deno.args;
try {
  const res = await fetch(url);
  const h = createHash("sha256");
  let bytes = 0;
  for await (const c of res.body) {
    h.update(c);
    bytes += c.length;
    await new Promise((r) => setTimeout(r, Math.ceil(c.length / 4000)));
  }
  console.log(JSON.stringify({ bytes, ok: h.digest("hex") === want }));
} catch (e) {
  console.log(JSON.stringify({ error: String(e) }));
}
`;

/** Echo every 50 ms; prints each silence longer than 150 ms as {start, ms} (epoch ms). */
const ECHO = `
import dgram from "node:dgram";
const s = dgram.createSocket("udp4");
let last = Date.now();
s.on("message", () => {
  const now = Date.now();
  if (now - last > 150) console.log(JSON.stringify({ start: last, ms: now - last }));
  last = now;
});
setInterval(() => s.send("x", 7, Deno.args[0]), 50);
`;

type FaultKind = "dropWebSocket" | "channelClosed" | "stall";

interface Injected {
  kind: FaultKind;
  at: number;
}

function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function fault(lab: Lab, body: object): Promise<void> {
  const script = `await fetch(${
    JSON.stringify(`http://${lab.instanceAddress}:${EMULATOR_PORT}/_emulator/faults`)
  }, { method: "POST", body: ${JSON.stringify(JSON.stringify(body))} }).then((r) => r.text());`;
  const r = await lab.exec("laptop", [Deno.execPath(), "eval", script]);
  if (!r.success) throw new Error(`fault ${JSON.stringify(body)}: ${r.stderr}`);
}

function pct(xs: number[], p: number): number {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

export async function soak(seconds: number, seed = 1) {
  const rnd = mulberry32(seed);
  const lab = await createLab({ laptops: 1, handleSignals: true });
  try {
    await startEmulator(lab);
    await startAgent(lab);
    const tun = await startTunnel(lab, "laptop", { name: "soak", cidrs: [lab.vpcNetwork] });
    await Deno.writeTextFile(`${lab.dir}/reader.ts`, READER);
    await Deno.writeTextFile(`${lab.dir}/echo.ts`, ECHO);
    const echo = lab.spawn(
      "laptop",
      [
        Deno.execPath(),
        "run",
        "-A",
        `${lab.dir}/echo.ts`,
        lab.serviceAddress,
      ],
      {},
      "echo",
    );
    const want = (await (await lab.exec("vpc", [
      Deno.execPath(),
      "eval",
      `const r = await fetch("http://${lab.serviceAddress}/blob.sha256?size=${BLOB}");console.log((await r.text()).trim());`,
    ])).stdout).trim();

    const end = Date.now() + seconds * 1000;
    const transfers = { done: 0, bytes: 0, corrupted: 0, reset: 0, errors: [] as string[] };
    const loop = (async () => {
      while (Date.now() < end) {
        const r = await lab.exec("laptop", [
          Deno.execPath(),
          "run",
          "-A",
          `${lab.dir}/reader.ts`,
          `http://${lab.serviceAddress}/blob?size=${BLOB}`,
          want,
        ]);
        const doc = JSON.parse(r.stdout.trim().split("\n").at(-1) || "{}");
        if (doc.error) {
          if (/reset|broken pipe|aborted/i.test(doc.error)) transfers.reset++;
          transfers.errors.push(doc.error);
        } else if (!doc.ok || doc.bytes !== BLOB) transfers.corrupted += BLOB;
        else {
          transfers.done++;
          transfers.bytes += doc.bytes;
        }
      }
    })();

    const injected: Injected[] = [];
    const kinds: FaultKind[] = ["dropWebSocket", "dropWebSocket", "channelClosed", "stall"];
    await new Promise((r) => setTimeout(r, 2000));
    while (Date.now() < end - 8000) {
      const kind = kinds[Math.floor(rnd() * kinds.length)];
      const at = Date.now();
      await fault(lab, kind === "stall" ? { action: "stall", ms: 2000 } : { action: kind });
      injected.push({ kind, at });
      console.error(`soak: ${new Date(at).toISOString()} ${kind}`);
      await new Promise((r) => setTimeout(r, 5000 + rnd() * 5000));
    }
    await loop;
    echo.kill("SIGTERM");
    await echo.status;
    tun.proc.kill("SIGINT");
    await tun.proc.status;

    const gaps = echo.output().split("\n").filter((l) => l.startsWith("{")).map((l) =>
      JSON.parse(l) as { start: number; ms: number }
    );
    const recovery: Record<FaultKind, number[]> = {
      dropWebSocket: [],
      channelClosed: [],
      stall: [],
    };
    for (const f of injected) {
      const g = gaps.find((g) => g.start + g.ms >= f.at && g.start <= f.at + 2000);
      recovery[f.kind].push(g ? Math.max(0, g.start + g.ms - f.at) : 0);
    }
    const all = Object.values(recovery).flat();
    return {
      seconds,
      faults: injected.length,
      byKind: Object.fromEntries(
        Object.entries(recovery).map(([k, xs]) => [k, {
          n: xs.length,
          medianMs: pct(xs, 50),
          p95Ms: pct(xs, 95),
          maxMs: Math.max(0, ...xs),
        }]),
      ),
      recoveryMedianMs: pct(all, 50),
      recoveryP95Ms: pct(all, 95),
      recoveryMaxMs: Math.max(0, ...all),
      transfers: transfers.done,
      bytesTransferred: transfers.bytes,
      bytesCorrupted: transfers.corrupted,
      tcpResets: transfers.reset,
      errors: transfers.errors.slice(0, 5),
    };
  } finally {
    await lab.destroy();
  }
}

if (import.meta.main) {
  const arg = (name: string, d: number) => {
    const i = Deno.args.indexOf(name);
    return i >= 0 ? Number(Deno.args[i + 1]) : d;
  };
  const r = await soak(arg("--seconds", 300), arg("--seed", 1));
  console.log(`faults injected      ${r.faults}`);
  for (const [k, v] of Object.entries(r.byKind)) {
    console.log(
      `  ${
        k.padEnd(18)
      } ${v.n}: recovery median ${v.medianMs} ms, p95 ${v.p95Ms} ms, max ${v.maxMs} ms`,
    );
  }
  console.log(
    `recovery             median ${r.recoveryMedianMs} ms, p95 ${r.recoveryP95Ms} ms, max ${r.recoveryMaxMs} ms`,
  );
  console.log(`transfers            ${r.transfers} (${(r.bytesTransferred / 1e6).toFixed(0)} MB)`);
  console.log(`bytes corrupted      ${r.bytesCorrupted}`);
  console.log(`TCP connections reset ${r.tcpResets}`);
  console.log(JSON.stringify(r));
}
