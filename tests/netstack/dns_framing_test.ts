import assert from "node:assert/strict";
import fc from "fast-check";
import { frame, FrameReader } from "../../src/netstack/dns_framing.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const bytes = (...xs: number[]) => new Uint8Array(xs);
const concat = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.length) - p.length);
  return out;
};

Deno.test("dns framing: a 2-byte big-endian length goes first", () => {
  assert.equal(hex(frame(bytes(0xaa, 0xbb, 0xcc))), "0003aabbcc");
  assert.equal(hex(frame(new Uint8Array(0x1234)).subarray(0, 2)), "1234");
  assert.equal(frame(new Uint8Array(0xffff)).length, 0x10001);
  assert.throws(() => frame(new Uint8Array(0x10000)), RangeError);
});

Deno.test("dns framing: a length prefix split across chunks", () => {
  const r = new FrameReader();
  assert.deepEqual(r.push(bytes(0x00)), []);
  assert.equal(r.pending, 1);
  assert.deepEqual(r.push(bytes(0x03, 1)), []);
  assert.equal(r.pending, 3);
  assert.deepEqual(r.push(bytes(2)), []);
  assert.deepEqual(r.push(bytes(3, 0x00)), [bytes(1, 2, 3)]);
  assert.equal(r.pending, 1);
  assert.deepEqual(r.push(bytes(0x01, 9)), [bytes(9)]);
  assert.equal(r.pending, 0);
});

Deno.test("dns framing: several frames in one chunk, zero-length frames skipped", () => {
  const r = new FrameReader();
  const wire = concat([frame(bytes(1)), frame(bytes()), frame(bytes(2, 2)), frame(bytes(3))]);
  assert.deepEqual(r.push(wire), [bytes(1), bytes(2, 2), bytes(3)]);
  assert.equal(r.pending, 0);
});

Deno.test("dns framing: messages are copies, so the caller may reuse its chunk", () => {
  const r = new FrameReader();
  const chunk = frame(bytes(7, 7));
  const [m] = r.push(chunk);
  chunk.fill(0);
  assert.deepEqual(m, bytes(7, 7));
});

Deno.test("dns framing property: any chunking gives the same messages", () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 700 }), { maxLength: 20 }),
      fc.array(fc.integer({ min: 1, max: 900 })),
      (msgs, cuts) => {
        const wire = concat(msgs.map(frame));
        const r = new FrameReader();
        const got: Uint8Array[] = [];
        let at = 0;
        for (const c of cuts) {
          got.push(...r.push(wire.subarray(at, Math.min(wire.length, at + c))));
          at = Math.min(wire.length, at + c);
        }
        got.push(...r.push(wire.subarray(at)));
        assert.deepEqual(got, msgs.filter((m) => m.length > 0));
        assert.equal(r.pending, 0);
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("dns framing property: garbage never throws; output + pending accounts for every byte", () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }), (chunks) => {
      const r = new FrameReader();
      let frames = 0, body = 0;
      for (const c of chunks) {
        for (const m of r.push(c)) {
          frames++;
          body += m.length;
          assert.ok(m.length > 0);
        }
      }
      const fed = chunks.reduce((n, c) => n + c.length, 0);
      // Fed bytes = 2 per frame + bodies + zero-length frames (2 each) + what is still pending.
      const rest = fed - 2 * frames - body - r.pending;
      assert.ok(rest >= 0 && rest % 2 === 0, `${rest}`);
    }),
    { numRuns: 1000 },
  );
});
