import assert from "node:assert/strict";
import { encodeMessage, MessageType, PayloadType } from "../../src/ssm/message.ts";
import { InputGate, inputPayloadBytes } from "../../src/emulator/agent/input_gate.ts";

function frame(type: string, seq: number, payloadBytes: number): Uint8Array {
  return encodeMessage({
    messageType: type,
    schemaVersion: 1,
    createdDate: 1_700_000_000_000,
    sequenceNumber: BigInt(seq),
    flags: 0n,
    messageId: "0c4b2f6e-8a51-4d3e-9b7a-2f1e5d6c7b8a",
    payloadType: PayloadType.Output,
    payload: new Uint8Array(payloadBytes).fill(seq),
  });
}

Deno.test("inputPayloadBytes reads the payload length of input_stream_data frames only", () => {
  assert.equal(inputPayloadBytes(frame(MessageType.InputStreamData, 0, 1000)), 1000);
  assert.equal(inputPayloadBytes(frame(MessageType.Acknowledge, 0, 90)), 0);
  assert.equal(inputPayloadBytes(frame(MessageType.OutputStreamData, 0, 1000)), 0);
  assert.equal(inputPayloadBytes(new Uint8Array(40)), 0);
});

Deno.test("the input gate holds payloads to its budget, in order, and lets other frames pass", async () => {
  const got: { seq: number; at: number }[] = [];
  const t0 = performance.now();
  // 2 bytes per ms: each 40-byte payload takes 20 ms of budget.
  const gate = new InputGate({
    bytesPerMs: 2,
    maxCatchUpMs: 0,
    deliver: (f) => got.push({ seq: f[f.length - 1], at: performance.now() - t0 }),
  });
  for (let seq = 1; seq <= 5; seq++) gate.push(frame(MessageType.InputStreamData, seq, 40));
  assert.equal(got.length, 1, "the first payload goes at once");
  assert.equal(gate.queued, 4);
  gate.push(frame(MessageType.Acknowledge, 9, 9));
  assert.equal(got.length, 2, "an acknowledge does not wait behind input");
  while (got.length < 6) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(got.map((g) => g.seq), [1, 9, 2, 3, 4, 5]);
  // Timers may fire late, never early: 4 more payloads need at least 80 ms.
  assert.ok(got[5].at >= 78, `the fifth payload came after ${got[5].at.toFixed(1)} ms`);
  gate.close();
});

Deno.test("a closed input gate delivers nothing more", async () => {
  const got: Uint8Array[] = [];
  const gate = new InputGate({ bytesPerMs: 1, maxCatchUpMs: 0, deliver: (f) => got.push(f) });
  gate.push(frame(MessageType.InputStreamData, 1, 10));
  gate.push(frame(MessageType.InputStreamData, 2, 10));
  gate.close();
  gate.push(frame(MessageType.InputStreamData, 3, 10));
  await new Promise((r) => setTimeout(r, 40));
  assert.equal(got.length, 1);
});
