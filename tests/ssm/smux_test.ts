import assert from "node:assert/strict";
import fc from "fast-check";
import { Cmd, encodeFrame, encodePsh, SmuxError, SmuxParser } from "../../src/ssm/smux_frame.ts";
import { SmuxClient } from "../../src/ssm/smux.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

Deno.test("smux: frames match the bytes observed between plugin and agent (spec §8)", () => {
  assert.equal(hex(encodeFrame(Cmd.SYN, 3)), "0100000003000000");
  assert.equal(
    hex(encodeFrame(Cmd.PSH, 3, new TextEncoder().encode("hello-mux-1"))),
    "01020b0003000000" + hex(new TextEncoder().encode("hello-mux-1")),
  );
  assert.equal(hex(encodeFrame(Cmd.FIN, 3)), "0101000003000000");
  assert.equal(hex(encodeFrame(Cmd.NOP, 0)), "0103000000000000");
});

Deno.test("smux: client stream ids are odd and start at 3", () => {
  const out: Uint8Array[] = [];
  const c = new SmuxClient((b) => out.push(b));
  const noop = { data() {}, end() {} };
  assert.deepEqual([c.open(noop).id, c.open(noop).id, c.open(noop).id], [3, 5, 7]);
  assert.equal(hex(out[0]), "0100000003000000");
});

Deno.test("smux property: any chunking of a frame stream parses to the same frames", () => {
  const frameArb = fc.record({
    cmd: fc.constantFrom(Cmd.SYN, Cmd.FIN, Cmd.PSH, Cmd.NOP),
    streamId: fc.integer({ min: 0, max: 0xffffffff }),
    data: fc.uint8Array({ maxLength: 3000 }),
  });
  fc.assert(
    fc.property(
      fc.array(frameArb, { maxLength: 30 }),
      fc.array(fc.integer({ min: 1, max: 5000 })),
      (frames, cuts) => {
        const wire = frames.map((f) => encodeFrame(f.cmd, f.streamId, f.data));
        const all = new Uint8Array(wire.reduce((n, w) => n + w.length, 0));
        let o = 0;
        for (const w of wire) all.set(w, (o += w.length) - w.length);
        const p = new SmuxParser();
        const got = [];
        let at = 0;
        for (const c of cuts) {
          got.push(...p.push(all.subarray(at, Math.min(all.length, at + c))));
          at = Math.min(all.length, at + c);
        }
        got.push(...p.push(all.subarray(at)));
        assert.deepEqual(got.map((f) => ({ ...f })), frames.map((f) => ({ ...f })));
        assert.equal(p.pending, 0);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("smux property: random bytes give frames or a SmuxError, never anything else", () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 10 }), (chunks) => {
      const p = new SmuxParser();
      try {
        for (const c of chunks) p.push(c);
      } catch (e) {
        assert.ok(e instanceof SmuxError, String(e));
      }
    }),
    { numRuns: 2000 },
  );
});

Deno.test("smux: large writes are split into PSH frames of at most 32 KiB", () => {
  const data = new Uint8Array(70_000).map((_, i) => i & 0xff);
  const frames = new SmuxParser().push(encodePsh(5, data));
  assert.deepEqual(frames.map((f) => f.data.length), [32768, 32768, 70000 - 65536]);
  const joined = new Uint8Array(70_000);
  let o = 0;
  for (const f of frames) joined.set(f.data, (o += f.data.length) - f.data.length);
  assert.deepEqual(joined, data);
});

Deno.test("smux: data and FIN route to their streams; ConnectToPortError marks the refused one", () => {
  const c = new SmuxClient(() => {});
  const got: Record<number, string[]> = { 3: [], 5: [] };
  const ends: Record<number, boolean> = {};
  const a = c.open({
    data: (d) => got[3].push(new TextDecoder().decode(d)),
    end: (r) => (ends[3] = r),
  });
  const b = c.open({
    data: (d) => got[5].push(new TextDecoder().decode(d)),
    end: (r) => (ends[5] = r),
  });
  c.receive(encodeFrame(Cmd.PSH, a.id, new TextEncoder().encode("hi")));
  c.connectError();
  const both = new Uint8Array([...encodeFrame(Cmd.FIN, b.id), ...encodeFrame(Cmd.FIN, a.id)]);
  c.receive(both.subarray(0, 5));
  c.receive(both.subarray(5));
  assert.deepEqual(got, { 3: ["hi"], 5: [] });
  assert.deepEqual(ends, { 3: false, 5: true });
  assert.equal(c.stats.refused, 1);
});

Deno.test("smux: PSH for an unknown stream is counted, not delivered", () => {
  const c = new SmuxClient(() => {});
  c.receive(encodeFrame(Cmd.PSH, 99, new Uint8Array([1])));
  c.receive(encodeFrame(Cmd.SYN, 4));
  assert.equal(c.stats.strays, 2);
});
