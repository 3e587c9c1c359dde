/**
 * The split-DNS forwarder for real on loopback, between real DNS servers: one for the tunnel's
 * zones, one (or more) standing for the machine's previous nameservers. Every port is picked by
 * the kernel, so nothing here needs root or port 53.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { DnsForwarder, type ForwarderOptions } from "../../src/dns/forwarder.ts";
import { frame } from "../../src/netstack/dns_framing.ts";
import {
  BIG_ADDRESSES,
  decode,
  dnsServer,
  query,
  tcpAsk,
  type TestDnsServer,
  udpAsk,
  udpSend,
  withEdns,
} from "./support.ts";

const ZONE_HOST = "127.0.0.2";
const OTHER_HOST = "127.0.0.3";
const FWD_HOST = "127.0.0.4";

/** A port with nothing behind it on `host` (UDP and TCP): a dead server. */
function deadPort(host: string): number {
  const l = Deno.listen({ hostname: host, port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

interface World {
  zone: TestDnsServer;
  other: TestDnsServer;
  fwd: DnsForwarder;
}

async function withWorld(
  over: Partial<ForwarderOptions> & { otherFirst?: { host: string; port: number }[] },
  fn: (w: World) => Promise<void>,
  serverOpts: { zoneSilent?: boolean } = {},
): Promise<void> {
  const zone = await dnsServer(ZONE_HOST, {
    "db.corp.example": "10.1.0.5",
    "corp.example": "10.1.0.1",
  }, { silent: serverOpts.zoneSilent });
  const other = await dnsServer(OTHER_HOST, {
    "www.example.com": "93.184.0.1",
    "notcorp.example": "93.184.0.2",
  }, { big: ["big.example.com"], truncateUdp: true });
  let fwd: DnsForwarder | undefined;
  try {
    fwd = await DnsForwarder.start({
      address: FWD_HOST,
      port: 0,
      zones: ["Corp.Example."],
      zoneServers: [{ host: ZONE_HOST, port: zone.port }],
      upstreams: [...(over.otherFirst ?? []), { host: OTHER_HOST, port: other.port }],
      timeoutMs: 300,
      ...over,
    });
    await fn({ zone, other, fwd });
  } finally {
    await fwd?.close();
    await zone.close();
    await other.close();
  }
}

const addr = (a: Uint8Array | undefined) => a && decode(a).answers.map((x) => x.address);
const rcode = (a: Uint8Array | undefined) => a && decode(a).rcode;

Deno.test("forwarder: zone names go to the tunnel's resolver, the rest to the previous ones", async () => {
  await withWorld({}, async ({ zone, other, fwd }) => {
    const ask = (id: number, name: string) => udpAsk(FWD_HOST, fwd.port, query(id, name));
    assert.deepEqual(addr(await ask(1, "db.corp.example")), ["10.1.0.5"]);
    assert.deepEqual(addr(await ask(2, "CORP.example")), ["10.1.0.1"]); // the zone apex, any case
    assert.deepEqual(addr(await ask(3, "www.example.com")), ["93.184.0.1"]);
    // A name that merely ends with the zone's text is not in it.
    assert.deepEqual(addr(await ask(4, "notcorp.example")), ["93.184.0.2"]);
    assert.equal(rcode(await ask(5, "nope.corp.example")), 3); // the zone's NXDOMAIN, relayed
    assert.deepEqual(zone.seen.udp, ["db.corp.example", "corp.example", "nope.corp.example"]);
    assert.deepEqual(other.seen.udp, ["www.example.com", "notcorp.example"]);
    assert.deepEqual(fwd.stats, { queries: 5, zone: 3, other: 2, dropped: 0, failed: 0 });
  });
});

Deno.test("forwarder: the answer is relayed byte for byte, the client's id kept", async () => {
  await withWorld({}, async ({ fwd, other }) => {
    const q = query(0xbeef, "www.example.com");
    const viaFwd = await udpAsk(FWD_HOST, fwd.port, q);
    const direct = await udpAsk(OTHER_HOST, other.port, q);
    assert.ok(viaFwd && direct);
    assert.deepEqual(viaFwd, direct);
    assert.equal((viaFwd[0] << 8) | viaFwd[1], 0xbeef);
  });
});

Deno.test("forwarder: TCP queries go over TCP, pipelined on one connection", async () => {
  await withWorld({}, async ({ zone, other, fwd }) => {
    const got = await tcpAsk(FWD_HOST, fwd.port, [
      query(10, "db.corp.example"),
      query(11, "www.example.com"),
    ]);
    const byId = new Map(got.map((a) => [decode(a).id, decode(a)]));
    assert.deepEqual(byId.get(10)?.answers.map((a) => a.address), ["10.1.0.5"]);
    assert.deepEqual(byId.get(11)?.answers.map((a) => a.address), ["93.184.0.1"]);
    assert.deepEqual([zone.seen.tcp, other.seen.tcp], [["db.corp.example"], ["www.example.com"]]);
    assert.deepEqual([zone.seen.udp, other.seen.udp], [[], []]);
  });
});

Deno.test("forwarder: a truncated answer is fetched over TCP, or the client is sent to TCP", async () => {
  await withWorld({}, async ({ other, fwd }) => {
    // The client accepts 4096 bytes over UDP: the forwarder fetches the whole answer over TCP.
    const whole = await udpAsk(FWD_HOST, fwd.port, withEdns(query(20, "big.example.com"), 4096));
    assert.ok(whole && whole.length > 512);
    assert.equal(whole[2] & 0x02, 0);
    assert.deepEqual(addr(whole), BIG_ADDRESSES);
    // A classic 512-byte client gets TC, asks over TCP, and gets it all.
    const tc = await udpAsk(FWD_HOST, fwd.port, query(21, "big.example.com"));
    assert.ok(tc && tc[2] & 0x02, "TC set");
    assert.deepEqual(addr(tc), []);
    const [overTcp] = await tcpAsk(FWD_HOST, fwd.port, [query(21, "big.example.com")]);
    assert.deepEqual(addr(overTcp), BIG_ADDRESSES);
    assert.equal(other.seen.udp.length, 2);
    assert.equal(other.seen.tcp.length, 3); // one per UDP truncation, one for the TCP query
  });
});

Deno.test("forwarder: a dead upstream is skipped for the next, which is then tried first", async () => {
  const dead = { host: "127.0.0.5", port: deadPort("127.0.0.5") };
  await withWorld({ otherFirst: [dead] }, async ({ fwd, other }) => {
    assert.deepEqual(fwd.upstreams, [`127.0.0.5:${dead.port}`, `${OTHER_HOST}:${other.port}`]);
    let t = Date.now();
    assert.deepEqual(addr(await udpAsk(FWD_HOST, fwd.port, query(30, "www.example.com"))), [
      "93.184.0.1",
    ]);
    assert.ok(Date.now() - t >= 280, "waited for the dead one's deadline first");
    t = Date.now();
    assert.deepEqual(addr(await udpAsk(FWD_HOST, fwd.port, query(31, "www.example.com"))), [
      "93.184.0.1",
    ]);
    assert.ok(Date.now() - t < 250, "the server that answered is asked first now");
    // TCP to a dead port is refused at once and the next is tried.
    const [a] = await tcpAsk(FWD_HOST, fwd.port, [query(32, "notcorp.example")]);
    assert.deepEqual(addr(a), ["93.184.0.2"]);
  });
});

Deno.test("forwarder: when nobody answers the client gets SERVFAIL, and private names never leak", async () => {
  await withWorld({}, async ({ fwd, other }) => {
    const a = await udpAsk(FWD_HOST, fwd.port, query(40, "db.corp.example"));
    assert.equal(rcode(a), 2);
    assert.equal(decode(a!).id, 40);
    assert.deepEqual(other.seen.udp, []); // not asked about a tunnel name
    assert.equal(fwd.stats.failed, 1);
  }, { zoneSilent: true });
});

Deno.test("forwarder: never forwards to itself", async () => {
  const port = deadPort(FWD_HOST);
  const fwd = await DnsForwarder.start({
    address: FWD_HOST,
    port,
    zones: ["corp.example"],
    zoneServers: [{ host: FWD_HOST, port }],
    upstreams: [{ host: FWD_HOST, port }],
    timeoutMs: 300,
  });
  try {
    assert.deepEqual(fwd.upstreams, []);
    assert.equal(rcode(await udpAsk(FWD_HOST, port, query(1, "www.example.com"))), 2);
    assert.equal(rcode(await udpAsk(FWD_HOST, port, query(2, "a.corp.example"))), 2);
    assert.equal(fwd.stats.queries, 2);
  } finally {
    await fwd.close();
  }
});

Deno.test("forwarder: garbage is dropped without disturbing real queries", async () => {
  await withWorld({}, async ({ fwd, other }) => {
    const valid = query(50, "www.example.com");
    const response = valid.slice();
    response[2] |= 0x80; // QR: an answer sent to us must not be forwarded (loops)
    const twoQuestions = valid.slice();
    twoQuestions[5] = 2;
    const compressed = new Uint8Array([...valid.subarray(0, 12), 0xc0, 0x0c, 0, 1, 0, 1]);
    const fixed = [new Uint8Array(0), new Uint8Array(5), response, twoQuestions, compressed];
    await udpSend(FWD_HOST, fwd.port, fixed);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(fwd.stats.dropped, fixed.length);
    assert.deepEqual(other.seen.udp, []);
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 600 }), async (junk) => {
        await udpSend(FWD_HOST, fwd.port, [junk]);
      }),
      { numRuns: 200 },
    );
    assert.deepEqual(addr(await udpAsk(FWD_HOST, fwd.port, valid)), ["93.184.0.1"]);
    // Over TCP: garbage frames first, then a query on the same connection still gets its answer.
    const [a] = await tcpAsk(FWD_HOST, fwd.port, [query(51, "www.example.com")], {
      before: new Uint8Array([...frame(new Uint8Array(3)), ...frame(response)]),
    });
    assert.deepEqual(addr(a), ["93.184.0.1"]);
    assert.ok(fwd.stats.dropped >= fixed.length + 2);
  });
});

Deno.test("forwarder: queries in flight and TCP connections are capped", async () => {
  await withWorld({ maxInflight: 2, maxTcpConnections: 1, timeoutMs: 500 }, async ({ fwd }) => {
    // The zone server stays silent, so zone queries hold their slot for the deadline.
    const held = [1, 2].map((i) => udpAsk(FWD_HOST, fwd.port, query(i, "db.corp.example"), 2000));
    await new Promise((r) => setTimeout(r, 50));
    const over = await udpAsk(FWD_HOST, fwd.port, query(3, "www.example.com"), 300);
    assert.equal(over, undefined, "dropped while two are in flight");
    assert.deepEqual((await Promise.all(held)).map(rcode), [2, 2]);
    assert.deepEqual(addr(await udpAsk(FWD_HOST, fwd.port, query(4, "www.example.com"))), [
      "93.184.0.1",
    ]);
    // One TCP connection at a time: the second is closed without an answer.
    const first = await Deno.connect({ hostname: FWD_HOST, port: fwd.port });
    try {
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(await tcpAsk(FWD_HOST, fwd.port, [query(5, "www.example.com")]), []);
    } finally {
      first.close();
    }
    await new Promise((r) => setTimeout(r, 50));
    assert.equal((await tcpAsk(FWD_HOST, fwd.port, [query(6, "www.example.com")])).length, 1);
  }, { zoneSilent: true });
});

Deno.test("forwarder: close releases both ports", async () => {
  await withWorld({}, async ({ fwd }) => {
    await fwd.close();
    const l = Deno.listen({ hostname: FWD_HOST, port: fwd.port });
    l.close();
    const again = await DnsForwarder.start({
      address: FWD_HOST,
      port: fwd.port,
      zones: [],
      zoneServers: [],
      upstreams: [],
    });
    await again.close();
  });
});

Deno.test("forwarder: a bind failure is an error, not a half-started forwarder", async () => {
  const l = Deno.listen({ hostname: FWD_HOST, port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  const start = () =>
    DnsForwarder.start({ address: FWD_HOST, port, zones: [], zoneServers: [], upstreams: [] });
  try {
    await assert.rejects(start(), Deno.errors.AddrInUse);
  } finally {
    l.close();
  }
  // The UDP port it had bound before TCP failed was released: the same port works now.
  await (await start()).close();
});
