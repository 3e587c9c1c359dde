/**
 * `ssm-proxy-agent status` and `cleanup` against the real agent (real tun, nft) in a network
 * namespace, as an installer on the instance would use them: status before, during (a tunnel
 * connected, then in its lease grace) and after a crash (stale pid); cleanup refusing while the
 * agent runs, then removing the crashed run's nft table, leases and status file, idempotently;
 * and a clean stop, which removes the status file but keeps the NAT (a state dir is set) until
 * cleanup. cleanup always runs inside the namespace: outside it would touch the host's rules.
 */
import assert from "node:assert/strict";
import { eventually } from "./helpers.ts";
import { agentCli, canRunNetns, inNetns, lineWatcher, sh, startAgentIn } from "./netns.ts";

interface StatusJson {
  running: boolean;
  reason?: string;
  pid?: number;
  statusFile: string;
  [k: string]: unknown;
}

Deno.test({
  name: "netns: status lifecycle, stale pid, cleanup of a crashed and a stopped run",
  ignore: !canRunNetns,
  async fn() {
    const ns = `ssmpa-s-${crypto.randomUUID().slice(0, 6)}`;
    const tmp = await Deno.makeTempDir({ prefix: "ssmpa-" });
    const config = `${tmp}/agent.yaml`;
    const children: Deno.ChildProcess[] = [];
    const drains: Promise<void>[] = [];
    const status = async (...extra: string[]) => {
      const r = await agentCli(["status", "--config", config, ...extra]);
      return {
        code: r.code,
        out: r.stdout,
        json: extra.includes("--json") ? JSON.parse(r.stdout) as StatusJson : undefined,
      };
    };
    const nftTable = async () =>
      (await sh(["ip", "netns", "exec", ns, "nft", "list", "table", "ip", "ssm_proxy"], false)).ok;
    const cleanup = () => agentCli(["cleanup", "--config", config], ns);
    try {
      await sh(["ip", "netns", "add", ns]);
      await sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
      // An uplink for the masquerade rule; nothing needs to leave through it.
      await sh(["ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1"]);
      await Deno.writeTextFile(
        config,
        [
          "listen: 127.0.0.1:7797",
          "nat: nft",
          "uplink: eth0",
          "resolver: 10.0.0.2",
          "leaseGraceSeconds: 60",
          `stateDir: ${tmp}/state`,
          `runtimeDir: ${tmp}/run`,
          "",
        ].join("\n"),
      );

      // Nothing ran yet.
      let st = await status("--json");
      assert.equal(st.code, 3);
      assert.deepEqual(st.json, {
        running: false,
        statusFile: `${tmp}/run/status.json`,
        reason: "absent",
      });
      assert.match((await status()).out, /^ssm-proxy-agent is not running \(no status file /);

      // Serving.
      const agent = await startAgentIn(ns, config);
      children.push(agent.child);
      drains.push(agent.err.done);
      st = await eventually(
        async () => {
          const s = await status("--json");
          return s.code === 0 ? s : undefined;
        },
        10_000,
        "status to say running",
      );
      const j = st.json!;
      assert.equal(j.running, true);
      assert.equal(j.pid, agent.child.pid, "ip netns exec execs the agent: same pid");
      assert.equal(j.listen, "127.0.0.1:7797");
      assert.equal(j.nat, "nft");
      assert.equal(j.pool, "100.64.0.0/16");
      assert.equal(j.tunnelCount, 0);
      assert.match(String(j.tun), /^ssmp\d+$/);
      assert.match((await status()).out, /^ssm-proxy-agent \S+ is running \(pid \d+, up /);

      // cleanup must not pull the rules from under a running agent.
      const refused = await cleanup();
      assert.equal(refused.code, 1, refused.out);
      assert.match(refused.out, /an agent is running \(pid \d+\): stop it first/);
      assert.equal(await nftTable(), true);

      // A laptop connects: status shows its tunnel; it leaves: the tunnel is in its lease grace.
      const [cmd, ...args] = inNetns(ns, "tests/agent/e2e/hold.ts", ["7797"]);
      const hold = new Deno.Command(cmd, {
        args,
        stdin: "piped",
        stdout: "piped",
        stderr: "inherit",
      })
        .spawn();
      children.push(hold);
      const holdOut = lineWatcher(hold.stdout);
      drains.push(holdOut.done);
      await holdOut.waitFor(/"address"/, 20_000);
      const welcome = JSON.parse(holdOut.log[0]);
      const connected = await eventually(
        async () => {
          const s = (await status("--json")).json!;
          return s.connectedTunnels === 1 ? s : undefined;
        },
        10_000,
        "the tunnel in status --json",
      );
      const t = (connected.tunnels as Record<string, unknown>[])[0];
      assert.equal(t.address, welcome.address);
      assert.equal(t.stripesConnected, 1);
      assert.equal(t.principal, null, "the old client proved no identity");
      assert.equal(typeof t.connectedAt, "string");
      assert.match(
        (await status()).out,
        new RegExp(
          `tunnels: 1 connected\\nprincipals: unverified \\(1 tunnel\\)\\n` +
            `  [0-9a-f]{8}  ${welcome.address}  1/1 stripes  up .*  unverified\\n`,
        ),
      );
      await hold.stdin.close();
      assert.equal((await hold.status).code, 0);
      const left = await eventually(
        async () => {
          const s = (await status("--json")).json!;
          return s.connectedTunnels === 0 ? s : undefined;
        },
        10_000,
        "the tunnel to leave",
      );
      assert.equal(left.tunnelCount, 1);

      // A crash leaves a stale status file, the nft table and the leases.
      agent.child.kill("SIGKILL");
      await agent.child.status;
      st = await status("--json");
      assert.equal(st.code, 3);
      assert.deepEqual(st.json, {
        running: false,
        statusFile: `${tmp}/run/status.json`,
        reason: "stale",
        pid: agent.child.pid,
      });
      assert.match(
        (await status()).out,
        /is not running \(stale status file .*: pid \d+ is gone\)/,
      );

      const first = await cleanup();
      assert.equal(first.code, 0, first.out);
      assert.deepEqual(first.stdout.trim().split("\n").sort(), [
        `removed ${tmp}/run/status.json`,
        `removed ${tmp}/state/leases.json`,
        "removed nft table ip ssm_proxy",
      ]);
      assert.equal(await nftTable(), false);
      const again = await cleanup();
      assert.equal(again.code, 0, again.out);
      assert.equal(again.stdout, "", "nothing there: nothing printed");
      assert.equal((await status()).code, 3);

      // A clean stop removes the status file; with a state dir the NAT stays until cleanup.
      const second = await startAgentIn(ns, config);
      children.push(second.child);
      drains.push(second.err.done);
      await eventually(
        async () => ((await status()).code === 0 ? true : undefined),
        10_000,
        "running",
      );
      second.child.kill("SIGTERM");
      assert.equal((await second.child.status).code, 0, second.err.log.join("\n"));
      assert.equal((await status("--json")).json!.reason, "absent");
      assert.equal(await nftTable(), true);
      const after = await cleanup();
      assert.equal(after.stdout, "removed nft table ip ssm_proxy\n", after.out);
    } finally {
      for (const p of children) {
        try {
          p.kill("SIGKILL");
        } catch { /* exited */ }
        await p.status;
      }
      await Promise.allSettled(drains);
      await sh(["ip", "netns", "del", ns], false);
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
