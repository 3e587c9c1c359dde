/** Properties of the compiled policy (agent/rules_compile.ts) over random rules and packets. */
import assert from "node:assert/strict";
import fc from "fast-check";
import { compile } from "../../agent/rules_compile.ts";
import type { Dest, PolicyRule } from "../../agent/rules.ts";
import { parsePrincipalArn, type PrincipalSelector } from "../../agent/principal.ts";
import { parseCidr } from "../../agent/cidr.ts";
import { DEFAULT_POOL6, parseCidr6 } from "../../agent/cidr6.ts";
import { arbDest, arbPacketIn } from "./policy_arb.ts";

const scope = { pool: parseCidr("100.64.0.0/16")!, pool6: parseCidr6(DEFAULT_POOL6)! };
const ALICE = parsePrincipalArn(
  "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Developer_0123456789abcdef/alice",
)!;
const SELECTORS: (PrincipalSelector | undefined)[] = [
  undefined,
  { permissionSets: ["Developer"] },
  { accounts: ["123456789012"], sessions: ["alice"] },
  { roles: ["Admin*"] }, // not alice's
];

const arbRule: fc.Arbitrary<PolicyRule> = fc.record({
  principals: fc.constantFrom(...SELECTORS),
  allow: fc.array(arbDest, { maxLength: 4 }),
  deny: fc.array(arbDest, { maxLength: 2 }),
}).map(({ principals, ...r }) => (principals ? { ...r, principals } : r));
const arbRules = fc.array(arbRule, { maxLength: 6 });
/** Dests the rules name, so random packets land where the rules have something to say. */
const named = (rules: PolicyRule[], extra: Dest[]) => [
  ...rules.flatMap((r) => [...r.allow, ...r.deny]),
  ...extra,
];

Deno.test("property: a packet a deny covers is never allowed, whatever the allows", () => {
  fc.assert(
    fc.property(
      arbRules,
      arbDest,
      fc.constantFrom(...SELECTORS.slice(0, 3)), // the deny's rule applies to alice
      fc.array(arbDest, { maxLength: 3 }),
      (rules, denied, principals, allows) => {
        const all = [
          ...rules,
          { allow: [{ v4: { base: 0, prefix: 0 }, v6: { bytes: new Uint8Array(16), prefix: 0 } }] },
          { deny: [denied], allow: allows, ...(principals ? { principals } : {}) },
        ].map((r) => ({ deny: [], ...r }));
        const f = compile({ rules: all, requireIdentity: false }, ALICE, scope);
        fc.assert(
          fc.property(arbPacketIn(denied), (p) => assert.equal(f(p), "deny")),
          { numRuns: 10 },
        );
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("property: adding a rule that only allows never turns an allow into a deny", () => {
  fc.assert(
    fc.property(
      arbRules,
      fc.array(arbDest, { minLength: 1, maxLength: 4 }),
      fc.constantFrom(...SELECTORS),
      (rules, allows, principals) => {
        const more = [...rules, { allow: allows, deny: [], ...(principals ? { principals } : {}) }];
        const before = compile({ rules, requireIdentity: false }, ALICE, scope);
        const after = compile({ rules: more, requireIdentity: false }, ALICE, scope);
        const targets = named(rules, allows);
        fc.assert(
          fc.property(
            fc.constantFrom(...targets).chain(arbPacketIn),
            (p) => assert.ok(before(p) === "deny" || after(p) === "allow"),
          ),
          { numRuns: 10 },
        );
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("property: an unverified tunnel gets exactly the rules without principals", () => {
  fc.assert(
    fc.property(arbRules, (rules) => {
      fc.pre(rules.some((r) => r.allow.length || r.deny.length));
      const anon = compile({ rules, requireIdentity: false }, undefined, scope);
      const open = rules.filter((r) => !r.principals);
      const same = compile({ rules: open, requireIdentity: false }, ALICE, scope);
      fc.assert(
        fc.property(fc.constantFrom(...named(rules, [])).chain(arbPacketIn), (p) => {
          assert.equal(anon(p), same(p));
        }),
        { numRuns: 10 },
      );
    }),
    { numRuns: 300 },
  );
});
