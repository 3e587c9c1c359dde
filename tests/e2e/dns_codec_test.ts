/** The lab's DNS codec (scripts/lab/dns.ts): golden bytes, round trips, hostile input. No root. */
import assert from "node:assert/strict";
import {
  answerFor,
  decodeMessage,
  decodeName,
  DnsFormatError,
  encodeName,
  encodeQuery,
  encodeResponse,
  RCODE_FORMERR,
  RCODE_NOERROR,
  RCODE_NXDOMAIN,
} from "../../scripts/lab/dns.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

Deno.test("dns: query for db.lab.internal A has the RFC 1035 layout", () => {
  assert.equal(
    hex(encodeQuery(0x1234, "db.lab.internal")),
    "123401000001000000000000" + "026462036c616208696e7465726e616c00" + "00010001",
  );
});

Deno.test("dns: response echoes the question and carries a compressed A record", () => {
  const q = decodeMessage(encodeQuery(7, "DB.lab.internal."));
  assert.deepEqual(q.questions, [{ name: "db.lab.internal", type: 1, class: 1 }]);
  const bytes = encodeResponse(q, RCODE_NOERROR, ["10.99.1.10"], 30);
  assert.equal(hex(bytes.subarray(bytes.length - 16)), "c00c000100010000001e00040a63010a");
  const r = decodeMessage(bytes);
  assert.equal(r.id, 7);
  assert.ok(r.response);
  assert.equal(r.rcode, RCODE_NOERROR);
  assert.equal(r.flags & 0x0100, 0x0100, "RD copied from the query");
  assert.deepEqual(r.answers, [{
    name: "db.lab.internal",
    type: 1,
    class: 1,
    ttl: 30,
    address: "10.99.1.10",
  }]);
});

Deno.test("dns: table lookups give A, NXDOMAIN, NODATA and FORMERR", () => {
  const table = { "db.lab.internal": "10.99.1.10" };
  const ask = (name: string, type = 1) =>
    answerFor(table, decodeMessage(encodeQuery(1, name, type)));
  assert.deepEqual(ask("db.lab.internal"), { rcode: RCODE_NOERROR, addresses: ["10.99.1.10"] });
  assert.deepEqual(ask("nope.lab.internal"), { rcode: RCODE_NXDOMAIN, addresses: [] });
  assert.deepEqual(ask("db.lab.internal", 28), { rcode: RCODE_NOERROR, addresses: [] });
  const nx = decodeMessage(
    encodeResponse(decodeMessage(encodeQuery(2, "x.lab.internal")), RCODE_NXDOMAIN),
  );
  assert.equal(nx.rcode, RCODE_NXDOMAIN);
  assert.deepEqual(nx.answers, []);
  const reply = decodeMessage(
    encodeResponse(decodeMessage(encodeQuery(3, "a.b")), RCODE_NOERROR, ["1.2.3.4"]),
  );
  assert.equal(answerFor(table, reply).rcode, RCODE_FORMERR, "a response is not a query");
});

Deno.test("dns: names are validated and pointers must go backwards", () => {
  assert.throws(() => encodeName("a".repeat(64) + ".x"), DnsFormatError);
  assert.throws(() => encodeName("a..b"), DnsFormatError);
  assert.deepEqual(encodeName("."), new Uint8Array([0]));
  // A pointer to itself would loop forever if followed blindly.
  const loop = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc0, 12]);
  assert.throws(() => decodeName(loop, 12), DnsFormatError);
  const fwd = new Uint8Array([0xc0, 2, 1, 0x61, 0]);
  assert.throws(() => decodeName(fwd, 0), DnsFormatError);
});

Deno.test("dns: truncated or garbage input throws DnsFormatError, never anything else", () => {
  const good = encodeResponse(decodeMessage(encodeQuery(9, "db.lab.internal")), 0, ["10.0.0.1"]);
  for (let n = 0; n < good.length; n++) {
    assert.throws(() => decodeMessage(good.subarray(0, n)), DnsFormatError, `prefix of ${n} bytes`);
  }
  let seed = 1;
  for (let i = 0; i < 2000; i++) {
    const b = new Uint8Array(12 + (i % 40));
    for (let j = 0; j < b.length; j++) b[j] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    try {
      decodeMessage(b);
    } catch (e) {
      assert.ok(e instanceof DnsFormatError, String(e));
    }
  }
});
