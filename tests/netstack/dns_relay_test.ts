import assert from "node:assert/strict";
import fc from "fast-check";
import { frame, FrameReader } from "../../src/netstack/dns_framing.ts";
import { getId, setId } from "../../src/netstack/dns_message.ts";
import { type DnsQuery, DnsRelay, type DnsReply } from "../../src/netstack/dns_relay.ts";
import type {
  Destination,
  RemoteStream,
  RemoteStreamEvents,
  StreamTransport,
} from "../../src/netstack/types.ts";

import {
  answer as dnsAnswer,
  qname,
  query,
  questionName as qnameOf,
  u16,
} from "./support/dns_wire.ts";

const dnsQuery = (id: number, name: string, edns?: number) =>
  query(id, name, { edns, flags: 0x0100 });

/** One fake upstream stream: records what the relay writes, lets the test play the resolver. */
class FakeStream implements RemoteStream {
  readonly wire: Uint8Array[] = [];
  canWrite = true;
  closed = false;
  aborted = false;
  #reader = new FrameReader();
  #seen: Uint8Array[] = [];
  constructor(readonly dst: Destination, readonly ev: RemoteStreamEvents) {}
  write(data: Uint8Array) {
    assert.ok(this.canWrite, "written while not writable");
    assert.ok(!this.closed && !this.aborted, "written after close");
    this.wire.push(data.slice());
    this.#seen.push(...this.#reader.push(data));
  }
  writable() {
    return this.canWrite;
  }
  close() {
    this.closed = true;
  }
  abort() {
    this.aborted = true;
  }
  pause() {}
  /** The DNS messages written so far. */
  get queries(): Uint8Array[] {
    return this.#seen;
  }
  /** Answer a written query (with the ID it carries on this stream). */
  reply(q: Uint8Array, size = 100) {
    this.ev.data(frame(dnsAnswer(q, size)));
  }
}

class FakeTransport implements StreamTransport {
  readonly streams: FakeStream[] = [];
  /** When set, `opened` is reported from inside `open()`. */
  syncResult: "ok" | "refused" | undefined;
  open(dst: Destination, ev: RemoteStreamEvents): RemoteStream {
    const s = new FakeStream(dst, ev);
    this.streams.push(s);
    if (this.syncResult) ev.opened(this.syncResult);
    return s;
  }
  get last(): FakeStream {
    return this.streams[this.streams.length - 1];
  }
}

const RESOLVER = new Uint8Array([10, 0, 0, 2]);
const CLIENT_A = new Uint8Array([10, 99, 0, 1]);
const CLIENT_B = new Uint8Array([10, 99, 0, 7]);

function setup(o: { mtu?: number; maxInFlight?: number } = {}) {
  const transport = new FakeTransport();
  const replies: DnsReply[] = [];
  const clock = { t: 1_000_000 };
  const relay = new DnsRelay({
    transport,
    mtu: o.mtu ?? 1500,
    maxInFlight: o.maxInFlight,
    reply: (r) => replies.push(r),
    now: () => clock.t,
  });
  const ask = (payload: Uint8Array, x: Partial<DnsQuery> = {}) =>
    relay.query({
      family: 4,
      client: CLIENT_A,
      clientPort: 40000,
      resolver: RESOLVER,
      payload,
      ...x,
    });
  return { transport, replies, clock, relay, ask };
}

const rcode = (m: Uint8Array) => m[3] & 0x0f;
const tc = (m: Uint8Array) => (m[2] & 0x02) !== 0;

Deno.test("dns relay: a query waits for the open, goes out framed, the answer comes back as the resolver", () => {
  const { transport, replies, relay, ask } = setup();
  const q = dnsQuery(0x1234, "example.com");
  assert.equal(ask(q), true);
  assert.equal(transport.streams.length, 1);
  const s = transport.last;
  assert.deepEqual(s.dst, { family: 4, host: "10.0.0.2", port: 53 });
  assert.equal(s.wire.length, 0, "nothing written before opened(ok)");
  s.ev.opened("ok");
  assert.equal(s.wire.length, 1);
  const sent = s.queries[0];
  assert.deepEqual(s.wire[0].subarray(0, 2), new Uint8Array(u16(q.length)));
  assert.deepEqual(sent.subarray(2), q.subarray(2), "only the ID is rewritten");
  assert.equal(relay.inFlight, 1);
  s.reply(sent, 80);
  assert.equal(replies.length, 1);
  const r = replies[0];
  assert.deepEqual(
    { ...r, payload: undefined },
    { family: 4, src: RESOLVER, dst: CLIENT_A, sport: 53, dport: 40000, payload: undefined },
  );
  assert.equal(getId(r.payload), 0x1234, "original ID restored");
  assert.equal(r.payload.length, 80);
  assert.equal(tc(r.payload), false);
  assert.equal(relay.inFlight, 0);
  assert.deepEqual(relay.stats, {
    queries: 1,
    answers: 1,
    truncated: 0,
    servfail: 0,
    timeouts: 0,
    rejected: 0,
  });
});

Deno.test("dns relay: maxUdp 512 / EDNS 1232 / EDNS 4096 capped by the MTU decide TC", () => {
  const cases: [number | undefined, 4 | 6, number][] = [
    [undefined, 4, 512],
    [1232, 4, 1232],
    [4096, 4, 1500 - 28],
    [4096, 6, 1500 - 48],
  ];
  for (const [edns, family, max] of cases) {
    const { transport, replies, ask } = setup();
    const addr = family === 4 ? undefined : {
      client: new Uint8Array(16).fill(1),
      resolver: new Uint8Array([0xfd, 0, 0xe, 0xc2, ...new Array(11).fill(0), 0x53]),
    };
    for (const size of [max, max + 1]) {
      ask(dnsQuery(size, "big.example", edns), { family, ...addr });
    }
    const s = transport.last;
    s.ev.opened("ok");
    s.reply(s.queries[0], max);
    s.reply(s.queries[1], max + 1);
    const [fits, over] = replies.map((r) => r.payload);
    assert.equal(fits.length, max, `${edns}/${family}: exactly maxUdp fits`);
    assert.equal(tc(fits), false);
    assert.equal(tc(over), true, `${edns}/${family}: one byte over is truncated`);
    assert.deepEqual([getId(fits), getId(over)], [max, max + 1]);
  }
});

Deno.test("dns relay: a 3000-byte answer gets TC, keeps the question, drops the records", () => {
  const { transport, replies, relay, ask } = setup();
  const q = dnsQuery(0xbeef, "large.txt.example", 1232);
  ask(q);
  transport.last.ev.opened("ok");
  transport.last.reply(transport.last.queries[0], 3000);
  const a = replies[0].payload;
  const qLen = 12 + qname("large.txt.example").length + 4;
  assert.equal(a.length, qLen);
  assert.equal(getId(a), 0xbeef);
  assert.equal(tc(a), true);
  assert.deepEqual([...a.subarray(4, 12)], [0, 1, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(a.subarray(12), q.subarray(12, qLen));
  assert.equal(relay.stats.truncated, 1);
});

Deno.test("dns relay: two clients using the same ID get their own answers (no cross-talk)", () => {
  const { transport, replies, ask } = setup();
  ask(dnsQuery(7, "a.example"), { client: CLIENT_A, clientPort: 5000 });
  ask(dnsQuery(7, "b.example"), { client: CLIENT_B, clientPort: 5000 });
  assert.equal(transport.streams.length, 1, "one pooled stream per resolver");
  const s = transport.last;
  s.ev.opened("ok");
  const [qa, qb] = s.queries;
  assert.notEqual(getId(qa), getId(qb), "unique IDs on the stream");
  s.reply(qb);
  s.reply(qa);
  assert.deepEqual(
    replies.map((r) => [r.dst, getId(r.payload), qnameOf(r.payload)]),
    [[CLIENT_B, 7, "b.example"], [CLIENT_A, 7, "a.example"]],
  );
});

Deno.test("dns relay: out-of-order answers in one chunk and split across chunks", () => {
  const { transport, replies, ask } = setup();
  const names = ["n0.example", "n1.example", "n2.example", "n3.example"];
  names.forEach((n, i) => ask(dnsQuery(100 + i, n), { clientPort: 6000 + i }));
  const s = transport.last;
  s.ev.opened("ok");
  const wire = [3, 1, 2, 0].map((i) => frame(dnsAnswer(s.queries[i], 60 + i)));
  const all = new Uint8Array(wire.reduce((n, w) => n + w.length, 0));
  wire.reduce((at, w) => (all.set(w, at), at + w.length), 0);
  s.ev.data(all.subarray(0, 1)); // half a length prefix
  s.ev.data(all.subarray(1, 70));
  s.ev.data(all.subarray(70));
  assert.deepEqual(
    replies.map((r) => [r.dport, getId(r.payload), qnameOf(r.payload)]),
    [3, 1, 2, 0].map((i) => [6000 + i, 100 + i, names[i]]),
  );
});

Deno.test("dns relay: the stream failing mid-flight → one resend on a new stream, then SERVFAIL", () => {
  for (const fail of ["aborted", "end"] as const) {
    const { transport, replies, relay, ask } = setup();
    const q = dnsQuery(0x0a0b, "example.com");
    ask(q);
    const first = transport.last;
    first.ev.opened("ok");
    fail === "end" ? first.ev.end() : first.ev.aborted("session lost");
    assert.equal(first.closed, fail === "end", "our side closed after a remote EOF");
    assert.equal(transport.streams.length, 2, `${fail}: resent on a new stream`);
    const second = transport.last;
    assert.equal(second.wire.length, 0);
    second.ev.opened("ok");
    assert.deepEqual(second.queries[0].subarray(2), q.subarray(2));
    first.reply(first.queries[0]); // a late answer on the dead stream is ignored
    assert.equal(replies.length, 0);
    fail === "end" ? second.ev.end() : second.ev.aborted("session lost");
    assert.equal(transport.streams.length, 2, "no third try");
    assert.equal(replies.length, 1);
    const a = replies[0].payload;
    assert.equal(getId(a), 0x0a0b);
    assert.equal(rcode(a), 2);
    assert.equal(a[2] & 0x80, 0x80, "QR");
    assert.equal(qnameOf(a), "example.com");
    assert.equal(relay.inFlight, 0);
    assert.equal(relay.stats.servfail, 1);
  }
});

Deno.test("dns relay: a resent query can still be answered by the second stream", () => {
  const { transport, replies, ask } = setup();
  ask(dnsQuery(1, "a.example"));
  transport.last.ev.opened("ok");
  transport.last.ev.aborted("session lost");
  transport.last.ev.opened("ok");
  ask(dnsQuery(2, "b.example"));
  const s = transport.last;
  assert.deepEqual(s.queries.map(qnameOf), ["a.example", "b.example"], "resend first, then new");
  s.reply(s.queries[1]);
  s.reply(s.queries[0]);
  assert.deepEqual(replies.map((r) => getId(r.payload)), [2, 1]);
});

Deno.test("dns relay: opened(refused) twice → SERVFAIL; also when open() reports inside the call", () => {
  for (const sync of [false, true]) {
    const { transport, replies, ask } = setup();
    if (sync) transport.syncResult = "refused";
    ask(dnsQuery(9, "example.com"));
    if (!sync) {
      transport.last.ev.opened("refused");
      assert.equal(transport.streams.length, 2);
      transport.last.ev.opened("refused");
    }
    assert.equal(transport.streams.length, 2, `sync=${sync}`);
    assert.equal(replies.length, 1);
    assert.equal(rcode(replies[0].payload), 2);
    assert.equal(getId(replies[0].payload), 9);
  }
});

Deno.test("dns relay: an open() that succeeds inside the call writes at once", () => {
  const { transport, replies, ask } = setup();
  transport.syncResult = "ok";
  ask(dnsQuery(3, "example.com"));
  const s = transport.last;
  assert.equal(s.wire.length, 1);
  s.reply(s.queries[0]);
  assert.equal(getId(replies[0].payload), 3);
});

Deno.test("dns relay: an end with nothing in flight is normal; the next query opens a new stream", () => {
  const { transport, replies, relay, ask } = setup();
  ask(dnsQuery(1, "a.example"));
  const s = transport.last;
  s.ev.opened("ok");
  s.reply(s.queries[0]);
  s.ev.end();
  assert.equal(s.closed, true);
  assert.equal(transport.streams.length, 1, "nothing resent");
  assert.equal(relay.stats.servfail, 0);
  ask(dnsQuery(2, "b.example"));
  assert.equal(transport.streams.length, 2);
  assert.equal(replies.length, 1);
});

Deno.test("dns relay: timeouts drop the state silently and late answers are ignored", () => {
  const { transport, replies, clock, relay, ask } = setup();
  const t0 = clock.t;
  ask(dnsQuery(1, "slow.example"));
  assert.equal(relay.tick(), t0 + 5000);
  const s = transport.last;
  s.ev.opened("ok");
  clock.t += 1000;
  ask(dnsQuery(2, "other.example"));
  s.reply(s.queries[1]); // the stream is alive: answers come back
  clock.t = t0 + 4999;
  assert.equal(relay.tick(), t0 + 5000);
  assert.equal(relay.inFlight, 1);
  clock.t = t0 + 5000;
  const next = relay.tick();
  assert.equal(relay.inFlight, 0);
  assert.equal(relay.stats.timeouts, 1);
  assert.equal(next, t0 + 1000 + 30000, "then only the idle close is left");
  assert.equal(s.aborted, false, "the stream answered since, so it stays");
  s.reply(s.queries[0]);
  assert.deepEqual(replies.map((r) => getId(r.payload)), [2], "no reply for the timed-out query");
});

Deno.test("dns relay: a timeout on a stream silent since the write retires that stream", () => {
  const { transport, clock, relay, ask } = setup();
  const t0 = clock.t;
  ask(dnsQuery(1, "a.example"));
  const s = transport.last;
  s.ev.opened("ok");
  clock.t += 3000;
  ask(dnsQuery(2, "b.example"));
  clock.t = t0 + 5000;
  relay.tick();
  assert.equal(s.aborted, true);
  assert.equal(transport.streams.length, 2, "the other query is resent on a new stream");
  assert.equal(relay.inFlight, 1);
  transport.last.ev.opened("ok");
  assert.deepEqual(transport.last.queries.map(qnameOf), ["b.example"]);
});

Deno.test("dns relay: a stream idle for 30 s is closed; one in use is not", () => {
  const { transport, clock, relay, ask } = setup();
  ask(dnsQuery(1, "a.example"));
  const s = transport.last;
  s.ev.opened("ok");
  s.reply(s.queries[0]);
  const idleAt = relay.tick();
  assert.equal(idleAt, clock.t + 30000);
  clock.t = idleAt! - 1;
  relay.tick();
  assert.equal(s.closed, false);
  clock.t = idleAt!;
  assert.equal(relay.tick(), undefined);
  assert.equal(s.closed, true);
  s.ev.end(); // the transport confirming the close changes nothing
  ask(dnsQuery(2, "b.example"));
  assert.equal(transport.streams.length, 2);
});

Deno.test("dns relay: over maxInFlight → SERVFAIL at once", () => {
  const { transport, replies, relay, ask } = setup({ maxInFlight: 2 });
  ask(dnsQuery(1, "a.example"));
  ask(dnsQuery(2, "b.example"));
  assert.equal(ask(dnsQuery(3, "c.example")), true);
  assert.equal(relay.inFlight, 2);
  assert.equal(replies.length, 1);
  assert.equal(getId(replies[0].payload), 3);
  assert.equal(rcode(replies[0].payload), 2);
  transport.last.ev.opened("ok");
  assert.equal(transport.last.queries.length, 2, "the refused one never went upstream");
});

Deno.test("dns relay: what is not a plain query is refused and never opens a stream", () => {
  const { transport, relay, ask } = setup();
  const response = dnsAnswer(dnsQuery(1, "a.example"));
  const notify = dnsQuery(1, "a.example");
  notify[2] = 0x20; // opcode 4
  assert.equal(ask(response), false);
  assert.equal(ask(notify), false);
  assert.equal(ask(new Uint8Array(11)), false);
  assert.equal(ask(dnsQuery(1, "a.example"), { client: new Uint8Array(16) }), false, "v6 bytes");
  assert.equal(relay.stats.rejected, 4);
  assert.equal(transport.streams.length, 0);
});

Deno.test("dns relay: writes wait for writable() and flush on the writable event", () => {
  const { transport, ask } = setup();
  ask(dnsQuery(1, "a.example"));
  const s = transport.last;
  s.canWrite = false;
  s.ev.opened("ok");
  ask(dnsQuery(2, "b.example"));
  assert.equal(s.wire.length, 0);
  s.canWrite = true;
  s.ev.writable();
  assert.deepEqual(s.queries.map(qnameOf), ["a.example", "b.example"]);
});

Deno.test("dns relay: one stream per resolver address, named in RFC 5952 text for IPv6", () => {
  const { transport, ask } = setup();
  const v6 = (...g: number[]) => new Uint8Array(g.flatMap((x) => u16(x)));
  const client = new Uint8Array(16);
  ask(dnsQuery(1, "a"), { resolver: new Uint8Array([10, 0, 0, 2]) });
  ask(dnsQuery(2, "a"), { resolver: new Uint8Array([169, 254, 169, 253]) });
  ask(dnsQuery(3, "a"), { family: 6, client, resolver: v6(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x253) });
  ask(dnsQuery(4, "a"), { family: 6, client, resolver: v6(0x2001, 0xdb8, 0, 0, 1, 0, 0, 1) });
  ask(dnsQuery(5, "a"), { family: 6, client, resolver: v6(0x2001, 0xdb8, 0, 1, 1, 1, 1, 1) });
  ask(dnsQuery(6, "a"), { family: 6, client, resolver: v6(0, 0, 0, 0, 0, 0, 0, 1) });
  ask(dnsQuery(7, "a"), { family: 6, client, resolver: v6(1, 0, 0, 2, 0, 0, 3, 4) });
  ask(dnsQuery(8, "a"), { family: 6, client, resolver: v6(0xabcd, 0, 0, 0, 0, 0, 0, 0) });
  ask(dnsQuery(9, "a"), { family: 6, client, resolver: v6(0, 0, 0, 0, 0, 0, 0, 0) });
  ask(dnsQuery(10, "a"), { resolver: new Uint8Array([10, 0, 0, 2]) });
  assert.deepEqual(transport.streams.map((s) => `${s.dst.family} ${s.dst.host}:${s.dst.port}`), [
    "4 10.0.0.2:53",
    "4 169.254.169.253:53",
    "6 fd00:ec2::253:53",
    "6 2001:db8::1:0:0:1:53",
    "6 2001:db8:0:1:1:1:1:1:53",
    "6 ::1:53",
    "6 1::2:0:0:3:4:53",
    "6 abcd:::53",
    "6 :::53",
  ]);
});

Deno.test("dns relay: close() closes the streams and later queries are dropped", () => {
  const { transport, replies, relay, ask } = setup();
  ask(dnsQuery(1, "a.example"));
  const s = transport.last;
  s.ev.opened("ok");
  relay.close();
  assert.equal(s.closed, true);
  assert.equal(relay.inFlight, 0);
  s.reply(s.queries[0]);
  assert.equal(ask(dnsQuery(2, "b.example")), true);
  assert.equal(transport.streams.length, 1);
  assert.equal(replies.length, 0);
  assert.equal(relay.tick(), undefined);
});

Deno.test("dns relay property: under any interleaving each query gets at most one reply, its own", () => {
  type Op =
    | { k: "ask"; client: number; id: number }
    | { k: "open"; ok: boolean }
    | { k: "answer"; pick: number }
    | { k: "fail"; end: boolean }
    | { k: "time"; ms: number };
  const op: fc.Arbitrary<Op> = fc.oneof(
    {
      arbitrary: fc.record({ k: fc.constant("ask"), client: fc.nat(3), id: fc.nat(3) }),
      weight: 4,
    },
    { arbitrary: fc.record({ k: fc.constant("open"), ok: fc.boolean() }), weight: 2 },
    { arbitrary: fc.record({ k: fc.constant("answer"), pick: fc.nat() }), weight: 5 },
    { arbitrary: fc.record({ k: fc.constant("fail"), end: fc.boolean() }), weight: 1 },
    {
      arbitrary: fc.record({ k: fc.constant("time"), ms: fc.integer({ min: 0, max: 40000 }) }),
      weight: 1,
    },
  ) as fc.Arbitrary<Op>;
  fc.assert(
    fc.property(fc.array(op, { minLength: 5, maxLength: 80, size: "medium" }), (ops) => {
      const { transport, replies, clock, relay, ask } = setup({ maxInFlight: 8 });
      // What each (client port, ID) asked, by query name; names are unique per query.
      const asked = new Map<string, string>();
      let n = 0;
      for (const o of ops) {
        const s = transport.streams.at(-1);
        if (o.k === "ask") {
          const name = `q${n++}.example`;
          asked.set(name, `${o.client}/${o.id}`);
          ask(dnsQuery(o.id, name), { clientPort: 1000 + o.client });
        } else if (o.k === "open") s?.ev.opened(o.ok ? "ok" : "refused");
        else if (o.k === "answer" && s && s.queries.length > 0) {
          s.reply(s.queries[o.pick % s.queries.length]);
        } else if (o.k === "fail") o.end ? s?.ev.end() : s?.ev.aborted("lost");
        else if (o.k === "time") {
          clock.t += o.ms;
          relay.tick();
        }
        assert.ok(relay.inFlight <= 8);
      }
      const got = new Set<string>();
      for (const r of replies) {
        const name = qnameOf(r.payload);
        assert.ok(!got.has(name), `one reply per query (${name})`);
        got.add(name);
        assert.equal(`${r.dport - 1000}/${getId(r.payload)}`, asked.get(name), "its own client");
      }
      assert.equal(
        relay.stats.answers + relay.stats.servfail + relay.stats.timeouts + relay.inFlight,
        relay.stats.queries,
        "every query is answered, failed, timed out or still in flight",
      );
    }),
    { numRuns: 500 },
  );
});

Deno.test("dns relay property: garbage from the resolver never throws", () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 80 }), { maxLength: 10 }), (chunks) => {
      const { transport, replies, relay, ask } = setup();
      for (let i = 0; i < 4; i++) ask(dnsQuery(i, `g${i}.example`));
      const s = transport.last;
      s.ev.opened("ok");
      // Frames that carry a rewritten ID but are too short to be answers, then noise.
      s.ev.data(frame(s.queries[0].subarray(0, 5)));
      for (const c of chunks) s.ev.data(c);
      assert.ok(replies.length <= 4);
      assert.equal(relay.inFlight + replies.length, 4);
      assert.equal(rcode(replies[0].payload), 2, "a 5-byte answer becomes SERVFAIL");
    }),
    { numRuns: 500 },
  );
});

// Keeps the test encoder honest: answers come out at exactly the size asked for.
Deno.test("dns relay: test encoder sanity", () => {
  for (let size = 40; size <= 3000; size++) {
    const a = dnsAnswer(dnsQuery(5, "x.example"), size);
    assert.equal(a.length, size);
    setId(a, 6);
    assert.equal(getId(a), 6);
    assert.equal(qnameOf(a), "x.example");
  }
});
