import assert from "node:assert/strict";
import { SmokeSteps } from "../../scripts/smoke_steps.ts";

Deno.test("smoke steps: PASS with what a step returns, FAIL with its error, and carry on", async () => {
  const lines: string[] = [];
  const log = console.log;
  console.log = (l: string) => lines.push(l);
  try {
    const s = new SmokeSteps();
    const step = s.step; // the scripts call it unbound
    assert.equal(await step("first", () => "utun5"), true);
    assert.equal(await step("second", () => Promise.reject(new Error("EPERM"))), false);
    assert.equal(await step("third", () => {}), true);
    assert.equal(s.failed, 1);
  } finally {
    console.log = log;
  }
  assert.deepEqual(lines, ["PASS first: utun5", "FAIL second: EPERM", "PASS third"]);
});
