import assert from "node:assert/strict";
import fc from "fast-check";
import {
  DEFAULT_PARALLEL,
  MAX_PARALLEL,
  parseParallel,
  planParts,
  sliceParts,
} from "../../src/install/parts.ts";
import { sha256Hex } from "../../src/install/payload.ts";
import { UserError } from "../../src/errors.ts";

Deno.test("planParts: contiguous, in order, covering every byte once, nearly equal", () => {
  fc.assert(
    fc.property(
      fc.nat({ max: 50_000_000 }),
      fc.integer({ min: 1, max: MAX_PARALLEL }),
      fc.integer({ min: 1, max: 1 << 20 }),
      (size, parallel, minPart) => {
        const parts = planParts(size, parallel, minPart);
        assert.ok(parts.length >= 1 && parts.length <= parallel);
        let at = 0;
        parts.forEach((p, i) => {
          assert.equal(p.index, i + 1);
          assert.equal(p.offset, at);
          at += p.length;
        });
        assert.equal(at, size);
        const lengths = parts.map((p) => p.length);
        assert.ok(Math.max(...lengths) - Math.min(...lengths) <= 1);
        if (parts.length > 1) assert.ok(Math.min(...lengths) >= minPart, "no part below minPart");
        // As many sessions as asked for whenever the binary is big enough for them.
        if (size >= parallel * minPart) assert.equal(parts.length, parallel);
      },
    ),
  );
});

Deno.test("planParts: a small binary goes in one session", () => {
  assert.deepEqual(planParts(1000, 4), [{ index: 1, offset: 0, length: 1000 }]);
  assert.equal(planParts(70_000_000, 4).length, 4);
  assert.equal(planParts(70_000_000, 1).length, 1);
});

Deno.test("parseParallel: 1 to 16, default 4, anything else one clear usage error", () => {
  assert.equal(parseParallel(undefined), DEFAULT_PARALLEL);
  assert.equal(parseParallel("1"), 1);
  assert.equal(parseParallel("16"), 16);
  assert.equal(parseParallel(7), 7);
  for (const bad of ["0", "17", "-1", "2.5", "four", "", "1e1", "0x4"]) {
    assert.throws(
      () => parseParallel(bad),
      (e) => e instanceof UserError && e.exitCode === 2 && /from 1 to 16/.test(e.message),
      bad,
    );
  }
});

Deno.test("sliceParts: each slice is its range of the binary, with that range's digest", async () => {
  const bytes = crypto.getRandomValues(new Uint8Array(10_001));
  const parts = await sliceParts(bytes, planParts(bytes.length, 3, 1000));
  assert.equal(parts.length, 3);
  const joined = new Uint8Array(parts.reduce((a, p) => a + p.bytes.length, 0));
  let at = 0;
  for (const p of parts) {
    joined.set(p.bytes, at);
    at += p.bytes.length;
    assert.equal(p.sha256, await sha256Hex(p.bytes));
  }
  assert.deepEqual(joined, bytes);
});
