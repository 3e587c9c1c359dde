/**
 * Stripes end to end, paced like the real SSM agent (1 KiB/ms per session): 8 parallel
 * downloads (the kernel picks their source ports) use all 8 stripes; `auto` (the default) grows
 * under them and says why; a session whose agent side goes silent is replaced within 15 s and
 * the transfer over it completes intact.
 */
import assert from "node:assert/strict";
import type { Lab } from "../../scripts/lab.ts";
import { ssmProxy, startTunnel, tunnelStatus } from "../../scripts/lab/stack.ts";
import { assertLaptopClean, e2eTest, withStack } from "../support/lab.ts";
import {
  checkTransfer,
  fault,
  installFaultScripts,
  sleep,
  slowTransfer,
} from "../support/lab_faults.ts";

/** 8 fetches at once from one process; prints {bytes, secs}. */
async function parallel(lab: Lab, size: number): Promise<{ bytes: number; secs: number }> {
  const url = `http://${lab.serviceAddress}/blob?size=${size}`;
  const code = `const t=performance.now();let n=0;await Promise.all(Array.from({length:8},` +
    `async()=>{const r=await fetch(${
      JSON.stringify(url)
    });for await(const c of r.body)n+=c.length;}));` +
    `console.log(JSON.stringify({bytes:n,secs:(performance.now()-t)/1000}));`;
  const r = await lab.exec("laptop", ["timeout", "120", Deno.execPath(), "eval", code]);
  assert.ok(r.success, r.stderr);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!);
}

interface StripeStatus {
  status: string;
  sessions: string[];
  stats?: {
    stripesOpen?: number;
    stripesAuto?: boolean;
    stripesReason?: string;
    stripeBytesIn?: Record<string, number>;
  };
}

async function status(lab: Lab, name: string): Promise<StripeStatus | undefined> {
  return await tunnelStatus(lab, "laptop", name) as unknown as StripeStatus | undefined;
}

async function stop(lab: Lab, name: string, t: { proc: { status: Promise<{ code: number }> } }) {
  const r = await ssmProxy(lab, "laptop", ["stop", name]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await t.proc.status).code, 0);
}

e2eTest(
  "e2e: stripes — 8 flows over 8 stripes, auto growth, a silent session replaced",
  async (t) => {
    await withStack({ pacing: true }, async ({ lab }) => {
      await installFaultScripts(lab);
      const cidrs = [lab.vpcNetwork];

      await t.step("--stripes 8: 8 parallel downloads use every stripe", async () => {
        const tun = await startTunnel(lab, "laptop", {
          name: "s8",
          cidrs,
          extra: ["--stripes", "8"],
        });
        const { bytes, secs } = await parallel(lab, 3e6);
        assert.equal(bytes, 24e6);
        console.log(`8 stripes, 8 flows: ${(bytes / secs / 1e6).toFixed(2)} MB/s`);
        // Hashing kernel-chosen (even) ports used 3 of 8 stripes: now each carries one flow's 3 MB.
        // The state file is rewritten once a second (later on a loaded machine): wait for the
        // counters that include the end of the downloads.
        let per: Record<string, number> = {};
        for (let n = 0; n < 20; n++) {
          per = (await status(lab, "s8"))?.stats?.stripeBytesIn ?? {};
          if (Object.values(per).reduce((x, y) => x + y, 0) >= bytes) break;
          await sleep(250);
        }
        assert.equal(Object.keys(per).length, 8, JSON.stringify(per));
        for (const [i, b] of Object.entries(per)) {
          assert.ok(b >= 2.5e6, `stripe ${i} received ${b} bytes: ${JSON.stringify(per)}`);
        }
        await stop(lab, "s8", tun);
      });

      await t.step("auto (the default): grows under 8 downloads, and status says why", async () => {
        const tun = await startTunnel(lab, "laptop", { name: "auto", cidrs });
        // The state file has stats from the live line's first tick, a second after "up".
        let before = await status(lab, "auto");
        for (let i = 0; i < 50 && before?.stats === undefined; i++) {
          await sleep(100);
          before = await status(lab, "auto");
        }
        assert.equal(before?.stats?.stripesAuto, true);
        assert.equal(before?.sessions.length, 1, "auto starts with one session");
        const { bytes, secs } = await parallel(lab, 3e6);
        console.log(`auto, 8 flows: ${(bytes / secs / 1e6).toFixed(2)} MB/s`);
        const s = await status(lab, "auto");
        assert.ok((s?.stats?.stripesOpen ?? 0) >= 4, JSON.stringify(s?.stats));
        assert.match(s?.stats?.stripesReason ?? "", /1 -> \d+ stripes: every stripe backed up/);
        const text = await ssmProxy(lab, "laptop", ["status", "auto"]);
        assert.match(text.stdout, /stripes +\d+ up of \d+, auto up to 8; last change: /);
        await stop(lab, "auto", tun);
      });

      await t.step(
        "a session gone silent (agent side dead, no close) is replaced within 15 s",
        async () => {
          const tun = await startTunnel(lab, "laptop", {
            name: "dead",
            cidrs,
            extra: ["--stripes", "1"],
          });
          const first = tun.status.sessions[0];
          const transfer = slowTransfer(lab, 4 << 20);
          await sleep(1000);
          await fault(lab, { action: "stall", ms: 120_000, sessionId: first });
          const t0 = performance.now();
          let s: StripeStatus | undefined;
          while (performance.now() - t0 < 20_000) {
            s = await status(lab, "dead");
            if (s?.status === "up" && s.sessions[0] && s.sessions[0] !== first) break;
            await sleep(200);
          }
          const ms = performance.now() - t0;
          console.log(`replaced ${Math.round(ms)} ms after the session went silent`);
          // Replaced at all within the wait; how fast (target 15 s) is bench/stripes.ts's figure.
          assert.ok(s?.sessions[0] !== first, `not replaced: ${JSON.stringify(s)}`);
          checkTransfer(await transfer, 4 << 20);
          assert.match(tun.proc.output(), /no answer on stripe 0/);
          await fault(lab, { action: "reset" }, false);
          await stop(lab, "dead", tun);
          await assertLaptopClean(lab);
        },
      );
    });
  },
);
