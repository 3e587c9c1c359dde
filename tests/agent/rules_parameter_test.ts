/** Rules kept in Parameter Store (agent/rules_parameter.ts): parsing, errors, combining. */
import assert from "node:assert/strict";
import {
  mergeRules,
  parseRulesParameter,
  parseRulesParameters,
  RulesParameterError,
  storeCanOnlyDeny,
} from "../../agent/rules_parameter.ts";
import { formatDest, type PolicyRule, rulesOf } from "../../agent/rules.ts";
import { compile } from "../../agent/rules_compile.ts";
import { parsePrincipalArn } from "../../agent/principal.ts";
import { parseCidr } from "../../agent/cidr.ts";
import { DEFAULT_POOL6, parseCidr6 } from "../../agent/cidr6.ts";
import { TCP, v4Packet } from "./policy_packets.ts";
import { parseConfig } from "../../agent/config.ts";

const NAME = "/ssm-proxy/policy/dev";

function err(text: string, name = NAME): string {
  try {
    parseRulesParameter(text, name);
  } catch (e) {
    assert.ok(e instanceof RulesParameterError, String(e));
    assert.ok(!e.message.includes("\n"), "one line");
    return e.message;
  }
  throw new Error(`no error for ${JSON.stringify(text)}`);
}

const show = (rules: PolicyRule[]) =>
  rules.map((r) => ({
    principals: r.principals,
    allow: r.allow.map(formatDest),
    deny: r.deny.map(formatDest),
  }));

Deno.test("rules parameter: the agent.yaml rule language, under rules:", () => {
  const rules = parseRulesParameter(
    `# the data team's databases
rules:
  - principals: { permissionSets: [DataTeam], accounts: ["123456789012"] }
    allow: [10.0.7.0/24:5432/tcp, "[fd00::7]:5432"]
    deny: [10.0.7.9/32]
  - deny: [any:22/tcp]
`,
    NAME,
  );
  assert.deepEqual(show(rules), [
    {
      principals: { accounts: ["123456789012"], permissionSets: ["DataTeam"] },
      allow: ["10.0.7.0/24:5432/tcp", "[fd00::7/128]:5432"],
      deny: ["10.0.7.9/32"],
    },
    { principals: undefined, allow: [], deny: ["any:22/tcp"] },
  ]);
  // Switched off: comments only, an empty list, or rules: with nothing.
  assert.deepEqual(parseRulesParameter("# off for now\n", NAME), []);
  assert.deepEqual(parseRulesParameter("rules: []\n", NAME), []);
  assert.deepEqual(parseRulesParameter("rules:\n", NAME), []);
});

Deno.test("rules parameter: errors name the parameter, line and path", () => {
  const cases: [string, string][] = [
    [
      "rules:\n  - allow: [any]\n  - allow: [10.0.0.1/8]\n",
      `${NAME}:3: rules[1].allow[0]: "10.0.0.1/8" has host bits set beyond its prefix`,
    ],
    [
      "rules:\n  - principals: {role: [A]}\n    allow: [any]\n",
      `${NAME}:2: rules[0].principals.role: unknown key (allowed: accounts, arns, users, roles, ` +
      "permissionSets, sessions)",
    ],
    [
      "rules:\n  - principals: {roles: [A]}\n",
      `${NAME}:2: rules[0]: a rule needs allow or deny (or both)`,
    ],
    ["rules: {allow: [any]}\n", `${NAME}:1: rules: expected a list of rules`],
    ["rules: [10.0.0.0/8]\n", `${NAME}:1: rules[0]: expected a mapping`],
    ["- allow: [any]\n", `${NAME}:1: top level: expected a mapping`],
    ["10.0.0.0/8\n", `${NAME}:1: top level: expected a mapping`],
    ["# nothing\nrule: []\n", `${NAME}:2: rule: unknown key (allowed: rules)`],
    ["rules:\n  - allow: [any\n", `${NAME}:3: `],
    ["rules: []\nrules: []\n", `${NAME}:2: Map keys must be unique`],
  ];
  for (const [text, want] of cases) {
    const got = err(text);
    assert.ok(got.startsWith(want), `${JSON.stringify(text)}\n got: ${got}\nwant: ${want}…`);
  }
});

Deno.test("rules parameter: requireIdentity and the old allow/deny lists are refused", () => {
  assert.equal(
    err("rules: []\nrequireIdentity: false\n"),
    `${NAME}:2: requireIdentity: not accepted in a parameter: requireIdentity stays in ` +
      "agent.yaml's policy, the instance's security floor that Parameter Store cannot lower",
  );
  assert.match(
    err("allow: [10.0.0.0/8]\n"),
    /^\/ssm-proxy\/policy\/dev:1: allow: not accepted in a parameter: write it as a rule, `rules: \[\{allow: \[\.\.\.\]\}\]`/,
  );
  assert.match(err("rules: []\ndeny: [10.0.9.0/24]\n"), /:2: deny: not accepted in a parameter/);
  assert.match(
    err("policy:\n  rules: []\n"),
    /:1: policy: a parameter holds `rules: \[\.\.\.\]` at the top level, not under policy:$/,
  );
  // Inside a rule, requireIdentity is just an unknown key.
  assert.match(
    err("rules:\n  - allow: [any]\n    requireIdentity: true\n"),
    /:3: rules\[0\]\.requireIdentity: unknown key/,
  );
});

Deno.test("rules parameters: name order, all or nothing", () => {
  const rules = parseRulesParameters([
    { name: "/p/b", value: "rules: [{allow: [10.0.2.0/24]}]" },
    { name: "/p/a/z", value: "rules: [{allow: [10.0.1.0/24]}]" },
    { name: "/p/B", value: "rules: [{allow: [10.0.3.0/24]}]" },
  ]);
  assert.deepEqual(rules.map((r) => formatDest(r.allow[0])), [
    "10.0.3.0/24", // "/p/B" < "/p/a/z" < "/p/b": code-unit order
    "10.0.1.0/24",
    "10.0.2.0/24",
  ]);
  assert.throws(
    () =>
      parseRulesParameters([
        { name: "/p/a", value: "rules: [{allow: [any]}]" },
        { name: "/p/b", value: "rules: [{allow: [nowhere]}]" },
      ]),
    /^RulesParameterError: \/p\/b:1: rules\[0\]\.allow\[0\]: "nowhere" is not a destination/,
  );
  assert.deepEqual(parseRulesParameters([]), []);
});

const DEV = parsePrincipalArn("arn:aws:sts::123456789012:assumed-role/Dev/alice")!;
const scope = { pool: parseCidr("100.64.0.0/16")!, pool6: parseCidr6(DEFAULT_POOL6)! };

Deno.test("mergeRules: the file's rules first, requireIdentity only from the file", () => {
  const file = rulesOf(
    parseConfig("policy:\n  requireIdentity: true\n  rules:\n    - deny: [10.0.9.0/24]\n").policy,
  );
  const store = parseRulesParameter(
    "rules:\n  - principals: {roles: [Dev]}\n    allow: [10.0.0.0/16]\n",
    NAME,
  );
  const merged = mergeRules(file, store);
  assert.equal(merged.requireIdentity, true);
  assert.deepEqual(merged.rules, [...file.rules, ...store]);
  assert.equal(mergeRules({ rules: [], requireIdentity: false }, store).requireIdentity, false);
});

Deno.test("mergeRules: a store rule adds allows for whom it selects, never lifts a file deny", () => {
  const file = rulesOf(
    parseConfig("policy:\n  allow: [10.1.0.0/16]\n  deny: [10.0.9.0/24]\n").policy,
  );
  const store = parseRulesParameter(
    "rules:\n  - principals: {roles: [Dev]}\n    allow: [10.0.0.0/16]\n",
    NAME,
  );
  assert.equal(storeCanOnlyDeny(parseConfig("policy:\n  allow: [10.1.0.0/16]\n").policy), false);
  const merged = mergeRules(file, store);
  const dev = compile(merged, DEV, scope);
  const nobody = compile(merged, undefined, scope);
  const https = (ip: string) => v4Packet(ip, TCP, 443);
  assert.equal(dev(https("10.0.5.1")), "allow", "the store's allow, for Dev");
  assert.equal(nobody(https("10.0.5.1")), "deny", "…and only for Dev");
  assert.equal(dev(https("10.0.9.1")), "deny", "the file's deny still wins");
  assert.equal(nobody(https("10.1.2.3")), "allow", "the file's allow, for everyone");
});

Deno.test("storeCanOnlyDeny: no policy, or the old form without allow, already allows all", () => {
  const policy = (yaml: string) => parseConfig(yaml).policy;
  assert.equal(storeCanOnlyDeny(policy("")), true);
  assert.equal(storeCanOnlyDeny(policy("policy:\n  deny: [10.0.9.0/24]\n")), true);
  assert.equal(storeCanOnlyDeny(policy("policy:\n  rules: []\n")), false);
  assert.equal(storeCanOnlyDeny(policy("policy:\n  rules: [{allow: [any]}]\n")), false);
});
