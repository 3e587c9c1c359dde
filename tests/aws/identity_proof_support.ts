/** What both identity proof test files share: one-line refusals and a fetch that must not run. */

import assert from "node:assert/strict";
import { UserError } from "../../src/errors.ts";

export const NONCE = "n0nce-for-agent_0001";
export const OTHER = "n0nce-for-agent_0002";

/** Expects one refusal: a UserError of one line matching `re`. */
export async function refusal(
  p: Promise<unknown> | (() => unknown),
  re: RegExp,
): Promise<UserError> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    assert.ok(e instanceof UserError, `not a UserError: ${(e as Error).stack}`);
    assert.match(e.message, re);
    assert.ok(!e.message.includes("\n"), `more than one line: ${e.message}`);
    return e;
  }
  assert.fail(`expected a refusal matching ${re}`);
}

export const neverCalled: typeof fetch = () => assert.fail("the proof must not reach STS");
