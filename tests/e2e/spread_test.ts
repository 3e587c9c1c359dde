/**
 * `start --spread` in the lab with two instance namespaces, each with its own ssm-proxy-agent
 * (different address pools) and uplink into the vpc: without --spread the ambiguous target says
 * to use it; with it, stripes go to both, downloads use both, status shows each; losing one
 * instance keeps the tunnel serving through the other, and it heals once that agent is back.
 */
import assert from "node:assert/strict";
import { createLab, type Lab, type LabProcess } from "../../scripts/lab.ts";
import {
  INSTANCE2_ID,
  spreadFixtures,
  ssmProxy,
  startAgent,
  startEmulator,
  startTunnel,
  tunnelStatus,
} from "../../scripts/lab/stack.ts";
import { assertErrorLine, assertLaptopClean, e2eTest } from "../support/lab.ts";

interface SpreadStatus {
  status: string;
  address: string;
  stats?: {
    instances?: {
      instanceId: string;
      address: string;
      stripesUp: number;
      stripesOpen: number;
      bytesIn: number;
    }[];
  };
}

async function status(lab: Lab, name: string): Promise<SpreadStatus | undefined> {
  return await tunnelStatus(lab, "laptop", name) as unknown as SpreadStatus | undefined;
}

/** N fetches at once from one process; prints {bytes, secs}. */
async function parallel(lab: Lab, n: number, size: number): Promise<{ bytes: number }> {
  const url = `http://${lab.serviceAddress}/blob?size=${size}`;
  const code = `const t=performance.now();let n=0;await Promise.all(Array.from({length:${n}},` +
    `async()=>{const r=await fetch(${
      JSON.stringify(url)
    });for await(const c of r.body)n+=c.length;}));` +
    `console.log(JSON.stringify({bytes:n,secs:(performance.now()-t)/1000}));`;
  const r = await lab.exec("laptop", ["timeout", "60", Deno.execPath(), "eval", code]);
  assert.ok(r.success, r.stderr);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!);
}

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    const v = await f();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}

e2eTest("e2e: spread — two instances, both carry flows, one lost and healed", async (t) => {
  const lab = await createLab({ instances: 2, handleSignals: false });
  const procs: [string, LabProcess][] = [];
  let ok = false;
  try {
    procs.push(["emulator", await startEmulator(lab, { fixtures: await spreadFixtures(lab) })]);
    // Leases kept on disk: a restarted agent gives the tunnel its address back.
    const keep = (n: string) => `stateDir: ${lab.dir}/leases${n}`;
    procs.push(["agent", await startAgent(lab, keep("1"))]);
    let agent2 = await startAgent(lab, keep("2"), "instance2");
    procs.push(["agent2", agent2]);
    const cidrs = [lab.vpcNetwork];

    await t.step("without --spread: the ambiguous target says to use it", async () => {
      const r = await ssmProxy(lab, "laptop", [
        "start",
        "--target",
        "name:bastion",
        "--cidr",
        lab.vpcNetwork,
        "--no-dns",
      ]);
      assertErrorLine(r, /matches 2 running instances: .*or add --spread/);
    });

    const tun = await startTunnel(lab, "laptop", {
      name: "spread",
      cidrs,
      extra: ["--spread", "--stripes", "2", "--no-dns"],
    });
    procs.push(["start", tun.proc]);

    await t.step("stripes on both instances; downloads use both; status shows each", async () => {
      // The state file gets its counters a moment after it says up.
      const s = await until("per-instance stats", async () => {
        const s = await status(lab, "spread");
        return s?.stats?.instances ? s : undefined;
      });
      const inst = s.stats!.instances!;
      assert.deepEqual(inst.map((i) => i.instanceId), ["i-0123456789abcdef0", INSTANCE2_ID]);
      assert.match(inst[0].address, /^100\.64\./);
      assert.match(inst[1].address, /^100\.65\./);
      assert.equal(s.address, inst[0].address, "the tun has the first instance's address");
      const base = inst.reduce((n, i) => n + i.bytesIn, 0);
      const { bytes } = await parallel(lab, 8, 2e6);
      assert.equal(bytes, 16e6);
      // The state file's counters trail by up to a second: wait until they hold the download.
      const after = await until("counters after the download", async () => {
        const is = (await status(lab, "spread"))?.stats?.instances;
        const sum = is?.reduce((n, i) => n + i.bytesIn, 0) ?? 0;
        return is && sum - base >= 16e6 ? is : undefined;
      }, 10_000);
      for (const i of after) {
        assert.equal(i.stripesUp, 2);
        assert.ok(i.bytesIn >= 4e6, `${i.instanceId} carried ${i.bytesIn} bytes`);
      }
      const text = await ssmProxy(lab, "laptop", ["status", "spread"]);
      assert.match(text.stdout, /instances\s+i-0123456789abcdef0 100\.64\.\S+: 2 up of 2 stripes/);
      assert.match(text.stdout, new RegExp(`${INSTANCE2_ID} 100\\.65\\.\\S+: 2 up of 2 stripes`));
      assert.match(text.stdout, /stripes 2\+2 on 2 instances/);
    });

    await t.step("instance2 lost: the tunnel serves through the other, then heals", async () => {
      agent2.kill("SIGKILL");
      await agent2.status;
      await until("instance2's stripes down", async () => {
        const i = (await status(lab, "spread"))?.stats?.instances?.[1];
        return i && i.stripesUp === 0 ? true : undefined;
      });
      const { bytes } = await parallel(lab, 4, 1e6);
      assert.equal(bytes, 4e6, "new flows go to the instance that is left");
      agent2 = await startAgent(lab, keep("2"), "instance2");
      procs.push(["agent2 (again)", agent2]);
      await until("instance2 healed", async () => {
        const i = (await status(lab, "spread"))?.stats?.instances?.[1];
        return i && i.stripesUp === 2 ? true : undefined;
      }, 60_000);
      const bytesOf = async () => {
        const is = (await status(lab, "spread"))?.stats?.instances;
        return is ? { one: is[0].bytesIn, two: is[1].bytesIn } : undefined;
      };
      const before = (await until("counters", bytesOf))!;
      await parallel(lab, 8, 1e6);
      // Counters trail by up to a second: wait until both together hold the 8 MB.
      const later = await until("counters after the download", async () => {
        const b = await bytesOf();
        return b && b.one - before.one + b.two - before.two >= 8e6 ? b : undefined;
      }, 10_000);
      const two = later.two - before.two;
      assert.ok(two >= 2e6, `healed instance2 carried ${two} new bytes`);
    });

    await t.step("stop leaves the laptop clean", async () => {
      const r = await ssmProxy(lab, "laptop", ["stop", "spread"]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await tun.proc.status).code, 0);
      await assertLaptopClean(lab);
    });
    ok = true;
  } finally {
    if (!ok) { for (const [what, p] of procs) console.error(`--- ${what}\n${p.tail(30)}`); }
    await lab.destroy();
  }
});
