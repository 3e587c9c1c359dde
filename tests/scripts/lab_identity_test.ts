/**
 * The lab's identity pieces mean what the identity e2e test and bench/policy_cpu.ts assume,
 * read by the product's own parsers: the fixtures give STS two principals (and the agent's role),
 * the lab policy lets alice reach HTTP and DNS and bob UDP echo and ping and nothing else, and
 * the bench's policy has 20 rules, each selecting alice. No namespaces needed.
 */
import assert from "node:assert/strict";
import { Lab } from "../../scripts/lab.ts";
import { arrivalRuleset } from "../../scripts/lab/arrivals.ts";
import {
  AGENT_ROLE,
  agentEnv,
  ALICE,
  auditFile,
  BOB,
  forgedEnv,
  identityAgentConfig,
  identityEnv,
  identityFixtures,
  LAB_ACCOUNT,
  POLICY_PARAMETER_PATH,
} from "../../scripts/lab/identity.ts";
import { agentConfig } from "../../scripts/lab/stack.ts";
import { twentyRules } from "../../bench/policy_cpu.ts";
import { parseFixtures } from "../../src/emulator/fixtures.ts";
import { parseConfig } from "../../agent/config.ts";
import { rulesOf } from "../../agent/rules.ts";
import { filePolicy } from "../../agent/access.ts";
import { compile } from "../../agent/rules_compile.ts";
import { parsePrincipalArn } from "../../agent/principal.ts";
import { parseCidr } from "../../agent/cidr.ts";
import { DEFAULT_POOL6, parseCidr6 } from "../../agent/cidr6.ts";
import { ICMP, TCP, UDP, v4Packet } from "../agent/policy_packets.ts";

const lab = new Lab("test00", 42, 2, "/tmp/ssmp-lab-test00");
const scope = { pool: parseCidr("100.64.0.0/16")!, pool6: parseCidr6(DEFAULT_POOL6)! };

Deno.test("lab identity fixtures: STS knows alice, bob and the agent's role", () => {
  const f = parseFixtures(identityFixtures([{ name: "/ssm-proxy/policy/x", value: "rules: []" }]));
  assert.equal(f.account, LAB_ACCOUNT);
  assert.deepEqual(f.identities.map((i) => [i.accessKeyId, i.arn, i.account]), [
    [ALICE.accessKeyId, ALICE.arn, LAB_ACCOUNT],
    [BOB.accessKeyId, BOB.arn, LAB_ACCOUNT],
    [AGENT_ROLE.accessKeyId, AGENT_ROLE.arn, LAB_ACCOUNT],
  ]);
  assert.equal(f.identities[0].sessionToken, ALICE.sessionToken);
  assert.equal(f.identities[1].sessionToken, undefined);
  assert.deepEqual(f.parameters.map((p) => [p.name, p.value]), [[
    "/ssm-proxy/policy/x",
    "rules: []",
  ]]);
  // The default instance is still there for `--target name:bastion`.
  assert.equal(f.instances[0].name, "bastion");
});

Deno.test("lab identity envs: own keys, a forged secret, the agent pointed at the emulator", () => {
  assert.deepEqual(identityEnv(BOB), {
    AWS_ACCESS_KEY_ID: BOB.accessKeyId,
    AWS_SECRET_ACCESS_KEY: BOB.secretAccessKey,
    AWS_SESSION_TOKEN: "",
  });
  const forged = forgedEnv(ALICE);
  assert.equal(forged.AWS_ACCESS_KEY_ID, ALICE.accessKeyId);
  assert.notEqual(forged.AWS_SECRET_ACCESS_KEY, ALICE.secretAccessKey);
  assert.equal(forged.AWS_SESSION_TOKEN, ALICE.sessionToken);
  const env = agentEnv(lab);
  assert.equal(env.AWS_ENDPOINT_URL, "http://10.97.42.1:4566");
  assert.equal(env.AWS_ACCESS_KEY_ID, AGENT_ROLE.accessKeyId);
});

Deno.test("lab policy: alice HTTP and DNS, bob echo and ping, all DNS, nothing else", () => {
  const cfg = parseConfig(agentConfig(lab, identityAgentConfig(lab)), "agent.yaml");
  assert.equal(cfg.policy.requireIdentity, true);
  assert.deepEqual(cfg.audit, {
    to: "file",
    path: auditFile(lab),
    maxBytes: 64 << 20,
    keep: 5,
  });
  assert.equal(cfg.policyParameterPath, POLICY_PARAMETER_PATH);
  assert.equal(cfg.policyRefreshMs, 10_000);
  // As the agent builds it: the announced resolver's port 53 is open to every admitted tunnel.
  const policy = filePolicy(cfg, lab.resolver);
  const svc = lab.serviceAddress;
  const cases: [string, Uint8Array][] = [
    ["http", v4Packet(svc, TCP, 80)],
    ["dns-udp", v4Packet(svc, UDP, 53)],
    ["dns-tcp", v4Packet(svc, TCP, 53)],
    ["echo", v4Packet(svc, UDP, 7)],
    ["ping", v4Packet(svc, ICMP)],
    ["tcp-8080", v4Packet(svc, TCP, 8080)],
    ["other-host", v4Packet("10.99.42.11", TCP, 80)],
  ];
  const allowed = (arn: string | undefined) => {
    const decide = compile(policy, arn ? parsePrincipalArn(arn) : undefined, scope);
    return cases.filter(([, p]) => decide(p) === "allow").map(([n]) => n);
  };
  assert.deepEqual(allowed(ALICE.arn), ["http", "dns-udp", "dns-tcp"]);
  assert.deepEqual(allowed(BOB.arn), ["dns-udp", "dns-tcp", "echo", "ping"]);
  assert.deepEqual(allowed(AGENT_ROLE.arn), ["dns-udp", "dns-tcp"]);
  assert.deepEqual(allowed(undefined), []);
  // Without the options: no audit, no Parameter Store, identity optional.
  const bare = parseConfig(
    agentConfig(
      lab,
      identityAgentConfig(lab, { requireIdentity: false, audit: false, parameters: false }),
    ),
  );
  assert.equal(bare.policy.requireIdentity, false);
  assert.deepEqual(bare.audit, { to: "off" });
  assert.equal(bare.policyParameterPath, undefined);
});

Deno.test("bench/policy_cpu.ts's policy: 20 rules, each selecting alice, the last the web", () => {
  const cfg = parseConfig(agentConfig(lab, twentyRules(lab)));
  const policy = rulesOf(cfg.policy);
  assert.equal(policy.rules.length, 20);
  const decide = compile(policy, parsePrincipalArn(ALICE.arn), scope);
  assert.equal(decide(v4Packet(lab.serviceAddress, TCP, 80)), "allow");
  assert.equal(decide(v4Packet(lab.serviceAddress, UDP, 7)), "deny");
  // Each rule on its own selects alice: every packet is judged against all 20.
  for (const [i, rule] of policy.rules.entries()) {
    const one = compile(
      { rules: [rule], requireIdentity: false },
      parsePrincipalArn(ALICE.arn),
      scope,
    );
    const probe = i === 19
      ? v4Packet(lab.serviceAddress, TCP, 80)
      : v4Packet(`10.${i}.3.4`, TCP, 443);
    assert.equal(one(probe), "allow", `rule ${i} does not apply to alice`);
  }
  assert.equal(
    compile(policy, parsePrincipalArn(BOB.arn), scope)(v4Packet(lab.serviceAddress, TCP, 80)),
    "deny",
  );
});

Deno.test("arrivalRuleset: one named counter per match in an input chain", () => {
  const text = arrivalRuleset("t1", { web: "tcp dport 80", echo: "udp dport 7" });
  assert.match(text, /^table inet t1 \{$/m);
  assert.match(text, /^ {2}counter web \{ \}$/m);
  assert.match(text, /type filter hook input priority -1000; policy accept;/);
  assert.match(text, /^ {4}tcp dport 80 counter name web$/m);
  assert.match(text, /^ {4}udp dport 7 counter name echo$/m);
  assert.throws(() => arrivalRuleset("t1", { "no way": "tcp" }), /counter name/);
});
