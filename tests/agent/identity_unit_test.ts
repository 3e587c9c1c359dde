/**
 * The identity verifier without a network (agent/identity.ts): nonces, what reaches STS, the
 * minute STS counts as unreachable, and what each outcome means for a stripe.
 */
import assert from "node:assert/strict";
import {
  admitProof,
  IdentityVerifier,
  STS_DOWN_MS,
  type StsCall,
  uncheckedRefusal,
} from "../../agent/identity.ts";
import { parsePrincipalArn } from "../../agent/principal.ts";
import { ExitCode, UserError } from "../../src/errors.ts";
import { ALICE, ALICE_ARN, signedAs } from "./identity_support.ts";

const prove = signedAs("https://sts.eu-west-1.amazonaws.com", ALICE);
const ALICE_ID = {
  account: "111122223333",
  arn: ALICE_ARN,
  userId: "AROAALICE0000000000001:alice",
};

/** A verifier whose STS answers with `answer()`, on a clock the test moves. */
function verifier(answer: () => Promise<typeof ALICE_ID>) {
  const t = { now: 1_000_000, calls: 0, log: [] as string[] };
  const sts: StsCall = () => {
    t.calls++;
    return answer();
  };
  const v = new IdentityVerifier({
    allowedHosts: [],
    sts,
    now: () => t.now,
    log: (l) => t.log.push(l),
  });
  return { v, t };
}

const down = () =>
  Promise.reject(
    new UserError("could not reach STS at sts.eu-west-1.amazonaws.com", ExitCode.Remote),
  );

Deno.test("identity: nonces are 32 base64url characters, never the same", () => {
  const { v } = verifier(() => Promise.resolve(ALICE_ID));
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const n = v.challenge();
    assert.match(n, /^[A-Za-z0-9_-]{32}$/);
    seen.add(n);
  }
  assert.equal(seen.size, 200);
});

Deno.test("identity: a proof for another nonce, or no proof at all, never reaches STS", async () => {
  const { v, t } = verifier(() => Promise.resolve(ALICE_ID));
  const nonce = v.challenge();
  assert.deepEqual(await v.check(await prove(nonce), nonce), {
    verified: parsePrincipalArn(ALICE_ID.arn, ALICE_ID.userId),
    keyId: "ASIAALICE00000000001",
  });
  assert.equal(t.calls, 1);
  const other = await v.check(await prove(v.challenge()), nonce);
  assert.match((other as { refused: string }).refused, /^identity proof refused: .*another nonce/);
  const junk = await v.check("[]", nonce);
  assert.match((junk as { refused: string }).refused, /^identity proof refused: /);
  assert.equal(t.calls, 1);
});

Deno.test("identity: STS unreachable is remembered for a minute and logged once a spell", async () => {
  let answer: () => Promise<typeof ALICE_ID> = down;
  const { v, t } = verifier(() => answer());
  const once = async () => {
    const nonce = v.challenge();
    return await v.check(await prove(nonce), nonce);
  };
  // The key a proof claims comes along: it may rejoin a tunnel it verified (tunnels.ts).
  assert.deepEqual(await once(), {
    unreachable: "could not reach STS at sts.eu-west-1.amazonaws.com",
    keyId: "ASIAALICE00000000001",
  });
  t.now += STS_DOWN_MS - 1;
  assert.ok("unreachable" in await once());
  assert.equal(t.calls, 1, "not asked again within the minute");
  t.now += 1;
  assert.ok("unreachable" in await once());
  assert.equal(t.calls, 2, "asked again after it");
  assert.equal(t.log.length, 1, t.log.join("\n"));
  assert.match(t.log[0], /could not reach STS.*; stripes are not checked .* for 60 s$/);
  answer = () => Promise.resolve(ALICE_ID);
  t.now += STS_DOWN_MS;
  assert.ok("verified" in await once());
  assert.deepEqual(t.log.slice(1), ["STS answers identity proofs again"]);
  assert.ok("verified" in await once());
  assert.equal(t.log.length, 2);
});

Deno.test("identity: what STS refuses, or names oddly, is refused", async () => {
  const cases: [() => Promise<typeof ALICE_ID>, RegExp][] = [
    [
      () => Promise.reject(new UserError("identity proof refused: STS says AccessDenied", 3)),
      /^identity proof refused: STS says AccessDenied$/,
    ],
    [
      () => Promise.resolve({ ...ALICE_ID, arn: "arn:aws:iam::111122223333:role/Admin" }),
      /^identity proof refused: STS names arn:aws:iam::111122223333:role\/Admin .* not a caller/,
    ],
    [
      () => Promise.resolve({ ...ALICE_ID, userId: "AROAALICE0000000000001:mallory" }),
      /not a caller this agent understands/,
    ],
  ];
  for (const [answer, re] of cases) {
    const { v } = verifier(answer);
    const nonce = v.challenge();
    const o = await v.check(await prove(nonce), nonce);
    assert.ok("refused" in o, JSON.stringify(o));
    assert.match(o.refused, re);
  }
  // A bug is not a refusal.
  const { v } = verifier(() => Promise.reject(new TypeError("bug")));
  const nonce = v.challenge();
  await assert.rejects(v.check(await prove(nonce), nonce), TypeError);
});

Deno.test("identity: what each outcome means for a stripe, with and without requireIdentity", () => {
  const alice = parsePrincipalArn(ALICE_ARN)!;
  for (const required of [false, true]) {
    assert.deepEqual(admitProof({ verified: alice, keyId: "AKIDA" }, required), {
      who: { principal: alice, keyId: "AKIDA" },
    });
    // Unchecked: the registry decides (it may rejoin its own tunnel; tunnels.ts).
    assert.deepEqual(admitProof({ unreachable: "STS down", keyId: "AKIDA" }, required), {
      who: { unverified: "STS down", keyId: "AKIDA" },
    });
  }
  assert.deepEqual(admitProof({ refused: "no" }, true), {
    error: { code: "identity-refused", message: "no" },
  });
  assert.deepEqual(admitProof({ refused: "no" }, false), { who: { unverified: "no" } });
  assert.deepEqual(admitProof({ unreachable: "STS down" }, false), {
    who: { unverified: "STS down" },
  });
  const refused = uncheckedRefusal("STS down");
  assert.equal(refused.code, "identity-refused");
  assert.match(refused.message, /could not reach STS .*\(STS down\): try again later$/);
});
