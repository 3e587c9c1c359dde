import assert from "node:assert/strict";
import fc from "fast-check";
import {
  compareVersions,
  decodeMessage,
  encodeMessage,
  FrameError,
  parseFlag,
  uuidFromWire,
  uuidToWire,
} from "../../src/ssm/message.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const unhex = (s: string) =>
  new Uint8Array(s.replace(/\s+/g, "").match(/../g)!.map((x) => parseInt(x, 16)));

// specs/ssm-protocol.md §4 "Worked example", serialized by the plugin's own SerializeClientMessage.
const WORKED_EXAMPLE = `
00000074 696e7075745f73747265616d
5f64617461 20202020202020202020 20
20202020 00000001 0000015e0baa7884
0000000000000002 0000000000000000
a508b5f073f31b16 dd01e56bff48483e
239f59ed55e737c77147cf55ad0c1b03
0b6d7ee748a7426952f9b852d5a935e5
00000001 00000007 7061796c6f6164`;

const example = {
  messageType: "input_stream_data",
  schemaVersion: 1,
  createdDate: 1503434274948,
  sequenceNumber: 2n,
  flags: 0n,
  messageId: "dd01e56b-ff48-483e-a508-b5f073f31b16",
  payloadType: 1,
  payload: new TextEncoder().encode("payload"),
};

Deno.test("codec: encodes the spec's worked example byte for byte", () => {
  const got = encodeMessage(example);
  assert.equal(got.length, 127);
  assert.equal(hex(got), hex(unhex(WORKED_EXAMPLE)));
});

Deno.test("codec: decodes the worked example", () => {
  assert.deepEqual(decodeMessage(unhex(WORKED_EXAMPLE)), example);
});

Deno.test("codec: MessageId is written least significant half first", () => {
  assert.equal(
    hex(uuidToWire("dd01e56b-ff48-483e-a508-b5f073f31b16")),
    "a508b5f073f31b16dd01e56bff48483e",
  );
  assert.equal(
    uuidFromWire(unhex("a508b5f073f31b16dd01e56bff48483e")),
    "dd01e56b-ff48-483e-a508-b5f073f31b16",
  );
});

Deno.test("codec: field-level vectors from the repos' tests (putLong/putInteger)", () => {
  // putLong(5747283) at offset 48 is the SequenceNumber field; putInteger(324) the PayloadType.
  const f = encodeMessage({ ...example, sequenceNumber: 5747283n, payloadType: 324 });
  assert.equal(hex(f.subarray(48, 56)), "000000000057b253");
  assert.equal(hex(f.subarray(112, 116)), "00000144");
  const g = encodeMessage({ ...example, sequenceNumber: 92837273n, payloadType: 520392 });
  assert.equal(hex(g.subarray(48, 56)), "0000000005889599");
  assert.equal(hex(g.subarray(112, 116)), "0007f0c8");
});

Deno.test("codec: acknowledge header is 120 bytes, flags 3, seq 0, type padded with spaces", () => {
  const f = encodeMessage({
    ...example,
    messageType: "acknowledge",
    sequenceNumber: 0n,
    flags: 3n,
    payloadType: 0,
    payload: new TextEncoder().encode("{}"),
  });
  assert.equal(new TextDecoder().decode(f.subarray(4, 36)), "acknowledge" + " ".repeat(21));
  assert.equal(hex(f.subarray(56, 64)), "0000000000000003");
});

Deno.test("codec: HeaderLength 112 channel_closed (no PayloadType field) is accepted", () => {
  const payload = new TextEncoder().encode('{"SessionId":"s-1","Output":"bye"}');
  const full = encodeMessage({
    ...example,
    messageType: "channel_closed",
    payload,
    payloadType: 0,
  });
  // Drop the PayloadType field: HL=112, PayloadLength at offset 112.
  const f = new Uint8Array(full.length - 4);
  f.set(full.subarray(0, 112), 0);
  f.set(full.subarray(116), 112);
  new DataView(f.buffer).setUint32(0, 112);
  const m = decodeMessage(f);
  assert.equal(m.messageType, "channel_closed");
  assert.equal(new TextDecoder().decode(m.payload), '{"SessionId":"s-1","Output":"bye"}');
});

Deno.test("codec: NUL-padded MessageType is accepted", () => {
  const f = encodeMessage(example);
  f.fill(0, 4 + "input_stream_data".length, 36);
  assert.equal(decodeMessage(f).messageType, "input_stream_data");
});

Deno.test("codec: digest mismatch, zero date, bad lengths are typed errors", () => {
  const f = encodeMessage(example);
  const bad = f.slice();
  bad[bad.length - 1] ^= 1;
  assert.throws(() => decodeMessage(bad), FrameError);
  assert.doesNotThrow(() => decodeMessage(bad, { verifyDigest: false }));
  const zero = f.slice();
  zero.fill(0, 40, 48);
  assert.throws(() => decodeMessage(zero), /CreatedDate/);
  const hl = f.slice();
  new DataView(hl.buffer).setUint32(0, 9999);
  assert.throws(() => decodeMessage(hl), /HeaderLength/);
  assert.throws(() => decodeMessage(f.subarray(0, 100)), /too short/);
  const len = f.slice();
  new DataView(len.buffer).setUint32(116, 8);
  assert.throws(() => decodeMessage(len), /PayloadLength/);
});

Deno.test("codec: publication messages skip validation, as the plugin does", () => {
  const f = encodeMessage({ ...example, messageType: "pause_publication" });
  f.fill(0, 40, 48); // CreatedDate 0
  f[f.length - 1] ^= 1; // digest wrong
  assert.equal(decodeMessage(f).messageType, "pause_publication");
});

const messageArb = fc.record({
  messageType: fc.constantFrom("input_stream_data", "output_stream_data", "acknowledge"),
  schemaVersion: fc.constant(1),
  createdDate: fc.integer({ min: 1, max: 2 ** 48 }),
  sequenceNumber: fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }),
  flags: fc.constantFrom(0n, 1n, 2n, 3n),
  messageId: fc.uuid().map((u) => u.toLowerCase()),
  payloadType: fc.integer({ min: 0, max: 12 }),
  payload: fc.uint8Array({ minLength: 1, maxLength: 2048 }),
});

Deno.test("codec property: decode(encode(m)) == m", () => {
  fc.assert(
    fc.property(messageArb, (m) => assert.deepEqual(decodeMessage(encodeMessage(m)), { ...m })),
    {
      numRuns: 500,
    },
  );
});

Deno.test("codec property: random bytes give a FrameError or a message, never anything else", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (b) => {
      try {
        decodeMessage(b);
      } catch (e) {
        assert.ok(e instanceof FrameError, String(e));
      }
    }),
    { numRuns: 3000 },
  );
});

Deno.test("codec property: corrupting one byte of a frame never crashes the decoder", () => {
  fc.assert(
    fc.property(messageArb, fc.nat(), fc.integer({ min: 1, max: 255 }), (m, i, x) => {
      const f = encodeMessage(m);
      f[i % f.length] ^= x;
      try {
        decodeMessage(f);
      } catch (e) {
        assert.ok(e instanceof FrameError, String(e));
      }
    }),
    { numRuns: 1000 },
  );
});

Deno.test("flag payload and version compare", () => {
  assert.equal(parseFlag(new Uint8Array([0, 0, 0, 3])), 3);
  assert.throws(() => parseFlag(new Uint8Array([3])), FrameError);
  assert.equal(compareVersions("3.3.0.0", "3.0.196.0"), 1);
  assert.equal(compareVersions("1.2.764.0", "1.1.70"), 1);
  assert.equal(compareVersions("1.1.70", "1.1.70.0"), -1);
  assert.equal(compareVersions("3.0.196.0", "3.0.196.0"), 0);
});
