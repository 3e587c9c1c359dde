/**
 * macOS smoke test for a maintainer with a Mac (the darwin code is otherwise only tested against a
 * fake libc on Linux). Runs the real libSystem path end to end and prints PASS/FAIL per step:
 *
 *   sudo deno run --allow-all scripts/macos_smoke.ts
 *
 * Creates a utun, assigns 100.64.250.1 → .2, sets MTU and up, adds 198.18.250.0/24 (a benchmark
 * range nobody routes) and reads it back, sends a UDP datagram into it and reads the packet from
 * the utun, writes and removes /etc/resolver/ssm-proxy-smoke.test, then tears everything down.
 * Prints the raw RTM_GET reply so it can be frozen as a test fixture (os-ffi §11 item 2).
 * Then IPv6: a second utun with fd7a:5353:5d8b::2/128 (SIOCAIFADDR_IN6), checked with ifconfig,
 * 2001:db8:ffff::/48 (documentation space) routed to it and checked with `route -n get -inet6`.
 * What the spec leaves unverified on a Mac is printed as INFO lines (facts), never a FAIL.
 * Exits non-zero on any FAIL.
 */
import dgram from "node:dgram";
import { getFlags, getMtu } from "../ffi/darwin/ifconfig.ts";
import { encodeRouteGet } from "../ffi/darwin/route_msg.ts";
import { darwinSys, nameToIndex } from "../ffi/darwin/sys.ts";
import { IFF_UP } from "../ffi/darwin/constants.ts";
import { formatIP, parseCidr } from "../ffi/struct.ts";
import { darwinPlatform } from "../src/net/darwin.ts";
import { RouteExistsError, type Tun } from "../src/net/types.ts";
import { SmokeSteps } from "./smoke_steps.ts";

const ROUTE = "198.18.250.0/24";
const PROBE = "198.18.250.7";
const DOMAIN = "ssm-proxy-smoke.test";
const ADDRESS6 = "fd7a:5353:5d8b::2";
const ROUTE6 = "2001:db8:ffff::/48";
const PROBE6 = "2001:db8:ffff::1";
const smoke = new SmokeSteps();
const step = smoke.step;

/** A fact for the record (INFO): what the spec could not verify without a Mac; never a FAIL. */
async function fact(name: string, f: () => unknown | Promise<unknown>): Promise<void> {
  try {
    console.log(`INFO ${name}: ${await f()}`);
  } catch (e) {
    console.log(`INFO ${name}: threw ${e instanceof Error ? e.message : e}`);
  }
}

function ensure(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(what);
}

if (Deno.build.os !== "darwin") {
  console.log("FAIL this smoke test runs on macOS only");
  Deno.exit(1);
}
if (Deno.uid() !== 0) {
  console.log("FAIL run as root: sudo deno run --allow-all scripts/macos_smoke.ts");
  Deno.exit(1);
}

console.log(`ssm-proxy macOS smoke test (${Deno.build.target}, deno ${Deno.version.deno})`);
const sys = darwinSys();
const net = darwinPlatform();
let tun: Tun | undefined;

// The 9-argument ioctl must reach the kernel intact on Apple silicon (os-ffi §2.3, §11 item 1).
await step("ioctl argument passing: SIOCGIFMTU lo0 = 16384", () => {
  const mtu = getMtu(sys, "lo0");
  ensure(mtu === 16384, `got ${mtu}`);
});

const created = await step("create utun, address 100.64.250.1 → .2, MTU 1400, up", async () => {
  tun = await net.openTun({
    mtu: 1400,
    address: "100.64.250.1",
    peer: "100.64.250.2",
    prefixLength: 32,
  });
  return `${tun.name} (index ${tun.index})`;
});

if (created && tun) {
  const t = tun;
  await step("read back MTU and IFF_UP", () => {
    const mtu = getMtu(sys, t.name), flags = getFlags(sys, t.name);
    ensure(mtu === 1400, `MTU ${mtu}`);
    ensure(flags & IFF_UP, `flags 0x${flags.toString(16)}`);
    return `mtu ${mtu}, flags 0x${flags.toString(16)}`;
  });
  await step(`route add ${ROUTE} -interface ${t.name}`, () => net.routes.add(ROUTE, t.name));
  await step(`route get ${PROBE} → ${t.name}`, async () => {
    const r = await net.routes.get(PROBE);
    ensure(r?.interface === t.name, `got ${JSON.stringify(r)}`);
    ensure(r.source === "100.64.250.1", `source ${r.source}`);
    return JSON.stringify(r);
  });
  await step("raw RTM_GET reply (fixture for tests)", () => rawGet(parseCidr(ROUTE)));
  await step("adding the same route again → RouteExistsError", async () => {
    try {
      await net.routes.add(ROUTE, t.name);
    } catch (e) {
      if (e instanceof RouteExistsError) return e.message;
      throw e;
    }
    throw new Error("no error");
  });
  await step(
    "a UDP datagram to the route arrives on the utun (4-byte AF header stripped)",
    () => udpThroughTun(t),
  );
  let state: Awaited<ReturnType<typeof net.dns.apply>> | undefined;
  await step(`write /etc/resolver/${DOMAIN}`, async () => {
    state = await net.dns.apply({ ifname: t.name, server: "100.64.250.2", domains: [DOMAIN] });
    const text = await Deno.readTextFile(`/etc/resolver/${DOMAIN}`);
    ensure(text.startsWith("# Added by ssm-proxy"), "marker missing");
  });
  await step("configd picked it up (scutil --dns lists the domain)", async () => {
    for (let i = 0; i < 10; i++) {
      const out = await new Deno.Command("/usr/sbin/scutil", { args: ["--dns"] }).output();
      if (new TextDecoder().decode(out.stdout).includes(DOMAIN)) return `after ${i * 500} ms`;
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error("not listed after 5 s");
  });
  await step("remove the resolver file", async () => {
    if (state) await net.dns.revert(state);
    ensure(!(await exists(`/etc/resolver/${DOMAIN}`)), "still there");
  });
  await step(`route delete ${ROUTE}`, async () => {
    await net.routes.delete(ROUTE, t.name);
    const r = await net.routes.get(PROBE);
    ensure(r?.interface !== t.name, "still routed to the utun");
    await net.routes.delete(ROUTE, t.name); // idempotent
  });
  await step("close: the utun disappears", () => {
    t.close();
    ensure(nameToIndex(sys, t.name) === 0, `${t.name} still exists`);
  });
}

await ipv6Steps();

smoke.finish();

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Send one datagram into the route and read it back from the utun. */
async function udpThroughTun(t: Tun): Promise<string> {
  const sock = dgram.createSocket("udp4");
  const payload = new TextEncoder().encode("ssm-proxy smoke");
  await new Promise<void>((res, rej) =>
    sock.send(payload, 9, PROBE, (e: Error | null) => (e ? rej(e) : res()))
  );
  sock.close();
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline) {
    for (const p of await t.read(500)) {
      if (p[0] >> 4 !== 4 || p[9] !== 17) continue; // skip IPv6 ND/MLD chatter
      const dst = Array.from(p.subarray(16, 20)).join(".");
      const src = Array.from(p.subarray(12, 16)).join(".");
      if (dst === PROBE) return `${p.length}-byte IPv4/UDP ${src} → ${dst}`;
    }
  }
  throw new Error("no packet read from the utun within 3 s");
}

/** One RTM_GET by hand, reply printed as hex (os-ffi §11 item 2 asks for a real capture). */
function rawGet(dst: ReturnType<typeof parseCidr>): string {
  const fd = sys.socket(17, 3, 0);
  ensure(fd >= 0, "socket PF_ROUTE failed");
  try {
    const msg = encodeRouteGet(dst, 777);
    ensure(Number(sys.write(fd, msg, BigInt(msg.length))) === msg.length, "write failed");
    const buf = new Uint8Array(2048);
    for (let i = 0; i < 20; i++) {
      const n = Number(sys.read(fd, buf, 2048n)); // blocking: the reply is already queued
      if (n < 92) continue;
      const dv = new DataView(buf.buffer);
      if (buf[3] === 4 && dv.getInt32(20, true) === 777 && dv.getInt32(16, true) === sys.getpid()) {
        return "\n" + Array.from(buf.subarray(0, n), (b) => b.toString(16).padStart(2, "0"))
          .join(" ").replace(/((?:\S+ ){16})/g, "$1\n");
      }
    }
    throw new Error("no reply");
  } finally {
    sys.close(fd);
  }
}

/** Run a system tool (this script only: the client itself never does) and return its stdout. */
async function run(cmd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return text;
}

/** The interface `route -n get -inet6 ADDR` names, or undefined (no route: route exits non-zero). */
async function routeGet6Interface(address: string): Promise<string | undefined> {
  const out = await run("/sbin/route", "-n", "get", "-inet6", address).catch(() => "");
  return /interface:\s*(\S+)/.exec(out)?.[1];
}

/** IPv6 on a second utun: address (SIOCAIFADDR_IN6), ifconfig, route add, route get, cleanup. */
async function ipv6Steps(): Promise<void> {
  let t6: Tun | undefined;
  const ok = await step(
    `create utun with IPv6 ${ADDRESS6}/128 (and 100.64.251.1 → .2)`,
    async () => {
      t6 = await net.openTun({
        mtu: 1400,
        address: "100.64.251.1",
        peer: "100.64.251.2",
        address6: ADDRESS6,
        prefixLength: 32,
      });
      return `${t6.name} (index ${t6.index})`;
    },
  );
  if (!ok || !t6) return;
  const t = t6;
  try {
    await step(`ifconfig ${t.name} shows inet6 ${ADDRESS6}`, async () => {
      const out = await run("/sbin/ifconfig", t.name);
      const line = out.split("\n").find((l) =>
        new RegExp(`inet6 ${ADDRESS6}(\\s|%|$)`).test(l.trim())
      );
      ensure(line, `not listed:\n${out}`);
      return line.trim();
    });
    // NODAD was asked for: an address still "tentative" means xnu ran DAD anyway (os-ffi §6).
    await fact(
      `ifconfig ${t.name} inet6 (flags, link-local)`,
      async () => "\n" + (await run("/sbin/ifconfig", t.name, "inet6")).trimEnd(),
    );
    await step(
      `route add -inet6 ${ROUTE6} -interface ${t.name}`,
      () => net.routes.add(ROUTE6, t.name),
    );
    await step(`route -n get -inet6 ${PROBE6} names ${t.name}`, async () => {
      const via = await routeGet6Interface(PROBE6);
      ensure(via === t.name, `interface ${via ?? "(no route)"}`);
      return `interface: ${via}`;
    });
    // The RTM_GET reply's shape is unverified (os-ffi §11 item 2): our own lookup is a fact.
    await fact(
      `our RTM_GET for ${PROBE6}`,
      async () => JSON.stringify(await net.routes.get(PROBE6)),
    );
    await fact(`a UDP datagram to ${ROUTE6} read from ${t.name}`, () => udp6ThroughTun(t));
    await step(`route delete ${ROUTE6} (no error)`, () => net.routes.delete(ROUTE6, t.name));
    await fact(
      `after the delete, route -n get -inet6 ${PROBE6}`,
      async () => `interface ${(await routeGet6Interface(PROBE6)) ?? "(no route)"}`,
    );
  } finally {
    await step(`close: ${t.name} disappears`, () => {
      t.close();
      ensure(nameToIndex(sys, t.name) === 0, `${t.name} still exists`);
    });
    await fact(
      `after close, route -n get -inet6 ${PROBE6}`,
      async () => `interface ${(await routeGet6Interface(PROBE6)) ?? "(no route)"}`,
    );
  }
}

/** Send one UDP datagram over IPv6 into the route and read it back from the utun. */
async function udp6ThroughTun(t: Tun): Promise<string> {
  const probe = "2001:db8:ffff::7";
  const sock = dgram.createSocket("udp6");
  const payload = new TextEncoder().encode("ssm-proxy smoke 6");
  await new Promise<void>((res, rej) =>
    sock.send(payload, 9, probe, (e: Error | null) => (e ? rej(e) : res()))
  );
  sock.close();
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline) {
    for (const p of await t.read(500)) {
      if (p[0] >> 4 !== 6 || p[6] !== 17 || p.length < 48) continue; // ND/MLD chatter
      const dst = formatIP(p.subarray(24, 40));
      if (dst === probe) return `${p.length}-byte IPv6/UDP ${formatIP(p.subarray(8, 24))} → ${dst}`;
    }
  }
  return "no packet within 3 s";
}
