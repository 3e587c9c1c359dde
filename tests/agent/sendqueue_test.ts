import assert from "node:assert/strict";
import { SendQueue } from "../../agent/sendqueue.ts";
import { FrameReader, FrameType } from "../../src/tunnel/wire.ts";

Deno.test("sendqueue: bounded in bytes", () => {
  const q = new SendQueue({ maxBytes: 3000, maxDelayMs: 1e9 }, () => 0);
  const p = new Uint8Array(1000);
  assert.equal(q.push(p), true);
  assert.equal(q.push(p), true);
  assert.equal(q.push(p), true);
  assert.equal(q.push(p), false);
  assert.equal(q.dropped, 1);
  assert.equal(q.bytes, 3000);
});

Deno.test("sendqueue: bounded in time: drops once the oldest packet waited too long", () => {
  const clock = { t: 0 };
  const q = new SendQueue({ maxBytes: 1e9, maxDelayMs: 50 }, () => clock.t);
  assert.equal(q.push(new Uint8Array(10)), true);
  clock.t = 50;
  assert.equal(q.push(new Uint8Array(10)), true);
  clock.t = 51;
  assert.equal(q.push(new Uint8Array(10)), false);
  q.take();
  assert.equal(q.push(new Uint8Array(10)), true, "a drained queue accepts again");
});

Deno.test("sendqueue: take() coalesces control frames and packets, copies packets", () => {
  const q = new SendQueue();
  const buf = new Uint8Array([0x45, 1, 2, 3]);
  q.pushControl(new Uint8Array([5, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]));
  q.push(buf);
  buf[1] = 99; // the caller reuses its buffer
  for (let i = 0; i < 100; i++) q.push(new Uint8Array(1000).fill(i));
  const frames = new FrameReader().push(q.take()!);
  assert.equal(frames[0].type, FrameType.Pong);
  const packets = frames.slice(1).flatMap((f) => f.type === FrameType.Packets ? f.packets : []);
  assert.equal(packets.length, 101);
  assert.deepEqual([...packets[0]], [0x45, 1, 2, 3]);
  assert.equal(frames.length, 1 + 2, "101 KB of packets in two PACKETS frames");
  assert.equal(q.take(), undefined);
  assert.equal(q.empty, true);
});
