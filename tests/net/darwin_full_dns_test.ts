/**
 * Full-tunnel DNS on macOS (`domains` holds ".") through darwinPlatform, against the fake libc
 * and the fake configd/IPMonitor (macos-dns-routes §7): what is published and in which order,
 * that stop and a crash both leave configd exactly as it was, crash recovery from the recorded
 * state, and each failure as one line with nothing left behind.
 */
import assert from "node:assert/strict";
import { FakeDarwinLibc } from "../../ffi/darwin/fake_libc.ts";
import {
  FakeDarwinSC,
  GLOBAL_DNS,
  GLOBAL_IPV4,
  PHYSICAL_SERVICE,
} from "../../ffi/darwin/fake_sc.ts";
import { SC_STATUS } from "../../ffi/darwin/dynamic_store.ts";
import { UserError } from "../../src/errors.ts";
import { darwinPlatform, type DarwinPlatformOptions } from "../../src/net/darwin.ts";
import type { DnsState, TunConfig } from "../../src/net/types.ts";
import { SERVICE_ID, SERVICE_KEYS } from "../../src/dns/darwin_default.ts";

const CFG: TunConfig = {
  name: "ssmp%d",
  mtu: 1400,
  address: "100.64.0.2",
  peer: "100.64.0.1",
  prefixLength: 32,
};
const KEYS = [SERVICE_KEYS.ipv4, SERVICE_KEYS.ipv6, SERVICE_KEYS.dns];

function setup(o: DarwinPlatformOptions["fullTunnelDns"] = {}) {
  const sys = new FakeDarwinLibc();
  const sc = new FakeDarwinSC((n) => sys.ifs.has(n));
  const dir = Deno.makeTempDirSync();
  const opts: DarwinPlatformOptions = {
    sys,
    sc,
    resolverDir: dir,
    routeTimeoutMs: 200,
    fullTunnelDns: { convergeMs: 200, pollMs: 10, watchMs: 0, ...o },
  };
  return { sys, sc, dir, opts, net: darwinPlatform(opts) };
}

/** Everything configd holds, sorted: "restored exactly" is equality of two of these. */
const snapshot = (sc: FakeDarwinSC) =>
  structuredClone([...sc.store].map(([k, v]) => [k, v.value]).sort());

const scNames = (sc: FakeDarwinSC) =>
  sc.calls.filter((c) => c.name.startsWith("SC")).map((c) => c.key ? `${c.name} ${c.key}` : c.name);

async function rejects(p: Promise<unknown>, re: RegExp): Promise<UserError> {
  const e = await p.then(() => undefined, (e) => e);
  assert.ok(e instanceof UserError, `expected a UserError, got ${e}`);
  assert.match(e.message, re);
  assert.ok(!e.message.includes("\n"), "one line");
  return e;
}

Deno.test("publish: one SetMultiple with the three dicts of §3.5, read back, then converged", async () => {
  const { sc, net } = setup();
  const before = snapshot(sc);
  const tun = await net.openTun(CFG);
  sc.calls.length = 0;
  const state = await net.dns.apply({
    ifname: tun.name,
    server: "10.0.0.2",
    domains: [".", "corp.example", "Corp.Example."],
  });
  assert.deepEqual(state, { kind: "sc-dynamic-store", items: KEYS });
  assert.deepEqual(scNames(sc), [
    "SCDynamicStoreCreateWithOptions",
    "SCDynamicStoreCopyKeyList",
    `SCDynamicStoreCopyValue ${SERVICE_KEYS.ipv4}`,
    "SCDynamicStoreSetMultiple",
    ...KEYS.map((k) => `SCDynamicStoreCopyValue ${k}`),
    `SCDynamicStoreCopyValue ${GLOBAL_IPV4}`,
    `SCDynamicStoreCopyValue ${GLOBAL_DNS}`,
  ]);
  const open = sc.calls.find((c) => c.name === "SCDynamicStoreCreateWithOptions");
  assert.deepEqual(open?.options, { UseSessionKeys: true });
  const sets = sc.calls.filter((c) => c.name === "SCDynamicStoreSetMultiple");
  assert.equal(sets.length, 1);
  assert.equal(sets[0].remove, null);
  assert.deepEqual(sets[0].set, {
    [SERVICE_KEYS.ipv4]: {
      InterfaceName: "utun5",
      Addresses: ["100.64.0.2"],
      SubnetMasks: ["255.255.255.255"],
      Router: "100.64.0.1",
      OverridePrimary: 1,
    },
    [SERVICE_KEYS.ipv6]: {
      InterfaceName: "utun5",
      Addresses: ["::1"],
      Router: "::1",
      OverridePrimary: 1,
      IsNULL: true,
    },
    [SERVICE_KEYS.dns]: {
      ServerAddresses: ["10.0.0.2"],
      ConfirmedServiceID: SERVICE_ID,
      SupplementalMatchDomains: ["corp.example"],
    },
  });
  // OverridePrimary is a CFNumber (configd would ignore other types), IsNULL a CFBoolean.
  assert.ok(sc.calls.some((c) => c.name === "CFNumberCreate" && c.type === 3 && c.value === 1));
  // IPMonitor made us primary, and our server the default resolver.
  assert.deepEqual(sc.value(GLOBAL_IPV4), {
    PrimaryInterface: "utun5",
    PrimaryService: SERVICE_ID,
    Router: "100.64.0.1",
  });
  assert.deepEqual(sc.value(GLOBAL_DNS), { ServerAddresses: ["10.0.0.2"] });
  assert.equal(sc.openSessions, 1); // kept open: ending it removes the keys

  // Stop: remove the keys, let IPMonitor re-elect, release the store last.
  sc.calls.length = 0;
  await net.dns.revert(state);
  assert.deepEqual(scNames(sc), [
    "SCDynamicStoreSetMultiple",
    `SCDynamicStoreCopyValue ${GLOBAL_IPV4}`,
  ]);
  const removal = sc.calls.find((c) => c.name === "SCDynamicStoreSetMultiple");
  assert.equal(removal?.set, null);
  assert.deepEqual(removal?.remove, KEYS);
  assert.deepEqual(sc.calls.at(-1), { name: "CFRelease", type: "opaque" });
  tun.close();
  assert.equal(sc.live, 0);
  assert.equal(sc.openSessions, 0);
  assert.deepEqual(snapshot(sc), before);
  await net.dns.revert(state); // again: nothing to do, no error
  assert.deepEqual(snapshot(sc), before);
});

Deno.test("without '.': the /etc/resolver files path, and configd is never touched", async () => {
  const { sc, net, dir } = setup();
  const tun = await net.openTun(CFG);
  const state = await net.dns.apply({
    ifname: tun.name,
    server: "10.0.0.2",
    domains: ["corp.example"],
  });
  assert.deepEqual(state, { kind: "resolver-files", items: [`${dir}/corp.example`] });
  await net.dns.revert(state);
  assert.deepEqual(sc.calls, []);
  tun.close();
});

Deno.test("crash: configd drops the session's keys; the next run's revert finds nothing", async () => {
  const { sys, sc, net, opts } = setup();
  const before = snapshot(sc);
  const tun = await net.openTun(CFG);
  const state = await net.dns.apply({ ifname: tun.name, server: "10.0.0.2", domains: ["."] });
  assert.equal((sc.value(GLOBAL_IPV4) as Record<string, string>).PrimaryService, SERVICE_ID);
  // kill -9: no revert, no CFRelease; the kernel destroys the utun, configd the session.
  sc.crash();
  tun.close(); // what the kernel does with a dead process's descriptors
  assert.ok(!sys.ifs.has(tun.name));
  assert.deepEqual(snapshot(sc), before);
  // The next run (a new platform: no session) reverts from the state file.
  sc.calls.length = 0;
  await darwinPlatform(opts).dns.revert(state);
  assert.deepEqual(snapshot(sc), before);
  assert.equal(sc.calls.filter((c) => c.name === "SCDynamicStoreSetMultiple").length, 0);
  assert.equal(sc.live, 0);
  assert.equal(sc.openSessions, 0);
});

Deno.test("keys that outlived their tunnel (plain keys of an old build) are removed from the state", async () => {
  const { sc, opts } = setup();
  const before = snapshot(sc);
  const left = {
    [SERVICE_KEYS.ipv4]: {
      InterfaceName: "utun7",
      Addresses: ["100.64.0.2"],
      Router: "100.64.0.1",
    },
    [SERVICE_KEYS.dns]: { ServerAddresses: ["10.0.0.2"], ConfirmedServiceID: SERVICE_ID },
  };
  for (const [k, v] of Object.entries(left)) sc.put(k, v); // utun7 no longer exists
  const state: DnsState = { kind: "sc-dynamic-store", items: KEYS };
  await darwinPlatform(opts).dns.revert(state);
  assert.deepEqual(snapshot(sc), before);
  assert.equal(sc.live, 0);
});

Deno.test("revert after a crash leaves our service alone while a running tunnel holds it", async () => {
  const { sys, sc, net, opts } = setup();
  const tun = await net.openTun(CFG);
  await net.dns.apply({ ifname: tun.name, server: "10.0.0.2", domains: ["."] });
  const held = snapshot(sc);
  // A dead tunnel's state recorded the same keys; its cleanup must not take them from us.
  await darwinPlatform(opts).dns.revert({ kind: "sc-dynamic-store", items: KEYS });
  assert.deepEqual(snapshot(sc), held);
  // A tampered state file names other keys: never touched.
  await darwinPlatform(opts).dns.revert({ kind: "sc-dynamic-store", items: [GLOBAL_IPV4] });
  assert.deepEqual(snapshot(sc), held);
  assert.ok(sys.ifs.has(tun.name));
});

Deno.test("apply clears keys a dead run left before publishing", async () => {
  const { sc, net } = setup();
  sc.put(SERVICE_KEYS.ipv4, { InterfaceName: "utun9", Addresses: ["1.2.3.4"], Router: "1.2.3.5" });
  sc.put(SERVICE_KEYS.dns, { ServerAddresses: ["9.9.9.9"] });
  const tun = await net.openTun(CFG);
  await net.dns.apply({ ifname: tun.name, server: "10.0.0.2", domains: ["."] });
  assert.deepEqual(
    sc.calls.filter((c) => c.name === "SCDynamicStoreRemoveValue").map((c) => c.key).sort(),
    [SERVICE_KEYS.dns, SERVICE_KEYS.ipv4],
  );
  assert.deepEqual(sc.value(GLOBAL_DNS), { ServerAddresses: ["10.0.0.2"] });
});

Deno.test("a key written by someone else between cleanup and publish: taken over once", async () => {
  const { sc, net } = setup();
  const tun = await net.openTun(CFG);
  sc.beforeSetMultiple = () => {
    sc.beforeSetMultiple = undefined;
    sc.put(SERVICE_KEYS.dns, { ServerAddresses: ["192.0.2.9"] }); // a plain key: KeyExists
  };
  await net.dns.apply({ ifname: tun.name, server: "10.0.0.2", domains: ["."] });
  assert.equal(sc.calls.filter((c) => c.name === "SCDynamicStoreSetMultiple").length, 2);
  assert.deepEqual(sc.value(SERVICE_KEYS.dns), {
    ServerAddresses: ["10.0.0.2"],
    ConfirmedServiceID: SERVICE_ID,
  });
  assert.equal(sc.store.get(SERVICE_KEYS.dns)?.owner, 1); // now a session key of ours
});

Deno.test("another ssm-proxy full tunnel is up: refused, its keys untouched", async () => {
  const { sys, sc, net } = setup();
  sys.ifs.set("utun3", { index: 22, flags: 0x8051, mtu: 1500, addrs: [] });
  sc.interfacesChanged();
  const other = { InterfaceName: "utun3", Addresses: ["100.64.9.2"], Router: "100.64.9.1" };
  sc.put(SERVICE_KEYS.ipv4, { ...other, OverridePrimary: 1 });
  const held = snapshot(sc);
  const tun = await net.openTun(CFG);
  await rejects(
    net.dns.apply({ ifname: tun.name, server: "10.0.0.2", domains: ["."] }),
    /^another ssm-proxy full tunnel is up on utun3: stop it first/,
  );
  assert.deepEqual(snapshot(sc), held);
  assert.equal(sc.openSessions, 0);
  assert.equal(sc.live, 0);
});

Deno.test("not root: 'run with sudo', nothing left behind", async () => {
  const { sc, net } = setup();
  const before = snapshot(sc);
  sc.root = false;
  const tun = await net.openTun(CFG);
  await rejects(
    net.dns.apply({ ifname: tun.name, server: "10.0.0.2", domains: ["."] }),
    /^changing the system DNS needs root: run with sudo$/,
  );
  assert.deepEqual(snapshot(sc), before);
  assert.equal(sc.openSessions, 0);
  assert.equal(sc.live, 0);
});

Deno.test("another VPN stays primary: a timeout names it, and our keys are withdrawn", async () => {
  const { sys, sc, net } = setup();
  sys.ifs.set("utun2", { index: 21, flags: 0x8051, mtu: 1500, addrs: [] });
  sc.put("State:/Network/Service/OTHERVPN/IPv4", {
    InterfaceName: "utun2",
    Addresses: ["10.8.0.2"],
    Router: "10.8.0.1",
    OverridePrimary: 1,
  });
  const before = snapshot(sc);
  const tun = await net.openTun(CFG);
  const t0 = Date.now();
  await rejects(
    net.dns.apply({ ifname: tun.name, server: "10.0.0.2", domains: ["."] }),
    /within 0\.2 s: utun2 \(service OTHERVPN\) stays primary \(another VPN\?\); stop it and retry$/,
  );
  assert.ok(Date.now() - t0 >= 200);
  assert.deepEqual(snapshot(sc), before);
  assert.equal(sc.openSessions, 0);
  assert.equal(sc.live, 0);
});

Deno.test("requireDefault off: published and reported as not converged (the smoke test's mode)", async () => {
  const { sc, net } = setup({ requireDefault: false, convergeMs: 30 });
  sc.ignoreOverridePrimary = true; // §9.1 wrong on this Mac
  const tun = await net.openTun(CFG);
  const state = await net.dns.apply({ ifname: tun.name, server: "10.0.0.2", domains: ["."] });
  assert.equal(state.kind, "sc-dynamic-store");
  assert.equal((sc.value(GLOBAL_IPV4) as Record<string, string>).PrimaryService, PHYSICAL_SERVICE);
  assert.ok(sc.value(SERVICE_KEYS.dns));
  await net.dns.revert(state);
  assert.equal(sc.value(SERVICE_KEYS.dns), undefined);
});

Deno.test("configd restarts: the watchdog re-publishes within one tick", async () => {
  const { sc, net } = setup({ watchMs: 20 });
  const tun = await net.openTun(CFG);
  const state = await net.dns.apply({ ifname: tun.name, server: "10.0.0.2", domains: ["."] });
  const published = KEYS.map((k) => sc.value(k));
  sc.restartConfigd();
  assert.equal(sc.value(SERVICE_KEYS.ipv4), undefined);
  assert.equal((sc.value(GLOBAL_IPV4) as Record<string, string>).PrimaryService, PHYSICAL_SERVICE);
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(KEYS.map((k) => sc.value(k)), published);
  assert.equal((sc.value(GLOBAL_IPV4) as Record<string, string>).PrimaryService, SERVICE_ID);
  await net.dns.revert(state); // also stops the watchdog (the test's sanitizer checks timers)
});

Deno.test("configd not answering, and inputs configd would drop, are one line each", async () => {
  const { sc, net } = setup();
  const tun = await net.openTun(CFG);
  sc.fail("SCDynamicStoreCreateWithOptions", SC_STATUS.NoStoreServer);
  await rejects(
    net.dns.apply({ ifname: tun.name, server: "10.0.0.2", domains: ["."] }),
    /^configd \(the macOS network configuration daemon\) is not answering: try again/,
  );
  await rejects(
    net.dns.apply({ ifname: tun.name, server: "fd00::2", domains: ["."] }),
    /needs an IPv4 resolver, not fd00::2/,
  );
  await rejects(
    net.dns.apply({ ifname: tun.name, server: "10.0.0.2", domains: [".", "bad domain"] }),
    /is not a domain name/,
  );
  assert.equal(sc.openSessions, 0);
  assert.equal(sc.live, 0);
});

Deno.test({
  name: "on Linux without a fake, the frameworks cannot load: one line",
  ignore: Deno.build.os === "darwin",
  async fn() {
    const sys = new FakeDarwinLibc();
    const net = darwinPlatform({ sys });
    const tun = await net.openTun(CFG);
    await rejects(
      net.dns.apply({ ifname: tun.name, server: "10.0.0.2", domains: ["."] }),
      /^cannot load macOS SystemConfiguration through FFI \(darwinSC\(\) called on linux\)/,
    );
    tun.close();
  },
});

Deno.test("the full tunnel's pinned endpoints are published as ExcludedRoutes", async () => {
  const { sc, net } = setup();
  const tun = await net.openTun(CFG);
  sc.calls.length = 0;
  const state = await net.dns.apply({
    ifname: tun.name,
    server: "10.0.0.2",
    domains: ["."],
    excluded: ["52.94.0.10/32", "203.0.113.0/24"],
  });
  const set = sc.calls.find((c) => c.name === "SCDynamicStoreSetMultiple")?.set as
    | Record<string, Record<string, unknown>>
    | undefined;
  assert.deepEqual(set?.[SERVICE_KEYS.ipv4].ExcludedRoutes, [
    { DestinationAddress: "52.94.0.10", SubnetMask: "255.255.255.255" },
    { DestinationAddress: "203.0.113.0", SubnetMask: "255.255.255.0" },
  ]);
  await net.dns.revert(state);
});
