/**
 * The status file in-process (fake tun): written at start, updated when a tunnel connects and
 * leaves, removed on close; liveness of the pid in it; the human summary.
 */
import assert from "node:assert/strict";
import { type AgentStatus, isAlive, readStatus, SHOWN_ID_CHARS } from "../../agent/status.ts";
import { newStats } from "../../agent/stats.ts";
import { summary } from "../../agent/status_cli.ts";
import { FEATURE_IPV6, FrameType } from "../../src/tunnel/wire.ts";
import { withAgent } from "./harness.ts";
import { eventually, hello, udpPacket, waitFor, WireClient } from "./helpers.ts";

async function current(dir: string): Promise<AgentStatus | undefined> {
  const st = await readStatus(dir);
  return st.state === "running" ? st.status : undefined;
}

Deno.test("status file: lifecycle with a tunnel coming and going", async () => {
  const dir = await Deno.makeTempDir();
  const run = `${dir}/run`;
  try {
    await withAgent({ config: { runtimeDir: run, leaseGraceSeconds: 60 } }, async (agent, tun) => {
      assert.equal(agent.statusFile, `${run}/status.json`);
      let s = await eventually(() => current(run), 5000, "the status file");
      assert.equal(s.pid, Deno.pid);
      assert.equal(s.tun, "faketun0");
      assert.equal(s.listen, `127.0.0.1:${agent.addr.port}`);
      assert.equal(s.pool, "100.64.0.0/16");
      assert.equal(s.tunnelCount, 0);
      assert.equal(s.idleStop, null);
      assert.equal((await Deno.stat(agent.statusFile!)).mode! & 0o777, 0o644);

      const h = hello();
      const c = await WireClient.connect(agent.addr.port);
      await c.sendHello(h);
      const w = await c.next();
      assert.ok(w?.type === FrameType.Welcome);
      await c.sendPackets(udpPacket(w.welcome.address, "10.0.0.9", 1000, 53, "12345"));
      await waitFor(() => tun.written.length === 1, 3000, "the packet on the tun");
      s = await eventually(
        async () => {
          const cur = await current(run);
          return cur?.connectedTunnels === 1 && cur.tunnels[0].bytesIn === 33 ? cur : undefined;
        },
        5000,
        "the connected tunnel and its bytes in the status file",
      );
      const t = s.tunnels[0];
      assert.equal(t.id, h.tunnelId.slice(0, SHOWN_ID_CHARS), "the id is cut short");
      assert.equal(t.address, w.welcome.address);
      assert.deepEqual([t.stripes, t.stripesConnected, t.disconnectedAt], [1, 1, null]);
      assert.ok(t.connectedAt);
      assert.equal(s.counters.packetsIn, 1);

      await c.close();
      s = await eventually(
        async () => {
          const cur = await current(run);
          return cur?.connectedTunnels === 0 ? cur : undefined;
        },
        5000,
        "the tunnel to leave",
      );
      assert.equal(s.tunnelCount, 1, "kept for its lease grace");
      assert.equal(s.tunnels[0].connectedAt, null);
      assert.ok(s.tunnels[0].disconnectedAt);
    });
    assert.deepEqual((await readStatus(run)).state, "absent", "removed on close");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("status file: close leaves a file another agent wrote", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await withAgent({ config: { runtimeDir: dir } }, async (agent) => {
      await waitFor(
        () => {
          try {
            return Deno.statSync(agent.statusFile!).isFile;
          } catch {
            return false;
          }
        },
        5000,
        "the status file",
      );
      const other = JSON.parse(await Deno.readTextFile(agent.statusFile!));
      await Deno.writeTextFile(agent.statusFile!, JSON.stringify({ ...other, pid: 1 }));
    });
    assert.equal(JSON.parse(await Deno.readTextFile(`${dir}/status.json`)).pid, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("status: a dead pid, or a reused one, is not a running agent", async () => {
  const gone = new Deno.Command("true").spawn();
  await gone.status;
  assert.equal(isAlive({ pid: gone.pid, pidStartTime: null }), false);
  assert.equal(isAlive({ pid: Deno.pid, pidStartTime: null }), true);
  assert.equal(isAlive({ pid: Deno.pid, pidStartTime: -1 }), false, "same pid, other process");
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/status.json`, "{half");
    await assert.rejects(readStatus(dir), /is not an agent status file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("status: the human summary", () => {
  const now = Date.parse("2030-01-01T12:00:00Z");
  const ago = (s: number) => new Date(now - s * 1000).toISOString();
  const s: AgentStatus = {
    schema: 1,
    version: "1.2.3",
    pid: 42,
    pidStartTime: 7,
    startedAt: ago(7260),
    updatedAt: ago(0),
    listen: "127.0.0.1:7797",
    tun: "ssmp0",
    address: "100.64.0.1",
    pool: "100.64.0.0/16",
    nat: "nft",
    stateDir: "/var/lib/ssm-proxy",
    tunnelCount: 2,
    connectedTunnels: 1,
    tunnels: [
      {
        id: "0123456789ab",
        address: "100.64.0.2",
        stripes: 2,
        stripesConnected: 2,
        connectedAt: ago(65),
        disconnectedAt: null,
        bytesIn: 1500,
        bytesOut: 2_500_000,
      },
      {
        id: "ba9876543210",
        address: "100.64.0.3",
        stripes: 1,
        stripesConnected: 0,
        connectedAt: null,
        disconnectedAt: ago(30),
        bytesIn: 0,
        bytesOut: 0,
      },
    ],
    idleStop: {
      afterSeconds: 1800,
      command: ["systemctl", "poweroff"],
      idleSince: null,
      ranAt: null,
    },
    counters: {
      packetsIn: 1,
      packetsOut: 2,
      spoofed: 0,
      denied: 0,
      prohibitedSent: 0,
      notIpv4: 0,
      noTunnel: 0,
      queueDrops: 0,
      tunWriteDrops: 0,
      protocolErrors: 0,
    },
  };
  assert.equal(
    summary(s, now),
    [
      "ssm-proxy-agent 1.2.3 is running (pid 42, up 2h01m)",
      "listening on 127.0.0.1:7797; tun ssmp0 100.64.0.1 (pool 100.64.0.0/16), NAT nft",
      "tunnels: 1 connected, 1 in lease grace",
      "  0123456789ab  100.64.0.2  2/2 stripes  up 1m05s  in 1.5 KB  out 2.5 MB",
      "  ba9876543210  100.64.0.3  0/1 stripes  disconnected 30s ago  in 0 B  out 0 B",
      "idle stop: after 30m00s (systemctl poweroff); not idle",
      "counters: packetsIn=1 packetsOut=2 spoofed=0 denied=0 prohibitedSent=0 notIpv4=0 noTunnel=0 " +
      "queueDrops=0 " +
      "tunWriteDrops=0 protocolErrors=0",
    ].join("\n"),
  );
  assert.match(summary({ ...s, idleStop: null }, now), /^idle stop: off$/m);
  assert.match(
    summary({ ...s, idleStop: { ...s.idleStop!, idleSince: ago(600), ranAt: ago(5) } }, now),
    /^idle stop: after 30m00s \(systemctl poweroff\); idle for 10m00s; ran 5s ago$/m,
  );
  const six = summary({
    ...s,
    ipv6: { address: "fd7a:5353:5d8b::1", pool: "fd7a:5353:5d8b::/48" },
    tunnels: [{ ...s.tunnels[0], address6: "fd7a:5353:5d8b::2" }, s.tunnels[1]],
  }, now).split("\n");
  assert.equal(six[2], "ipv6: tun fd7a:5353:5d8b::1 (pool fd7a:5353:5d8b::/48)");
  assert.equal(
    six[4],
    "  0123456789ab  100.64.0.2 fd7a:5353:5d8b::2  2/2 stripes  up 1m05s  in 1.5 KB  out 2.5 MB",
  );
  assert.match(
    summary({ ...s, ipv6: { off: "the instance has no IPv6 address on ens5" } }, now),
    /^ipv6: off \(the instance has no IPv6 address on ens5\)$/m,
  );

  // The rules in force, Parameter Store's part and its trouble, the audit trail.
  const store = {
    path: "/ssm-proxy/policy",
    parameters: 2,
    rules: 3,
    loadedAt: ago(120),
    lastCheckedAt: ago(5),
  };
  const withAccess = (a: Partial<NonNullable<AgentStatus["access"]>>) =>
    summary({
      ...s,
      access: { rules: 5, requireIdentity: true, store: null, audit: null, ...a },
    }, now).split("\n").filter((l) => /^(policy|audit| {2}Parameter)/.test(l));
  assert.deepEqual(withAccess({}), [
    "policy: 5 rules, a verified identity required",
    "audit: off",
  ]);
  assert.deepEqual(
    withAccess({
      store,
      audit: { to: "file", path: "/var/log/ssm-proxy/a.jsonl", lines: 9, flows: 2, evicted: 0 },
    }),
    [
      "policy: 5 rules, a verified identity required",
      "  Parameter Store /ssm-proxy/policy: 3 rules from 2 parameters, read 2m00s ago",
      "audit: /var/log/ssm-proxy/a.jsonl, 9 lines, 2 open flows",
    ],
  );
  assert.deepEqual(
    withAccess({ store: { ...store, error: "AccessDeniedException: no" } })[1],
    "  Parameter Store /ssm-proxy/policy: AccessDeniedException: no; keeping the last good rules (3), read 2m00s ago",
  );
});

Deno.test("status: the summary lists connected principals, and each tunnel's owner and denials", () => {
  const now = Date.parse("2030-01-01T12:00:00Z");
  const at = new Date(now - 5000).toISOString();
  const alice = "arn:aws:sts::111122223333:assumed-role/Dev/alice";
  const tunnel = (id: string, principal: string | null, denied: number, connected = true) => ({
    id,
    address: "100.64.0.2",
    stripes: 1,
    stripesConnected: connected ? 1 : 0,
    connectedAt: connected ? at : null,
    disconnectedAt: connected ? null : at,
    bytesIn: 0,
    bytesOut: 0,
    principal,
    denied,
  });
  const lines = summary({
    schema: 1,
    version: "1.2.3",
    pid: 42,
    pidStartTime: 7,
    startedAt: at,
    updatedAt: at,
    listen: "127.0.0.1:7797",
    tun: "ssmp0",
    address: "100.64.0.1",
    pool: "100.64.0.0/16",
    nat: "nft",
    stateDir: null,
    tunnelCount: 4,
    connectedTunnels: 3,
    tunnels: [
      tunnel("0123abcd", null, 0),
      tunnel("1123abcd", alice, 3),
      tunnel("2123abcd", alice, 0),
      tunnel("3123abcd", "arn:aws:iam::111122223333:user/bob", 0, false),
    ],
    idleStop: null,
    counters: newStats(),
  }, now).split("\n");
  assert.equal(
    lines[3],
    `principals: ${alice} (2 tunnels, denied 3), unverified (1 tunnel)`,
    "bob is gone",
  );
  assert.equal(lines[4], "  0123abcd  100.64.0.2  1/1 stripes  up 5s  in 0 B  out 0 B  unverified");
  assert.equal(
    lines[5],
    `  1123abcd  100.64.0.2  1/1 stripes  up 5s  in 0 B  out 0 B  denied 3  ${alice}`,
  );
  assert.match(lines.at(-1)!, / denied=0 prohibitedSent=0 /);
});

Deno.test("status file: IPv6 of the agent and of a tunnel that has it", async () => {
  const dir = await Deno.makeTempDir();
  const run = `${dir}/run`;
  try {
    await withAgent({ config: { runtimeDir: run, ipv6: "on" } }, async (agent) => {
      const c = await WireClient.connect(agent.addr.port);
      await c.sendHello(hello({ features: [FEATURE_IPV6] }));
      assert.equal((await c.next())?.type, FrameType.Welcome);
      const s = await eventually(
        async () => {
          const cur = await current(run);
          return cur?.connectedTunnels === 1 ? cur : undefined;
        },
        5000,
        "the tunnel in the status file",
      );
      assert.deepEqual(s.ipv6, { address: "fd7a:5353:5d8b::1", pool: "fd7a:5353:5d8b::/48" });
      assert.equal(s.tunnels[0].address6, "fd7a:5353:5d8b::2");
      await c.close();
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
