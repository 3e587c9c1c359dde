/** The request and messages between start and its planning child (src/start/plan_wire.ts). */
import assert from "node:assert/strict";
import fc from "fast-check";
import { ExitCode, UserError } from "../../src/errors.ts";
import {
  decodeMessage,
  decodeRequest,
  encodeMessage,
  encodeRequest,
  errorFrom,
  errorMessage,
  type PlanMessage,
  type PlanRequest,
} from "../../src/start/plan_wire.ts";

/** Plain objects, as JSON.parse makes them. */
const rec = <T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> =>
  fc.record(model, { noNullPrototype: true });

const target = fc.record({ instanceId: fc.string(), name: fc.string() }, {
  noNullPrototype: true,
  requiredKeys: ["instanceId"],
});
const aws = fc.record({ profile: fc.string(), region: fc.string() }, {
  noNullPrototype: true,
  requiredKeys: [],
});

const message: fc.Arbitrary<PlanMessage> = fc.oneof(
  rec({ type: fc.constant("progress" as const), line: fc.string() }),
  fc.record({
    type: fc.constant("located" as const),
    target,
    spread: fc.array(target, { minLength: 2, maxLength: 3 }),
    region: fc.string(),
  }, { noNullPrototype: true, requiredKeys: ["type", "target", "region"] }),
  fc.record({
    type: fc.constant("discovered" as const),
    discovery: fc.record({
      vpcId: fc.string(),
      ranges: fc.array(rec({ cidr: fc.string(), reason: fc.string() })),
      skipped: fc.array(rec({ cidr: fc.string(), reason: fc.string() })),
      domains: fc.array(rec({ domain: fc.string(), reason: fc.string() })),
      resolver: fc.string(),
      notes: fc.array(fc.string()),
    }, { noNullPrototype: true, requiredKeys: ["ranges", "skipped", "domains", "notes"] }),
  }, { noNullPrototype: true, requiredKeys: ["type"] }),
  fc.record({ type: fc.constant("resolver" as const), address: fc.string() }, {
    noNullPrototype: true,
    requiredKeys: ["type"],
  }),
  fc.record({
    type: fc.constant("error" as const),
    message: fc.string(),
    exitCode: fc.integer({ min: 0, max: 255 }),
    internal: fc.constant(true),
  }, { noNullPrototype: true, requiredKeys: ["type", "message", "exitCode"] }),
);

Deno.test("plan wire: every message is one line and decodes to itself", () => {
  fc.assert(fc.property(message, (m) => {
    const line = encodeMessage(m);
    assert.equal(line.indexOf("\n"), line.length - 1);
    assert.deepEqual(decodeMessage(line.trimEnd()), m);
  }));
});

Deno.test("plan wire: both requests decode to themselves", () => {
  const request: fc.Arbitrary<PlanRequest> = fc.oneof(
    rec({
      kind: fc.constant("plan" as const),
      aws,
      target: fc.string(),
      spread: fc.boolean(),
      wake: fc.boolean(),
      discover: rec({ routes: fc.boolean(), dns: fc.boolean() }),
    }),
    rec({ kind: fc.constant("resolver" as const), aws, instanceId: fc.string() }),
  );
  fc.assert(fc.property(request, (r) => {
    assert.deepEqual(decodeRequest(encodeRequest(r)), r);
  }));
});

Deno.test("plan wire: anything else is refused as a bug, not a user error", () => {
  const bad = [
    "",
    "not json",
    "[]",
    "null",
    '{"type":"located","region":"eu-central-1"}',
    '{"type":"progress"}',
    '{"type":"error","message":"x"}',
    '{"type":"resolver","address":5}',
    '{"type":"surprise"}',
  ];
  for (const line of bad) {
    assert.throws(
      () => decodeMessage(line),
      (e) =>
        e instanceof Error && !(e instanceof UserError) &&
        /malformed planning message/.test(e.message),
      line,
    );
  }
  for (const text of ["", "{}", '{"kind":"plan","aws":{},"target":"x"}', '{"kind":"resolver"}']) {
    assert.throws(() => decodeRequest(text), /malformed planning request/, text);
  }
});

Deno.test("plan wire: a UserError crosses with its line and exit code; anything else as internal", () => {
  const user = new UserError("no instance matches name:nope", ExitCode.Target);
  const back = errorFrom(decodeMessage(encodeMessage(errorMessage(user)).trimEnd()) as never);
  assert.ok(back instanceof UserError);
  assert.equal(back.message, user.message);
  assert.equal((back as UserError).exitCode, ExitCode.Target);

  const bug = errorFrom(errorMessage(new TypeError("x is undefined")));
  assert.ok(!(bug instanceof UserError));
  assert.match(bug.message, /^the planning process failed: TypeError: x is undefined/);
  const thrown = errorMessage("a string");
  assert.equal(thrown.internal, true);
  assert.equal(thrown.exitCode, ExitCode.Failure);
});
