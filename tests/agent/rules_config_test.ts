/** agent.yaml's `policy:` in the per-principal form (agent/rules.ts), through parseConfig. */
import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../../agent/config.ts";
import { formatDest, rulesOf } from "../../agent/rules.ts";

const FILE = "/etc/ssm-proxy/agent.yaml";

function err(text: string): string {
  try {
    parseConfig(text, FILE);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.message.replace(`${FILE}:`, "");
  }
  throw new Error(`no error for ${JSON.stringify(text)}`);
}

Deno.test("rules config: the full form", () => {
  const c = parseConfig(
    `policy:
  requireIdentity: true
  rules:
    - principals:
        accounts: ["123456789012", 210987654321, "0123*"]
        roles: [AWSReservedSSO_Dev*_*]
        users: [alice]
        sessions: ["*@example.com"]
        arns: ["arn:aws:sts::*:assumed-role/Dev/*"]
        permissionSets: [AdministratorAccess]
      allow: [10.0.5.0/24:443/tcp, 10.0.0.0/16:5432, fd00::/8/udp, "[fd00::5]:8000-8999"]
      deny:
        - 10.0.9.0/24
        - any:22/tcp
    - allow: [10.0.0.2/udp]
    - deny: [10.0.0.0/8/icmp]
      allow:
`,
    FILE,
  );
  const p = rulesOf(c.policy);
  assert.equal(p.requireIdentity, true);
  assert.deepEqual(p.rules[0].principals, {
    accounts: ["123456789012", "210987654321", "0123*"],
    roles: ["AWSReservedSSO_Dev*_*"],
    users: ["alice"],
    sessions: ["*@example.com"],
    arns: ["arn:aws:sts::*:assumed-role/Dev/*"],
    permissionSets: ["AdministratorAccess"],
  });
  assert.deepEqual(p.rules.map((r) => [r.allow.map(formatDest), r.deny.map(formatDest)]), [
    [
      ["10.0.5.0/24:443/tcp", "10.0.0.0/16:5432", "fd00::/8/udp", "[fd00::5/128]:8000-8999"],
      ["10.0.9.0/24", "any:22/tcp"],
    ],
    [["10.0.0.2/32/udp"], []],
    [[], ["10.0.0.0/8/icmp"]],
  ]);
  assert.equal(p.rules[1].principals, undefined);
  // The rules are all there is: no old lists made up beside them.
  assert.deepEqual([c.policy.allow, c.policy.deny], [[], []]);
});

Deno.test("rules config: old form unchanged, requireIdentity beside it, empty rules", () => {
  const old = parseConfig("policy:\n  allow: [10.0.0.0/8]\n  deny: [10.0.9.0/24]\n");
  assert.deepEqual(old.policy, { allow: ["10.0.0.0/8"], deny: ["10.0.9.0/24"] });
  const strict = parseConfig("policy:\n  allow: [10.0.0.0/8]\n  requireIdentity: true\n");
  assert.deepEqual(strict.policy, { allow: ["10.0.0.0/8"], deny: [], requireIdentity: true });
  // No rules: nothing allowed (not the old form's "empty allow list = everywhere").
  const none = parseConfig("policy:\n  rules: []\n");
  assert.deepEqual(none.policy, { allow: [], deny: [], rules: [] });
  assert.deepEqual(rulesOf(none.policy), { rules: [], requireIdentity: false });
});

Deno.test("rules config: every error names its line and path", () => {
  const rule = (body: string) => `policy:\n  rules:\n    - allow: [any]\n    - ${body}\n`;
  const cases: [string, string][] = [
    [
      rule("allow: [any]\n      principals: {accounts: [012345678901]}"),
      "5: policy.rules[1].principals.accounts[0]: expected a 12-digit account ID (quote one starting with 0), got 12345678901",
    ],
    [
      "policy:\n  allow: [10.0.0.0/8]\n  rules: []\n",
      "2: policy.allow: use rules or allow/deny, not both (a rule without principals applies to every tunnel)",
    ],
    ["policy:\n  rules: {}\n", "2: policy.rules: expected a list of rules"],
    ["policy:\n  rules:\n", "2: policy.rules: expected a list of rules"],
    [
      "policy:\n  requireIdentity: yes\n",
      '2: policy.requireIdentity: expected true or false, got "yes"',
    ],
    ["policy:\n  rules: [5]\n", "2: policy.rules[0]: expected a mapping"],
    [rule("principals: {roles: [A]}"), "4: policy.rules[1]: a rule needs allow or deny (or both)"],
    [
      rule("alow: [any]"),
      "4: policy.rules[1].alow: unknown key (allowed: principals, allow, deny)",
    ],
    [
      rule("allow: 10.0.0.0/8"),
      "4: policy.rules[1].allow: expected a list of destinations like 10.0.5.0/24:443/tcp",
    ],
    [
      rule("allow: [443]"),
      "4: policy.rules[1].allow[0]: expected a destination like 10.0.5.0/24:443/tcp",
    ],
    [
      rule("allow:\n        - any\n        - 10.0.0.1/8:443"),
      '6: policy.rules[1].allow[1]: "10.0.0.1/8:443" has host bits set beyond its prefix',
    ],
    [
      rule("deny: [fd00::5]"),
      '4: policy.rules[1].deny[0]: "fd00::5" needs a /prefix or [brackets] (fd00::5/128, [fd00::5]:443), so a port cannot be read as part of it',
    ],
    [
      rule("deny: [10.0.0.0/8:1/icmp]"),
      '4: policy.rules[1].deny[0]: "10.0.0.0/8:1/icmp" names ports, which icmp does not have',
    ],
    [
      rule("allow: [any]\n      principals:"),
      "5: policy.rules[1].principals: expected a mapping of accounts, arns, users, roles, permissionSets, sessions",
    ],
    [
      rule("allow: [any]\n      principals: {}"),
      "5: policy.rules[1].principals: name at least one of accounts, arns, users, roles, permissionSets, sessions",
    ],
    [
      rule("allow: [any]\n      principals: {role: [A]}"),
      "5: policy.rules[1].principals.role: unknown key (allowed: accounts, arns, users, roles, permissionSets, sessions)",
    ],
    [
      rule("allow: [any]\n      principals: {roles: []}"),
      "5: policy.rules[1].principals.roles: expected a non-empty list of patterns",
    ],
    [
      rule("allow: [any]\n      principals: {roles: Admin}"),
      "5: policy.rules[1].principals.roles: expected a non-empty list of patterns",
    ],
    [
      rule(
        "allow: [any]\n      principals:\n        roles:\n          - Dev\n          - arn:aws:iam::1:role/A",
      ),
      '8: policy.rules[1].principals.roles[1]: expected a role name (for an ARN, use arns), got "arn:aws:iam::1:role/A"',
    ],
    [
      rule("allow: [any]\n      principals: {accounts: [12345]}"),
      "5: policy.rules[1].principals.accounts[0]: expected a 12-digit account ID (quote one starting with 0), got 12345",
    ],
    [
      rule("allow: [any]\n      principals: {accounts: [dev-account]}"),
      '5: policy.rules[1].principals.accounts[0]: expected a 12-digit account ID (quote one starting with 0), got "dev-account"',
    ],
    [
      rule("allow: [any]\n      principals: {users: [eng/bob]}"),
      '5: policy.rules[1].principals.users[0]: expected an IAM user name (no path; use arns for paths), got "eng/bob"',
    ],
    [
      rule("allow: [any]\n      principals: {arns: [alice]}"),
      '5: policy.rules[1].principals.arns[0]: expected an ARN like arn:aws:sts::123456789012:assumed-role/Role/session, got "alice"',
    ],
    [
      rule("allow: [any]\n      principals: {sessions: [true]}"),
      "5: policy.rules[1].principals.sessions[0]: expected a session name, got true",
    ],
    [
      rule("allow: [any]\n      principals: {permissionSets: [a b]}"),
      '5: policy.rules[1].principals.permissionSets[0]: expected a permission set name, got "a b"',
    ],
  ];
  for (const [text, want] of cases) assert.equal(err(text), want, text);
});
