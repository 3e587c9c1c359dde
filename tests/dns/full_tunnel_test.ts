/**
 * Full-tunnel DNS without systemd-resolved: with the root "." in the domains, every name goes to
 * the VPC resolver and the machine's previous nameservers are never asked, not even when the VPC
 * resolver fails. The forwarder alone on kernel-picked loopback ports (no root), the file we
 * write (pure), and through linuxPlatform() on port 53 in namespaces (scenario.ts), with the
 * original back byte for byte after stop and after kill -9.
 */
import assert from "node:assert/strict";
import { DnsForwarder } from "../../src/dns/forwarder.ts";
import { recoverResolvConf } from "../../src/dns/restore.ts";
import {
  decodeEmbedded,
  FORWARDER_ADDRESS,
  ownerPid,
  parseResolvConf,
  renderResolvConf,
} from "../../src/dns/resolv_conf.ts";
import { ALL_DOMAINS, coversAll, domainName, normalizeDomain } from "../../src/net/domain.ts";
import type { DnsState } from "../../src/net/types.ts";
import {
  assertPort53Free,
  bytes,
  dir,
  enc,
  ORIGINAL,
  platform,
  runScenario,
  scenarioTests,
  text,
} from "./scenario.ts";
import { decode, dnsServer, query, tcpAsk, type TestDnsServer, udpAsk } from "./support.ts";

const FULL = { ifname: "lo", server: "127.0.0.2", domains: [ALL_DOMAINS] };
/** Names the previous nameserver knows too, with other answers: who answered shows. */
const VPC_RECORDS = { "www.example.com": "10.1.0.80", "db.corp.example": "10.1.0.5" };
const ORIGINAL_RECORDS = { "www.example.com": "93.184.0.1", "db.corp.example": "192.0.2.5" };

const addr = (a: Uint8Array | undefined) => a && decode(a).answers.map((x) => x.address);
const rcode = (a: Uint8Array | undefined) => a && decode(a).rcode;

Deno.test("domains: the root stands for every name, and only the root does", () => {
  assert.equal(ALL_DOMAINS, ".");
  assert.ok(coversAll([ALL_DOMAINS]));
  assert.ok(coversAll(["corp.example", ALL_DOMAINS]));
  assert.ok(!coversAll(["corp.example"]));
  assert.ok(!coversAll([]));
  // Why it is passed through as it is: the domain rules would make it "" or refuse it.
  assert.equal(normalizeDomain(ALL_DOMAINS), "");
  assert.throws(() => domainName(ALL_DOMAINS), /not a domain name/);
});

// ---- the forwarder alone --------------------------------------------------------------------

async function withFull(
  fn: (w: { vpc: TestDnsServer; original: TestDnsServer; fwd: DnsForwarder }) => Promise<void>,
  vpcPort?: number,
): Promise<void> {
  const vpc = await dnsServer("127.0.0.2", VPC_RECORDS);
  const original = await dnsServer("127.0.0.3", ORIGINAL_RECORDS);
  let fwd: DnsForwarder | undefined;
  try {
    fwd = await DnsForwarder.start({
      address: "127.0.0.4",
      port: 0,
      zones: [ALL_DOMAINS],
      zoneServers: [{ host: "127.0.0.2", port: vpcPort ?? vpc.port }],
      // Given on purpose: the root zone alone must keep every name away from them.
      upstreams: [{ host: "127.0.0.3", port: original.port }],
      timeoutMs: 300,
    });
    await fn({ vpc, original, fwd });
  } finally {
    await fwd?.close();
    await vpc.close();
    await original.close();
  }
}

Deno.test("full tunnel forwarder: any name is answered by the VPC resolver, never the original", async () => {
  await withFull(async ({ vpc, original, fwd }) => {
    const ask = (id: number, name: string) => udpAsk("127.0.0.4", fwd.port, query(id, name));
    assert.deepEqual(addr(await ask(1, "www.example.com")), ["10.1.0.80"]);
    assert.deepEqual(addr(await ask(2, "DB.Corp.Example")), ["10.1.0.5"]);
    // Names the VPC resolver does not know: its NXDOMAIN, with no second opinion.
    assert.equal(rcode(await ask(3, "nope.example.org")), 3);
    assert.equal(rcode(await ask(4, "printer")), 3); // single label
    const [t] = await tcpAsk("127.0.0.4", fwd.port, [query(5, "www.example.com")]);
    assert.deepEqual(addr(t), ["10.1.0.80"]);
    assert.deepEqual(vpc.seen.udp, [
      "www.example.com",
      "db.corp.example",
      "nope.example.org",
      "printer",
    ]);
    assert.deepEqual(vpc.seen.tcp, ["www.example.com"]);
    assert.deepEqual(original.seen, { udp: [], tcp: [] });
    assert.deepEqual(fwd.stats, { queries: 5, zone: 5, other: 0, dropped: 0, failed: 0 });
  });
});

Deno.test("full tunnel forwarder: a dead VPC resolver gives SERVFAIL, no fallback", async () => {
  const l = Deno.listen({ hostname: "127.0.0.2", port: 0 });
  const dead = (l.addr as Deno.NetAddr).port;
  l.close();
  await withFull(async ({ original, fwd }) => {
    assert.equal(rcode(await udpAsk("127.0.0.4", fwd.port, query(1, "www.example.com"))), 2);
    const [t] = await tcpAsk("127.0.0.4", fwd.port, [query(2, "www.example.com")]);
    assert.equal(rcode(t), 2);
    assert.deepEqual(original.seen, { udp: [], tcp: [] });
    assert.equal(fwd.stats.failed, 2);
  }, dead);
});

// ---- the file we write ----------------------------------------------------------------------

Deno.test("resolv.conf, full tunnel: says every name goes through, no search line of ours", () => {
  const previous = parseResolvConf(ORIGINAL);
  const original = { kind: "file" as const, bytes: enc(ORIGINAL), mode: 0o644, uid: 0, gid: 0 };
  const out = renderResolvConf({
    previous,
    forwarder: FORWARDER_ADDRESS,
    domains: [ALL_DOMAINS],
    server: "10.99.0.2",
    pid: 4242,
    backup: "/run/ssm-proxy/dns-backup_etc_resolv.conf",
    embedded: { original },
  });
  assert.match(
    out,
    /^# Written by ssm-proxy \(pid 4242\) for full-tunnel DNS: every name goes to\n# 10\.99\.0\.2 through the tunnel; the nameservers this file had before are not used\.\n/,
  );
  assert.doesNotMatch(out, /names in \./);
  assert.match(out, /\n# previous: nameserver 127\.0\.0\.3\n/);
  // The original's own search and options lines, untouched; nothing names the root.
  const back = parseResolvConf(out);
  assert.deepEqual(back, {
    nameservers: [FORWARDER_ADDRESS],
    kept: ["search corp.example", "options edns0 ndots:2"],
  });
  assert.ok(!back.kept.some((l) => /^(search|domain)\s.*(^|\s)\.(\s|$)/.test(l)));
  assert.equal(ownerPid(out), 4242);
  assert.deepEqual(decodeEmbedded(out), { original });
  // Split DNS keeps its own header.
  const split = renderResolvConf({
    previous,
    forwarder: FORWARDER_ADDRESS,
    domains: ["corp.example"],
    server: "10.99.0.2",
    pid: 1,
    backup: "/b",
    embedded: { original },
  });
  assert.match(split, /for split DNS: names in corp\.example go to/);
});

// ---- through linuxPlatform, in namespaces (port 53, the forwarder's real address) -----------

async function withPort53(fn: (vpc: TestDnsServer, original: TestDnsServer) => Promise<void>) {
  const vpc = await dnsServer("127.0.0.2", VPC_RECORDS, {}, 53);
  const original = await dnsServer("127.0.0.3", ORIGINAL_RECORDS, {}, 53);
  try {
    await fn(vpc, original);
  } finally {
    await vpc.close().catch(() => {}); // a test may have closed it (the tunnel down)
    await original.close();
  }
}

async function roundtrip(): Promise<void> {
  const path = `${dir}/resolv.conf`;
  Deno.writeFileSync(path, enc(ORIGINAL), { mode: 0o640 });
  Deno.chmodSync(path, 0o640);
  await withPort53(async (vpc, original) => {
    const state = await platform().dns.apply(FULL);
    assert.equal(state.kind, "resolv-conf");
    const ours = text(path);
    assert.match(ours, /for full-tunnel DNS: every name goes to\n# 127\.0\.0\.2 through/);
    assert.match(
      ours,
      /\nsearch corp\.example\noptions edns0 ndots:2\nnameserver 127\.0\.0\.153\n$/,
    );
    const a = await udpAsk(FORWARDER_ADDRESS, 53, query(1, "www.example.com"));
    assert.deepEqual(addr(a), ["10.1.0.80"]);
    const [b] = await tcpAsk(FORWARDER_ADDRESS, 53, [query(2, "db.corp.example")]);
    assert.deepEqual(addr(b), ["10.1.0.5"]);
    assert.equal(rcode(await udpAsk(FORWARDER_ADDRESS, 53, query(3, "unknown.test"))), 3);
    // The VPC resolver gone (the tunnel down): SERVFAIL, and still nothing to the original.
    await vpc.close();
    assert.equal(rcode(await udpAsk(FORWARDER_ADDRESS, 53, query(4, "www.example.com"))), 2);
    assert.deepEqual(original.seen, { udp: [], tcp: [] }, "the original nameserver never asked");
    await platform().dns.revert(state);
    assert.deepEqual(bytes(path), enc(ORIGINAL));
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o640);
    assert.deepEqual(Deno.readDirSync(`${dir}/state`).toArray(), [], "backup removed");
    assertPort53Free();
  });
  console.log("full-roundtrip ok");
}

/** Another process applies the full tunnel and is killed with SIGKILL: the state it recorded. */
async function crashedFullChild(): Promise<DnsState> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--no-check",
      new URL(import.meta.url).pathname,
      "full-apply-and-wait",
      dir,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let line = "";
  while (!line.includes("\n")) {
    const r = await reader.read();
    if (r.done) throw new Error("the child ended before applying");
    line += r.value;
  }
  reader.releaseLock();
  child.kill("SIGKILL");
  await child.status;
  await child.stdout.cancel().catch(() => {});
  return JSON.parse(line) as DnsState;
}

async function crash(): Promise<void> {
  const path = `${dir}/resolv.conf`;
  Deno.writeTextFileSync(path, ORIGINAL);
  // kill -9, then the next command reverts the recorded state.
  const state = await crashedFullChild();
  assert.match(text(path), /for full-tunnel DNS/);
  await platform().dns.revert(state);
  assert.deepEqual(bytes(path), enc(ORIGINAL));
  // kill -9 and the state dir lost (a reboot clears /run): the copy inside the file restores.
  await crashedFullChild();
  await Deno.remove(`${dir}/state`, { recursive: true });
  const r = await recoverResolvConf({ path, stateDir: `${dir}/state`, log: () => {} });
  assert.equal(r.kind, "restored");
  assert.deepEqual(bytes(path), enc(ORIGINAL));
  assertPort53Free();
  console.log("full-crash ok");
}

async function fullApplyAndWait(): Promise<void> {
  const state = await platform().dns.apply(FULL);
  console.log(JSON.stringify(state));
  await new Promise(() => {});
}

if (import.meta.main) {
  await runScenario({
    "full-roundtrip": roundtrip,
    "full-crash": crash,
    "full-apply-and-wait": fullApplyAndWait,
  });
}

scenarioTests(import.meta.url, ["full-roundtrip", "full-crash"]);
