/**
 * Verified IAM identities on one agent (issue 15), in the lab with two laptops signing as two
 * principals the emulator's STS checks for real (scripts/lab/identity.ts): alice (SSO role,
 * permission set Dev) may use the vpc's HTTP and DNS, bob (IAM user) only UDP echo and ping.
 *
 * (a) each reaches only what its rules allow, over TCP, UDP and ICMP; a denied TCP connect fails
 *     at once (the agent's ICMP administratively-prohibited answer), and the vpc never sees a
 *     denied packet; the agent's status, each client's status and the audit trail say so.
 * (b) requireIdentity: a bare HELLO offering no identity is refused with identity-required, and
 *     a laptop whose secret key does not match its access key gets one line and a failed start.
 * (c) rules from Parameter Store: a new parameter opens a destination within policyRefresh, to
 *     a tunnel that stays connected; a broken one keeps the last good rules, and status says why.
 */
import assert from "node:assert/strict";
import type { Lab, Role } from "../../scripts/lab.ts";
import { startArrivalCounter } from "../../scripts/lab/arrivals.ts";
import {
  agentEnv,
  ALICE,
  auditFile,
  BOB,
  forgedEnv,
  identityAgentConfig,
  identityEnv,
  type LabIdentity,
  POLICY_PARAMETER_PATH,
  writeIdentityFixtures,
} from "../../scripts/lab/identity.ts";
import { putLabParameter } from "../../scripts/lab/parameter.ts";
import type { TunnelStatus as AgentTunnelStatus } from "../../agent/status.ts";
import {
  AGENT_PORT,
  agentArgv,
  clientEnv,
  ssmProxy,
  ssmProxyArgv,
  type StartedTunnel,
  startTunnel,
  tunnelStatus,
} from "../../scripts/lab/stack.ts";
import {
  agentStatus,
  type AgentStatusDoc,
  eventually,
  pingOnce,
  readAudit,
  runtimeDir,
} from "../support/identity.ts";
import { assertErrorLine, assertLaptopClean, e2eTest, withStack } from "../support/lab.ts";

const RAW_HELLO = new URL("../../scripts/lab/raw_hello.ts", import.meta.url).pathname;
/** What a denied TCP connect may take at most: the ICMP answer, not a connect timeout. */
const FAST_FAIL_MS = 1500;
/** How long the policy refresh (10 s) may take to show, with the read itself and slack. */
const REFRESH_WAIT_MS = 25_000;

e2eTest(
  "e2e: identity: two principals, per-principal rules, requireIdentity, Parameter Store rules",
  async (t) => {
    await withStack({
      laptops: 2,
      fixtures: (lab) => writeIdentityFixtures(lab),
      agentConfig: (lab) => identityAgentConfig(lab),
      agentEnv,
    }, async ({ lab, agent }) => {
      const [la, lb] = lab.laptops.map((l) => l.role);
      const svc = lab.serviceAddress;
      const [ta, tb] = await Promise.all([
        startTunnel(lab, la, { name: "id", cidrs: [lab.vpcNetwork], env: identityEnv(ALICE) }),
        startTunnel(lab, lb, { name: "id", cidrs: [lab.vpcNetwork], env: identityEnv(BOB) }),
      ]);
      const tunnels = new Map<Role, StartedTunnel>([[la, ta], [lb, tb]]);
      // A failed step must fail the stack too, so that withStack prints the agent's log.
      const results: boolean[] = [];
      const step = async (name: string, fn: () => Promise<void>) => {
        results.push(await t.step(name, fn));
      };
      const failWith = (role: Role) => `\n--- start (${role})\n${tunnels.get(role)!.proc.tail()}`;

      await step("(a) each principal reaches what its rules allow", async () => {
        const [web, dns, echo, ping, bobDns] = await Promise.all([
          lab.probe(la, ["http", `http://${svc}/`, "ssm-proxy lab"]),
          lab.probe(la, ["dns", lab.resolver, "db.lab.internal"]),
          lab.probe(lb, ["udp", svc, "7"]),
          pingOnce(lab, lb, svc),
          lab.probe(lb, ["dns", lab.resolver, "db.lab.internal"]),
        ]);
        assert.ok(web.ok, `alice HTTP: ${web.detail}${failWith(la)}`);
        assert.ok(dns.ok, `alice DNS: ${dns.detail}${failWith(la)}`);
        // The resolver the agent announces answers every admitted tunnel, whatever its rules.
        assert.ok(bobDns.ok, `bob DNS: ${bobDns.detail}${failWith(lb)}`);
        assert.ok(echo.ok, `bob UDP echo: ${echo.detail}${failWith(lb)}`);
        assert.ok(ping.ok, `bob ping: ${ping.out}${failWith(lb)}`);
      });

      await step("(a) and nothing else: denials are quick and never reach the vpc", async () => {
        const vpc = await startArrivalCounter(lab, "vpc", {
          web: `iifname "lab0" tcp dport 80`,
          other_tcp: `iifname "lab0" tcp dport 8080`,
          echo: `iifname "lab0" udp dport 7`,
          ping: `iifname "lab0" icmp type echo-request`,
        });
        try {
          const [bobWeb, aliceOther, aliceEcho, alicePing] = await Promise.all([
            lab.probe(lb, ["tcp", svc, "80"], 10_000),
            lab.probe(la, ["tcp", svc, "8080"], 10_000),
            lab.probe(la, ["udp", svc, "7"], 2000),
            pingOnce(lab, la, svc),
          ]);
          for (const [who, r] of [["bob :80", bobWeb], ["alice :8080", aliceOther]] as const) {
            // "No route to host": the kernel's word for ICMP type 3 code 13 on a connect.
            assert.ok(!r.ok, `${who}: connected though denied`);
            assert.equal(r.detail, "unreachable", `${who}: ${r.detail}`);
            assert.ok(r.ms < FAST_FAIL_MS, `${who}: refused after ${Math.round(r.ms)} ms`);
            console.log(`  ${who}: ${r.detail} after ${Math.round(r.ms)} ms`);
          }
          assert.ok(!aliceEcho.ok, `alice UDP echo answered though denied: ${aliceEcho.detail}`);
          assert.ok(!alicePing.ok, `alice ping answered though denied: ${alicePing.out}`);
          // ping reports the agent's ICMP answer ("Packet filtered" from iputils).
          assert.match(alicePing.out, /filtered|prohibited/i, "no ICMP answer to alice's ping");
          assert.deepEqual(
            await vpc.counts(),
            { web: 0, other_tcp: 0, echo: 0, ping: 0 },
            "denied packets reached the vpc",
          );
          // The counters do count: allowed traffic of the same kinds shows up in them.
          const [web, echo, ping] = await Promise.all([
            lab.probe(la, ["http", `http://${svc}/`, "ssm-proxy lab"]),
            lab.probe(lb, ["udp", svc, "7"]),
            pingOnce(lab, lb, svc),
          ]);
          assert.ok(web.ok && echo.ok && ping.ok, `${web.detail}; ${echo.detail}; ${ping.out}`);
          const after = await vpc.counts();
          assert.ok(
            after.web > 0 && after.echo > 0 && after.ping > 0,
            `counters missed allowed traffic: ${JSON.stringify(after)}`,
          );
        } finally {
          await vpc.stop();
        }
      });

      await step("(a) the agent's status shows both principals and their denials", async () => {
        const st = await agentStatus(lab);
        assert.equal(st.running, true, JSON.stringify(st));
        for (const id of [ALICE, BOB]) {
          const tun = tunnelOf(st, id);
          assert.ok((tun.denied ?? 0) > 0, `${id.arn}: ${JSON.stringify(tun)}`);
        }
        assert.ok(st.counters.denied > 0, `agent counters: ${JSON.stringify(st.counters)}`);
        // The summary too: one line per tunnel with its denials and principal.
        const text = await lab.exec(
          "instance",
          agentArgv(["status", "--runtime-dir", runtimeDir(lab)]),
        );
        for (const id of [ALICE, BOB]) {
          // Tunnel lines are indented; the "principals:" line names them too.
          const line = text.stdout.split("\n").find((l) =>
            l.startsWith("  ") && l.includes(id.arn)
          );
          assert.match(line ?? "", /denied [1-9]/, `no denials for ${id.arn} in:\n${text.stdout}`);
        }
      });

      await step("(a) each client's status shows its verified ARN and its denials", async () => {
        for (const [role, id] of [[la, ALICE], [lb, BOB]] as const) {
          const r = await ssmProxy(lab, role, ["status", "id"]);
          assert.equal(r.code, 0, r.stderr);
          assert.ok(r.stdout.includes(id.arn), `${role} status lacks ${id.arn}:\n${r.stdout}`);
          const other = id === ALICE ? BOB : ALICE;
          assert.ok(!r.stdout.includes(other.arn), `${role} status names ${other.arn}`);
          const m = /denied by the agent's policy: (\d+)/.exec(r.stdout);
          assert.ok(m && Number(m[1]) > 0, `${role} status:\n${r.stdout}`);
        }
      });

      await step("(b) a HELLO offering no identity is refused: identity-required", async () => {
        const bare = await rawHello(lab, []);
        assert.equal(bare.type, 6, `expected an ERROR frame, got ${JSON.stringify(bare)}`);
        assert.equal(
          (bare.error as { code: string }).code,
          "identity-required",
          JSON.stringify(bare),
        );
        // The same HELLO offering an identity is challenged: the refusal is about the identity.
        const offered = await rawHello(lab, ["identity"]);
        assert.equal(offered.type, 8, `expected a CHALLENGE, got ${JSON.stringify(offered)}`);
      });

      await step("(b) a forged key gets one line and a failed start", async () => {
        // alice's laptop, her tunnel stopped first (a second tunnel would clash on its routes).
        const stop = await ssmProxy(lab, la, ["stop", "id"]);
        assert.equal(stop.code, 0, stop.stderr);
        await ta.proc.status;
        await assertLaptopClean(lab, la);
        const t0 = performance.now();
        const start = ["start", "--target", "name:bastion", "--name", "forged"];
        const r = await lab.exec(
          la,
          ["timeout", "60", ...ssmProxyArgv([...start, "--cidr", lab.vpcNetwork])],
          { ...clientEnv(lab, la), ...forgedEnv(ALICE) },
        );
        assert.notEqual(r.code, 124, `start with a forged key did not fail:\n${r.stderr}`);
        const line = assertErrorLine(r, /refused this client's IAM identity/);
        // Progress lines come first; the refusal is said once, not per stripe or retry.
        const said = r.stderr.split("\n").filter((l) => /identity/i.test(l));
        assert.deepEqual(said, [line], `the refusal more than once:\n${r.stderr}`);
        console.log(`  forged: ${line} (exit ${r.code}, ${Math.round(performance.now() - t0)} ms)`);
        await assertLaptopClean(lab, la);
      });

      await step(
        "(c) a Parameter Store rule opens a destination without reconnecting",
        async () => {
          const before = await tunnelStatus(lab, lb, "id");
          const st = await agentStatus(lab);
          const agentBefore = tunnelOf(st, BOB);
          // Read at start: the path exists in the config, holds nothing yet, and that is fine.
          const store = st.access?.store;
          assert.equal(store?.path, POLICY_PARAMETER_PATH, JSON.stringify(st));
          assert.equal(store?.parameters, 0, JSON.stringify(store));
          assert.equal(store?.error, undefined, JSON.stringify(store));
          const denied = await lab.probe(lb, ["tcp", svc, "80"], 5000);
          assert.ok(!denied.ok, "bob reaches :80 before any parameter");
          const t0 = performance.now();
          await putLabParameter(lab, lb, `${POLICY_PARAMETER_PATH}/bob-web`, bobWebRule(lab));
          await eventually(() => "bob still cannot reach :80", REFRESH_WAIT_MS, async () => {
            const r = await lab.probe(lb, ["http", `http://${svc}/`, "ssm-proxy lab"], 2000);
            return r.ok ? true : undefined;
          });
          console.log(`  parameter in force after ${Math.round(performance.now() - t0)} ms`);
          const source = (await agentStatus(lab)).access?.store;
          assert.deepEqual(
            [source?.parameters, source?.rules, source?.error],
            [1, 1, undefined],
            JSON.stringify(source),
          );
          const after = await tunnelStatus(lab, lb, "id");
          assert.deepEqual(after?.sessions, before?.sessions, "bob's sessions changed");
          assert.equal(
            tunnelOf(await agentStatus(lab), BOB).connectedAt,
            agentBefore.connectedAt,
            "bob's tunnel reconnected",
          );
        },
      );

      await step(
        "(c) a broken parameter keeps the last good rules; status says why",
        async () => {
          await putLabParameter(
            lab,
            lb,
            `${POLICY_PARAMETER_PATH}/bob-web`,
            "rules: [{ allow: [nowhere] }]\n",
          );
          const source = await eventually(
            () => "the agent's status shows no Parameter Store error",
            REFRESH_WAIT_MS,
            async () => {
              const s = (await agentStatus(lab)).access?.store;
              return s?.error ? s : undefined;
            },
          );
          console.log(`  agent status: ${source.error}`);
          assert.match(source.error!, /bob-web/, "the error names the broken parameter");
          assert.deepEqual([source.parameters, source.rules], [1, 1], "the last good rules");
          const web = await lab.probe(lb, ["http", `http://${svc}/`, "ssm-proxy lab"]);
          assert.ok(web.ok, `bob lost :80 to a broken parameter: ${web.detail}`);
          const echo = await lab.probe(lb, ["udp", svc, "7"]);
          assert.ok(echo.ok, `bob lost UDP echo to a broken parameter: ${echo.detail}`);
        },
      );

      await step("the audit trail has a line per flow, with principal and verdict", async () => {
        const stop = await ssmProxy(lab, lb, ["stop", "id"]);
        assert.equal(stop.code, 0, stop.stderr);
        await tb.proc.status;
        await assertLaptopClean(lab, lb);
        // Stopping the agent ends every flow still open (a denied SYN's would idle for minutes).
        const st = await agent.stop(10_000);
        assert.equal(st.code, 0, `agent exit ${st.code}:\n${agent.tail()}`);
        const lines = await readAudit(auditFile(lab));
        const find = (id: LabIdentity, proto: string, dport: number | null, verdict: string) =>
          lines.filter((l) =>
            l.principal === id.arn && l.proto === proto && l.dst === svc && l.dport === dport &&
            l.verdict === verdict
          );
        const show = () => lines.map((l) => JSON.stringify(l)).join("\n");
        console.log(
          `  ${lines.length} audit lines, ${
            lines.filter((l) => l.verdict === "deny").length
          } denied`,
        );
        const web = find(ALICE, "tcp", 80, "allow");
        assert.ok(web.length > 0, `no allowed HTTP line for alice:\n${show()}`);
        assert.ok(
          web.some((l) => l.bytesUp > 0 && l.bytesDown > 0),
          `alice's HTTP lines count no bytes:\n${web.map((l) => JSON.stringify(l))}`,
        );
        for (
          const [id, proto, port, verdict] of [
            [ALICE, "udp", 53, "allow"],
            [ALICE, "udp", 7, "deny"],
            [ALICE, "tcp", 8080, "deny"],
            [ALICE, "icmp", null, "deny"],
            [BOB, "udp", 7, "allow"],
            [BOB, "icmp", null, "allow"],
            [BOB, "tcp", 80, "deny"],
            [BOB, "udp", 53, "allow"],
          ] as const
        ) {
          assert.ok(
            find(id, proto, port, verdict).length > 0,
            `no ${verdict} ${proto} :${port} line for ${id.arn}:\n${show()}`,
          );
        }
        const denied = lines.filter((l) => l.verdict === "deny");
        assert.ok(
          denied.every((l) => l.bytesDown === 0),
          `a denied flow got an answer:\n${show()}`,
        );
      });
      if (results.includes(false)) throw new Error("a step failed (the agent's log follows)");
    });
  },
);

/** The agent's status entry of `id`'s tunnel. */
function tunnelOf(st: AgentStatusDoc, id: LabIdentity): AgentTunnelStatus {
  const found = st.tunnels.filter((t) => t.principal === id.arn);
  assert.equal(found.length, 1, `tunnels of ${id.arn}: ${JSON.stringify(st.tunnels)}`);
  return found[0];
}

/** The rule bob gets from Parameter Store: the vpc's web server. */
function bobWebRule(lab: Lab): string {
  return `rules:\n  - principals: { users: [bob] }\n    allow: [${lab.serviceAddress}:80/tcp]\n`;
}

async function rawHello(lab: Lab, features: string[]): Promise<Record<string, unknown>> {
  const r = await lab.exec("instance", [
    Deno.execPath(),
    "run",
    "-A",
    RAW_HELLO,
    "127.0.0.1",
    String(AGENT_PORT),
    features.join(","),
  ]);
  const line = r.stdout.trim().split("\n").at(-1) ?? "";
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`raw_hello (exit ${r.code}): ${r.stdout}${r.stderr}`);
  }
}
