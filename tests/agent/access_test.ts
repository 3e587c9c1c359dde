/**
 * The rules in force at run time (agent/access.ts): the resolver's DNS in the rules form, rules
 * from Parameter Store applied to live tunnels and kept when the store breaks, the audit trail
 * written to its file and shown in status.
 */
import assert from "node:assert/strict";
import { filePolicy, startAccess } from "../../agent/access.ts";
import { parseCidr } from "../../agent/cidr.ts";
import { parseCidr6 } from "../../agent/cidr6.ts";
import { type AgentConfig, defaultConfig, parseConfig } from "../../agent/config.ts";
import { compile } from "../../agent/rules_compile.ts";
import { formatDest, rulesOf } from "../../agent/rules.ts";
import { FrameType } from "../../src/tunnel/wire.ts";
import { withAgent } from "./harness.ts";
import { hello, udpPacket, waitFor, WireClient } from "./helpers.ts";

const scope = { pool: parseCidr("100.64.0.0/16")!, pool6: parseCidr6("fd7a:5353:5d8b::/48")! };
const judge = (cfg: Pick<AgentConfig, "policy">, dst: string, port: number) =>
  compile(filePolicy(cfg, "10.0.0.2"), undefined, scope)(udpPacket("100.64.0.2", dst, 4000, port));

Deno.test("access: the rules form lets DNS reach the resolver; the old form is unchanged", () => {
  const rules = parseConfig("policy:\n  rules:\n    - allow: [10.0.5.0/24:443/tcp]\n");
  assert.equal(judge(rules, "10.0.0.2", 53), "allow");
  assert.equal(judge(rules, "10.0.0.2", 80), "deny", "only port 53");
  assert.equal(judge(rules, "10.0.0.3", 53), "deny", "only the resolver");
  const denied = parseConfig(
    "policy:\n  rules:\n    - allow: [10.0.5.0/24]\n      deny: [10.0.0.2/32]\n",
  );
  assert.equal(judge(denied, "10.0.0.2", 53), "deny", "a deny naming the resolver wins");
  const old = parseConfig("policy:\n  allow: [10.0.5.0/24]\n");
  assert.deepEqual(filePolicy(old, "10.0.0.2"), rulesOf(old.policy));
  assert.equal(judge(old, "10.0.0.2", 53), "deny", "the old form never allowed it");
  const unverifiedOnly = parseConfig("policy:\n  requireIdentity: true\n  rules: []\n");
  assert.equal(judge(unverifiedOnly, "10.0.0.2", 53), "deny", "not for a refused principal");
});

Deno.test("access: rules from Parameter Store reach live tunnels; a broken store keeps them", async () => {
  let value = "rules:\n  - allow: [10.0.5.0/24]\n";
  let broken = false;
  const load = () =>
    broken
      ? Promise.reject(new Error("AccessDeniedException: not allowed"))
      : Promise.resolve([{ name: "/ssm-proxy/policy/base", value }]);
  const config: Partial<AgentConfig> = {
    policy: parseConfig("policy:\n  rules: []\n").policy,
    policyParameterPath: "/ssm-proxy/policy",
    policyRefreshMs: 50,
  };
  const runtimeDir = await Deno.makeTempDir();
  try {
    await withAgent(
      { config: { ...config, runtimeDir }, loadParameters: load },
      async (agent, tun) => {
        const c = await WireClient.connect(agent.addr.port);
        await c.sendHello(hello());
        const w = await c.next();
        assert.ok(w?.type === FrameType.Welcome);
        const a = w.welcome.address;
        await c.sendPackets(udpPacket(a, "10.0.5.1", 4000, 7), udpPacket(a, "10.0.6.1", 4000, 7));
        await waitFor(() => tun.written.length === 1 && agent.stats.denied === 1, 3000, "first");

        value = "rules:\n  - allow: [10.0.6.0/24]\n";
        await waitFor(
          () =>
            agent.registry.policy.rules.some((r) =>
              r.allow.map(formatDest).includes("10.0.6.0/24")
            ),
          3000,
          "the new store rules",
        );
        await c.sendPackets(udpPacket(a, "10.0.5.1", 4000, 7), udpPacket(a, "10.0.6.1", 4000, 7));
        await waitFor(() => tun.written.length === 2 && agent.stats.denied === 2, 3000, "second");
        assert.equal(
          tun.written[1].subarray(16, 20).join("."),
          "10.0.6.1",
          "the same tunnel, new rules",
        );

        broken = true;
        await waitFor(
          () => statusOf(runtimeDir)?.access?.store?.error !== undefined,
          3000,
          "error",
        );
        const st = statusOf(runtimeDir)!.access!;
        assert.match(st.store!.error!, /AccessDenied/);
        assert.equal(st.store!.rules, 1, "the last good rules stay in force");
        await c.sendPackets(udpPacket(a, "10.0.6.1", 4000, 7));
        await waitFor(() => tun.written.length === 3, 3000, "still allowed while broken");
        await c.close();
      },
    );
  } finally {
    await Deno.remove(runtimeDir, { recursive: true });
  }
});

// deno-lint-ignore no-explicit-any
function statusOf(dir: string): any {
  try {
    return JSON.parse(Deno.readTextFileSync(`${dir}/status.json`));
  } catch {
    return undefined;
  }
}

Deno.test("access: audit to a file writes each flow's line on close and says so in status", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/log/audit.jsonl`;
    const cfg: AgentConfig = {
      ...defaultConfig(),
      audit: { to: "file", path, maxBytes: 1 << 20, keep: 2 },
    };
    const access = await startAccess({ cfg, apply: () => {}, log: () => {} });
    const t = { id: "0123456789abcdef0123456789abcdef" };
    access.audit!.packet(t, udpPacket("100.64.0.2", "10.0.5.1", 4000, 53), "up", "allow");
    access.audit!.packet(
      t,
      udpPacket("10.0.5.1", "100.64.0.2", 53, 4000, "answer"),
      "down",
      "allow",
    );
    assert.deepEqual(
      { ...access.status().audit, lines: 0 },
      { to: "file", path, lines: 0, flows: 1, evicted: 0 },
    );
    await access.close();
    const [line, ...rest] = (await Deno.readTextFile(path)).trim().split("\n");
    assert.equal(rest.length, 0);
    const r = JSON.parse(line);
    assert.deepEqual(
      [r.tunnel, r.proto, r.src, r.dst, r.dport, r.verdict, r.bytesUp, r.bytesDown],
      ["01234567", "udp", "100.64.0.2", "10.0.5.1", 53, "allow", 29, 34],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
