import assert from "node:assert/strict";
import fc from "fast-check";
import {
  globMatches,
  parsePrincipalArn,
  type Principal,
  type PrincipalSelector,
  selects,
} from "../../agent/principal.ts";

const SSO_ROLE = "AWSReservedSSO_AdministratorAccess_0123456789abcdef";

Deno.test("principal: IAM user, with and without a path", () => {
  assert.deepEqual(parsePrincipalArn("arn:aws:iam::123456789012:user/alice", "AIDAEXAMPLE"), {
    account: "123456789012",
    arn: "arn:aws:iam::123456789012:user/alice",
    partition: "aws",
    userId: "AIDAEXAMPLE",
    type: "user",
    userName: "alice",
  });
  const pathed = parsePrincipalArn("arn:aws:iam::123456789012:user/eng/ops/bob.smith@x");
  assert.equal(pathed?.userName, "bob.smith@x", "the path is not part of the name");
  assert.equal(pathed?.userId, undefined);
});

Deno.test("principal: assumed role, session, and Identity Center permission set", () => {
  const p = parsePrincipalArn(
    `arn:aws:sts::123456789012:assumed-role/${SSO_ROLE}/alice@example.com`,
    "AROAEXAMPLE:alice@example.com",
  );
  assert.deepEqual(p, {
    account: "123456789012",
    arn: `arn:aws:sts::123456789012:assumed-role/${SSO_ROLE}/alice@example.com`,
    partition: "aws",
    userId: "AROAEXAMPLE:alice@example.com",
    type: "assumed-role",
    roleName: SSO_ROLE,
    sessionName: "alice@example.com",
    permissionSet: "AdministratorAccess",
  });
  // A set whose name has underscores keeps them; a role merely named like one does not count.
  assert.equal(
    parsePrincipalArn(
      "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_ReadOnly_00000000ffffffff/s",
    )?.permissionSet,
    "Admin_ReadOnly",
  );
  const plain = parsePrincipalArn("arn:aws:sts::123456789012:assumed-role/Deploy/ci-42");
  assert.deepEqual([plain?.roleName, plain?.sessionName, plain?.permissionSet], [
    "Deploy",
    "ci-42",
    undefined,
  ]);
  assert.equal(
    parsePrincipalArn("arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_xyz/s")
      ?.permissionSet,
    undefined,
    "no 16-hex suffix: not an Identity Center role",
  );
});

Deno.test("principal: root, federated user, other partitions", () => {
  assert.deepEqual(parsePrincipalArn("arn:aws:iam::123456789012:root", "123456789012"), {
    account: "123456789012",
    arn: "arn:aws:iam::123456789012:root",
    partition: "aws",
    userId: "123456789012",
    type: "root",
  });
  const fed = parsePrincipalArn(
    "arn:aws:sts::123456789012:federated-user/carol",
    "123456789012:carol",
  );
  assert.deepEqual([fed?.type, fed?.sessionName, fed?.userName], ["federated", "carol", undefined]);
  for (const partition of ["aws-cn", "aws-us-gov", "aws-iso-b"]) {
    const p = parsePrincipalArn(`arn:${partition}:iam::123456789012:user/alice`);
    assert.deepEqual([p?.partition, p?.userName], [partition, "alice"], partition);
  }
  assert.equal(
    parsePrincipalArn("arn:aws-us-gov:sts::123456789012:assumed-role/R/s")?.roleName,
    "R",
  );
});

Deno.test("principal: what STS never returns for a caller is refused", () => {
  for (
    const arn of [
      "",
      "alice",
      "arn:aws:iam::123456789012:role/Admin", // a role, not a session of it
      "arn:aws:iam::12345678901:user/alice", // 11 digits
      "arn:aws:iam::123456789012:user/",
      "arn:aws:iam::123456789012:user/al ice",
      "arn:aws:sts::123456789012:assumed-role/Admin",
      "arn:aws:sts::123456789012:assumed-role/Admin/s/extra",
      "arn:aws:sts::123456789012:root",
      "arn:aws:s3:::bucket",
      "arn:azure:iam::123456789012:user/alice",
      "arn:aws:iam:us-east-1:123456789012:user/alice",
    ]
  ) {
    assert.equal(parsePrincipalArn(arn), undefined, arn);
  }
});

Deno.test("principal: a UserId that disagrees with the ARN is refused", () => {
  const role = "arn:aws:sts::123456789012:assumed-role/R/alice";
  assert.ok(parsePrincipalArn(role, "AROAX:alice"));
  assert.equal(parsePrincipalArn(role, "AROAX:mallory"), undefined);
  assert.equal(parsePrincipalArn("arn:aws:iam::123456789012:root", "999999999999"), undefined);
  assert.equal(
    parsePrincipalArn("arn:aws:sts::123456789012:federated-user/carol", "123456789012:dave"),
    undefined,
  );
  assert.equal(parsePrincipalArn("arn:aws:iam::123456789012:user/a", "AROAX:a"), undefined);
});

Deno.test("glob: * and ? anywhere, whole string, ignoring case, no regex leaks", () => {
  assert.ok(globMatches("AWSReservedSSO_Admin*_*", SSO_ROLE));
  assert.ok(globMatches("*", ""));
  assert.ok(globMatches("a?c", "abc") && !globMatches("a?c", "ac"));
  assert.ok(globMatches("ALICE", "alice"), "IAM names are unique regardless of case");
  assert.ok(!globMatches("alice", "alice2"), "anchored at the end");
  assert.ok(!globMatches("lice", "alice"), "anchored at the start");
  assert.ok(!globMatches("a.c", "abc"), ". is literal");
  assert.ok(globMatches("a+b(c)[d]{1}$^|\\", "a+b(c)[d]{1}$^|\\"));
  assert.ok(globMatches("arn:aws:sts::*:assumed-role/Dev/*", "arn:aws:sts::1:assumed-role/Dev/x"));
  // Property: a literal pattern (no * or ?) matches exactly itself, case aside.
  fc.assert(
    fc.property(fc.string(), fc.string(), (a, b) => {
      fc.pre(!/[*?]/.test(a));
      assert.equal(globMatches(a, b), a.toLowerCase() === b.toLowerCase());
    }),
  );
});

const alice = parsePrincipalArn(
  `arn:aws:sts::123456789012:assumed-role/${SSO_ROLE}/alice@example.com`,
)!;
const bob = parsePrincipalArn("arn:aws:iam::210987654321:user/eng/bob")!;
const root = parsePrincipalArn("arn:aws:iam::123456789012:root")!;

Deno.test("selects: every list given must match, one pattern per list suffices", () => {
  const cases: [PrincipalSelector, Principal | undefined, boolean][] = [
    [{ accounts: ["123456789012"] }, alice, true],
    [{ accounts: ["123456789012"] }, root, true],
    [{ accounts: ["123456789012"] }, bob, false],
    [{ accounts: ["1234*", "2109*"] }, bob, true],
    [{ roles: ["AWSReservedSSO_AdministratorAccess_*"] }, alice, true],
    [{ roles: ["AWSReservedSSO_Admin_*"] }, alice, false],
    [{ permissionSets: ["administratoraccess"] }, alice, true],
    [{ permissionSets: ["Administrator"] }, alice, false],
    [{ roles: ["*"] }, bob, false], // a user has no role
    [{ users: ["bob"] }, bob, true],
    [{ users: ["bob"] }, alice, false],
    [{ sessions: ["*@example.com"] }, alice, true],
    [{ accounts: ["123456789012"], sessions: ["bob@*"] }, alice, false],
    [{ accounts: ["123456789012"], sessions: ["alice@*"] }, alice, true],
    [{ arns: ["arn:aws:iam::*:user/eng/*"] }, bob, true],
    [{ arns: ["arn:aws:iam::*:root"] }, root, true],
    [{ users: ["*"] }, root, false],
    [{ accounts: ["*"] }, undefined, false], // an unverified tunnel is selected by nothing
  ];
  for (const [selector, principal, want] of cases) {
    assert.equal(
      selects(selector, principal),
      want,
      `${JSON.stringify(selector)} ${principal?.arn}`,
    );
  }
});
