/**
 * Starting and stopping in network namespaces: nothing is left behind however `start` ends
 * (stop, Ctrl-C, kill -9 then the next command), and bad inputs fail with one clear line.
 */
import assert from "node:assert/strict";
import {
  clientEnv,
  ssmProxy,
  ssmProxyArgv,
  startTunnel,
  stateFiles,
} from "../../scripts/lab/stack.ts";
import { assertErrorLine, assertLaptopClean, e2eTest, withStack } from "../support/lab.ts";

e2eTest(
  "e2e: start/stop lifecycle leaves nothing behind; bad inputs get one clear line",
  async (t) => {
    await withStack({}, async ({ lab, agent }) => {
      const cidrs = [lab.vpcNetwork];
      const ping = () => lab.probe("laptop", ["udp", lab.serviceAddress, "7"]);

      await t.step("SIGINT to the foreground start undoes everything", async () => {
        const tun = await startTunnel(lab, "laptop", { name: "life", cidrs });
        assert.ok((await ping()).ok);
        tun.proc.kill("SIGINT");
        const st = await tun.proc.status;
        assert.equal(st.code, 0, tun.proc.tail());
        await assertLaptopClean(lab);
      });

      await t.step("kill -9, then status cleans the stale state", async () => {
        const tun = await startTunnel(lab, "laptop", { name: "life", cidrs });
        tun.proc.kill("SIGKILL");
        await tun.proc.status;
        // Its state file, and the resolv.conf backup of its split DNS (no systemd-resolved here).
        const left = await stateFiles(lab, "laptop");
        assert.ok(left.includes("life.json"), `the crash should leave its state file: ${left}`);
        const s = await ssmProxy(lab, "laptop", ["status", "--json"]);
        assert.equal(s.code, 0, s.stderr);
        assert.deepEqual(JSON.parse(s.stdout).tunnels, []);
        assert.match(s.stderr, /cleaned up tunnel "life"/);
        await assertLaptopClean(lab);
      });

      await t.step("kill -9, then stop cleans up", async () => {
        const tun = await startTunnel(lab, "laptop", { name: "life", cidrs });
        tun.proc.kill("SIGKILL");
        await tun.proc.status;
        const r = await ssmProxy(lab, "laptop", ["stop", "life"]);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        await assertLaptopClean(lab);
      });

      await t.step("kill -9, then start with the same name takes over", async () => {
        const first = await startTunnel(lab, "laptop", { name: "life", cidrs });
        first.proc.kill("SIGKILL");
        await first.proc.status;
        const second = await startTunnel(lab, "laptop", { name: "life", cidrs });
        assert.ok((await ping()).ok, "the new tunnel does not carry traffic");
        const r = await ssmProxy(lab, "laptop", ["stop", "life"]);
        assert.equal(r.code, 0, r.stderr);
        await second.proc.status;
        await assertLaptopClean(lab);
      });

      await t.step("a CIDR overlapping the laptop's own network is refused", async () => {
        const r = await start(lab, ["--cidr", lab.laptops[0].network]);
        console.log(assertErrorLine(r, /overlaps|contains/));
        await assertLaptopClean(lab);
      });

      await t.step("an unknown target is refused", async () => {
        const r = await start(lab, ["--cidr", lab.vpcNetwork], "name:no-such-instance");
        console.log(assertErrorLine(r, /no-such-instance/));
        assert.equal(r.code, 4, "exit code for a target problem");
        await assertLaptopClean(lab);
      });

      await t.step("no agent listening on the instance: start --mode agent says so", async () => {
        await agent.stop(10_000);
        const r = await start(lab, ["--cidr", lab.vpcNetwork, "--mode", "agent"]);
        console.log(assertErrorLine(r, /agent|7797|refused|connect/i));
        await assertLaptopClean(lab);
      });
    });
  },
);

/** A foreground `start` expected to fail: give it 60 s, then kill it (it must not hang). */
async function start(
  lab: import("../../scripts/lab.ts").Lab,
  extra: string[],
  target = "name:bastion",
): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = lab.spawn(
    "laptop",
    ssmProxyArgv(["start", "--target", target, "--name", "bad", ...extra]),
    clientEnv(lab, "laptop"),
    "start (bad input)",
  );
  const timer = setTimeout(() => p.kill("SIGKILL"), 60_000);
  const st = await p.status;
  clearTimeout(timer);
  assert.ok(st.signal === null, `start did not exit on its own within 60 s:\n${p.tail()}`);
  // LabProcess interleaves both streams; ssm-proxy writes every line we check to stderr.
  return { code: st.code, stdout: "", stderr: p.output() };
}
