/**
 * The full-tunnel DNS smoke test's readers of `scutil` text and its DNS answer
 * (scripts/lab/scutil_dns.ts), against samples in the formats configd prints
 * (dnsinfo_logging.h, network_state_information_logging.h, SCD.c `_SCCopyDescription`).
 */
import assert from "node:assert/strict";
import {
  dnsAnswer,
  dnsQuestion,
  parseNwiIPv4,
  parseScutilDns,
  parseScutilShow,
  resolvConfServers,
} from "../../scripts/lab/scutil_dns.ts";

const DNS_UP = `DNS configuration

resolver #1
  nameserver[0] : 100.64.251.2
  if_index : 24 (utun5)
  flags    : Request A records
  reach    : 0x00000003 (Reachable,Transient Connection)

resolver #2
  domain   : ssm-proxy-smoke.test
  nameserver[0] : 100.64.251.2
  if_index : 24 (utun5)
  flags    : Supplemental, Request A records
  reach    : 0x00000003 (Reachable,Transient Connection)
  order    : 100600

resolver #3
  domain   : local
  options  : mdns
  timeout  : 5
  flags    : Request A records, Request AAAA records
  reach    : 0x00000000 (Not Reachable)
  order    : 300000

DNS configuration (for scoped queries)

resolver #1
  search domain[0] : lan
  nameserver[0] : 192.168.1.1
  if_index : 4 (en0)
  flags    : Scoped, Request A records
  reach    : 0x00020002 (Reachable,Directly Reachable Address)
`;

Deno.test("scutil --dns: the unscoped resolvers, in order, with interface and flags", () => {
  const r = parseScutilDns(DNS_UP);
  assert.equal(r.length, 3);
  assert.deepEqual(r[0], {
    index: 1,
    searchDomains: [],
    nameservers: ["100.64.251.2"],
    ifIndex: 24,
    ifName: "utun5",
    flags: ["Request A records"],
  });
  assert.equal(r[1].domain, "ssm-proxy-smoke.test");
  assert.deepEqual(r[1].flags, ["Supplemental", "Request A records"]);
  assert.equal(r[1].order, 100600);
  assert.equal(r[2].domain, "local");
  assert.deepEqual(parseScutilDns("No DNS configuration available\n"), []);
});

Deno.test("scutil show: scalars and arrays of the top dictionary; 'No such key'", () => {
  const text = `<dictionary> {
  ConfirmedServiceID : 5353C0DE-55A1-4F11-9D00-000000000001
  ServerAddresses : <array> {
    0 : 100.64.251.2
    1 : 100.64.251.3
  }
  SupplementalMatchDomains : <array> {
    0 : ssm-proxy-smoke.test
  }
  Nested : <dictionary> {
    Inner : <array> {
      0 : x
    }
    Deep : y
  }
  Last : z
}
`;
  assert.deepEqual(parseScutilShow(text), {
    ConfirmedServiceID: "5353C0DE-55A1-4F11-9D00-000000000001",
    ServerAddresses: ["100.64.251.2", "100.64.251.3"],
    SupplementalMatchDomains: ["ssm-proxy-smoke.test"],
    Last: "z",
  });
  assert.equal(parseScutilShow("  No such key\n"), undefined);
  assert.equal(parseScutilShow(""), undefined);
});

Deno.test("scutil --nwi: IPv4 interfaces in rank order; resolv.conf nameservers", () => {
  const nwi = `Network information

IPv4 network interface information
     utun5 : flags      : 0x5 (IPv4,DNS)
           address    : 100.64.251.1
           reach      : 0x00000003 (Reachable,Transient Connection)
       en0 : flags      : 0x7 (IPv4,IPv6,DNS)
           address    : 192.168.1.23
           reach      : 0x00000002 (Reachable)

   REACH : flags 0x00000003 (Reachable,Transient Connection)

IPv6 network interface information
   No IPv6 states found

   REACH : flags 0x00000000 (Not Reachable)

Network interfaces: en0 utun5
`;
  assert.deepEqual(parseNwiIPv4(nwi), ["utun5", "en0"]);
  assert.deepEqual(parseNwiIPv4(""), []);
  assert.deepEqual(
    resolvConfServers("#\n# macOS Notice\nsearch lan\nnameserver 100.64.251.2\nnameserver ::1\n"),
    ["100.64.251.2", "::1"],
  );
});

/** A query for `name`/`type` with an EDNS OPT record, as mDNSResponder sends. */
function query(name: string, type: number): Uint8Array {
  const labels = name.split(".").flatMap((l) => [l.length, ...new TextEncoder().encode(l)]);
  const opt = [0, 0, 41, 0x05, 0xc0, 0, 0, 0, 0, 0, 0];
  return new Uint8Array([
    0xab,
    0xcd,
    0x01,
    0x00,
    0,
    1,
    0,
    0,
    0,
    0,
    0,
    1, // id, RD, 1 question, 1 additional
    ...labels,
    0,
    0,
    type,
    0,
    1,
    ...opt,
  ]);
}

Deno.test("dnsAnswer: A for our name, NODATA for its other types, REFUSED for other names", () => {
  const q = query("Probe.SSM-proxy.test", 1);
  assert.deepEqual(dnsQuestion(q), { name: "probe.ssm-proxy.test", type: 1, end: 38 });
  const a = dnsAnswer(q, "probe.ssm-proxy.test", "192.0.2.55")!;
  assert.deepEqual([...a.subarray(12, 38)], [...q.subarray(12, 38)]); // the question, as asked
  assert.deepEqual([...a.subarray(0, 12)], [0xab, 0xcd, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
  assert.deepEqual([...a.subarray(38)], [0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 192, 0, 2, 55]);
  const aaaa = dnsAnswer(query("probe.ssm-proxy.test", 28), "probe.ssm-proxy.test", "192.0.2.55")!;
  assert.equal(aaaa.length, 38);
  assert.deepEqual([...aaaa.subarray(2, 8)], [0x81, 0x80, 0, 1, 0, 0]);
  const other = dnsAnswer(query("example.com", 1), "probe.ssm-proxy.test", "192.0.2.55")!;
  assert.equal(other[3] & 0x0f, 5);
  assert.equal(dnsAnswer(a, "probe.ssm-proxy.test", "192.0.2.55"), undefined); // a reply
  assert.equal(dnsAnswer(new Uint8Array(5), "x", "192.0.2.55"), undefined);
});

Deno.test("the smoke test's responder answers a query through a Tun with a valid IPv4/UDP reply", async () => {
  const { dnsResponder } = await import("../../scripts/macos_dns_smoke.ts");
  const { buildUdp, newParsed, parse } = await import("../../src/netstack/packet.ts");
  const client = new Uint8Array([100, 64, 251, 1]), server = new Uint8Array([100, 64, 251, 2]);
  const inbox = [
    buildUdp(4, client, server, 5353, 53, query("probe.ssm-proxy.test", 1)),
    buildUdp(4, client, new Uint8Array([8, 8, 8, 8]), 5353, 53, query("x.test", 1)), // not ours
  ];
  const sent: Uint8Array[] = [];
  const tun = {
    name: "utun9",
    index: 30,
    mtu: 1400,
    read: async (ms: number) => {
      const batch = inbox.splice(0);
      if (batch.length === 0) await new Promise((r) => setTimeout(r, Math.min(ms, 5)));
      return batch;
    },
    write: (p: Uint8Array) => (sent.push(p.slice()), true),
    close: () => {},
  };
  const r = dnsResponder(tun, "100.64.251.2");
  await new Promise((res) => setTimeout(res, 30));
  await r.stop();
  assert.equal(r.queries, 1);
  assert.equal(sent.length, 1);
  const p = newParsed();
  assert.equal(parse(sent[0], p), null); // checksums valid
  assert.deepEqual([...p.src, ...p.dst, p.sport, p.dport], [
    100,
    64,
    251,
    2,
    100,
    64,
    251,
    1,
    53,
    5353,
  ]);
  assert.deepEqual([...sent[0].subarray(p.data + p.dataLen - 4, p.data + p.dataLen)], [
    192,
    0,
    2,
    55,
  ]);
});
