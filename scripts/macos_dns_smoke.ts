/**
 * macOS full-tunnel DNS smoke test (macos-dns-routes §4, §8), for a Mac or a GitHub runner:
 *
 *   sudo deno run --allow-all scripts/macos_dns_smoke.ts
 *
 * Opens a utun (100.64.251.1 → .2) and answers DNS on it itself (probe.ssm-proxy.test A
 * 192.0.2.55, REFUSED for other names), publishes the tunnel as the primary network service
 * through the product's own code (DnsConfig.domains [".", "ssm-proxy-smoke.test"]), looks at
 * what macOS made of it, reverts, and checks configd is back as before. Then the same in a child
 * process killed with -9, and the next run's revert from the state it recorded.
 *
 * PASS/FAIL lines are what our code must do: the frameworks load, the keys are published and
 * read back, revert and crash recovery leave configd as it was. FACT lines record, without
 * failing, what §9 lists as unverified: whether OverridePrimary makes us resolver #1, whether
 * mDNSResponder sends queries through the utun, how fast configd drops a killed session's keys.
 * The tunnel's DNS is the default for a few seconds only: the runner's own lookups in that
 * window are refused. Exits non-zero on any FAIL.
 */
import { buildUdp } from "../src/netstack/packet.ts";
import { GLOBAL_IPV4, SERVICE_ID, SERVICE_KEYS } from "../src/dns/darwin_default.ts";
import { darwinPlatform } from "../src/net/darwin.ts";
import type { DnsState, Tun, TunConfig } from "../src/net/types.ts";
import { parseRouteGet } from "./lab/host_net.ts";
import {
  dnsAnswer,
  parseNwiIPv4,
  parseScutilDns,
  parseScutilShow,
  resolvConfServers,
} from "./lab/scutil_dns.ts";
import { SmokeSteps } from "./smoke_steps.ts";

const TUN: TunConfig = {
  mtu: 1400,
  address: "100.64.251.1",
  peer: "100.64.251.2",
  prefixLength: 32,
};
const CHILD_TUN: TunConfig = { ...TUN, address: "100.64.252.1", peer: "100.64.252.2" };
const PROBE = "probe.ssm-proxy.test";
const PROBE_IP = "192.0.2.55";
const SPLIT = "ssm-proxy-smoke.test";
const KEYS = Object.values(SERVICE_KEYS) as string[];
// The product fails when configd does not make it primary; here that is a FACT to report.
const TUNING = { requireDefault: false, convergeMs: 5000, watchMs: 0 };
const smoke = new SmokeSteps();
const step = smoke.step;

function fact(name: string, text: string): void {
  console.log(`FACT ${name}: ${text}`);
}

function ensure(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(what);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A command's stdout; killed after `timeoutMs`. */
async function run(cmd: string, args: string[], input?: string, timeoutMs = 10_000) {
  const p = new Deno.Command(cmd, {
    args,
    stdin: input === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "null",
    signal: AbortSignal.timeout(timeoutMs),
  }).spawn();
  if (input !== undefined) {
    const w = p.stdin.getWriter();
    await w.write(new TextEncoder().encode(input));
    await w.close();
  }
  return new TextDecoder().decode((await p.output()).stdout);
}

const scutilShow = async (key: string) =>
  parseScutilShow(await run("/usr/sbin/scutil", [], `show ${key}\n`));
const resolvers = async () => parseScutilDns(await run("/usr/sbin/scutil", ["--dns"]));

/** What "as before" compares: resolver #1's nameservers and the primary service. */
async function configdView(): Promise<string> {
  const r1 = (await resolvers())[0];
  const g = await scutilShow(GLOBAL_IPV4);
  return JSON.stringify({ resolver1: r1?.nameservers ?? [], primary: g?.PrimaryService ?? null });
}

async function keysLeft(): Promise<string[]> {
  const left: string[] = [];
  for (const k of KEYS) if (await scutilShow(k)) left.push(k);
  return left;
}

/** Poll until `f` holds, up to `ms`; the time it took, or undefined. */
async function within(ms: number, f: () => Promise<boolean>): Promise<number | undefined> {
  const t0 = Date.now();
  while (Date.now() - t0 <= ms) {
    if (await f()) return Date.now() - t0;
    await sleep(100);
  }
  return undefined;
}

/** Answer DNS sent to the peer through the utun, the way the tunnel's resolver would. */
export function dnsResponder(tun: Tun, server: string) {
  let running = true, queries = 0;
  const loop = (async () => {
    while (running) {
      const packets = await tun.read(200).catch((e) => {
        console.log(`responder stopped: ${e}`);
        running = false;
        return [];
      });
      for (const pkt of packets) {
        // Read by hand (no checksum checks): IPv4, UDP, to server:53.
        if (pkt.length < 28 || pkt[0] >> 4 !== 4 || pkt[9] !== 17) continue;
        const ihl = (pkt[0] & 15) * 4;
        if (pkt.subarray(16, 20).join(".") !== server) continue;
        const port = (at: number) => (pkt[ihl + at] << 8) | pkt[ihl + at + 1];
        if (port(2) !== 53) continue;
        queries++;
        const reply = dnsAnswer(pkt.subarray(ihl + 8, ihl + port(4)), PROBE, PROBE_IP);
        if (!reply) continue;
        tun.write(buildUdp(4, pkt.slice(16, 20), pkt.slice(12, 16), 53, port(0), reply));
      }
    }
  })();
  return {
    get queries() {
      return queries;
    },
    async stop() {
      running = false;
      await loop;
    },
  };
}

/** What macOS made of our service while it is up: facts only (§9.1, §9.5). */
async function upFacts(ifname: string, server: string): Promise<void> {
  const g = await scutilShow(GLOBAL_IPV4);
  fact(
    "§9.1 primary service",
    `${g?.PrimaryService === SERVICE_ID ? "ours" : "NOT ours"} ` +
      `(PrimaryService ${g?.PrimaryService}, PrimaryInterface ${g?.PrimaryInterface})`,
  );
  const all = await resolvers();
  const r1 = all[0];
  fact(
    "resolver #1",
    `${r1?.nameservers[0] === server && !r1.domain ? "ours" : "NOT ours"} ` +
      `(nameservers ${r1?.nameservers.join(" ")}, if_index ${r1?.ifIndex} (${r1?.ifName}), ` +
      `flags ${r1?.flags.join(", ")})`,
  );
  fact("if_index names our utun (ConfirmedServiceID honoured)", String(r1?.ifName === ifname));
  const split = all.find((r) => r.domain === SPLIT);
  fact(`supplemental resolver for ${SPLIT}`, split ? split.nameservers.join(" ") : "none");
  const conf = resolvConfServers(await Deno.readTextFile("/etc/resolv.conf").catch(() => ""));
  fact("/etc/resolv.conf nameservers", conf.join(" ") || "none");
  fact("scutil --nwi IPv4 order", parseNwiIPv4(await run("/usr/sbin/scutil", ["--nwi"])).join(" "));
  const def = parseRouteGet(await run("/sbin/route", ["-n", "get", "default"]));
  fact("route -n get default", `interface ${def.interface}, gateway ${def.gateway}`);
}

async function main(): Promise<void> {
  console.log(`ssm-proxy macOS full-tunnel DNS smoke test (${Deno.build.target})`);
  const before = await configdView();
  console.log(`before: ${before}`);
  const net = darwinPlatform({ fullTunnelDns: TUNING });
  let tun: Tun | undefined;
  let state: DnsState | undefined;
  let responder: ReturnType<typeof dnsResponder> | undefined;
  await step("create utun 100.64.251.1 → .2", async () => {
    tun = await net.openTun(TUN);
    return tun.name;
  });
  if (!tun) return;
  const t = tun;
  try {
    responder = dnsResponder(t, TUN.peer);
    await step(
      "publish our service: frameworks load, one SetMultiple, read back equal",
      async () => {
        const t0 = Date.now();
        state = await net.dns.apply({ ifname: t.name, server: TUN.peer, domains: [".", SPLIT] });
        ensure(state.kind === "sc-dynamic-store", `kind ${state.kind}`);
        return `${Date.now() - t0} ms (including up to 5 s waiting for configd to elect us)`;
      },
    );
    if (state) {
      await step("configd holds our keys (scutil show)", async () => {
        const d = await scutilShow(SERVICE_KEYS.dns);
        ensure(d?.ConfirmedServiceID === SERVICE_ID, `DNS key: ${JSON.stringify(d)}`);
        ensure((d.ServerAddresses as string[])?.[0] === TUN.peer, `DNS key: ${JSON.stringify(d)}`);
        const v4 = await scutilShow(SERVICE_KEYS.ipv4);
        ensure(v4?.InterfaceName === t.name, `IPv4 key: ${JSON.stringify(v4)}`);
        return `IPv4 ${JSON.stringify(v4)}`;
      });
      await upFacts(t.name, TUN.peer);
      const out = await run(
        "/usr/bin/dscacheutil",
        ["-q", "host", "-a", "name", PROBE],
        undefined,
        8000,
      );
      const got = /ip_address:\s*(\S+)/.exec(out)?.[1];
      fact(
        `§9.5 ${PROBE} through the system resolver`,
        `${
          got ?? "no answer"
        } (expected ${PROBE_IP}); queries seen on ${t.name}: ${responder.queries}`,
      );
    }
  } finally {
    if (state) {
      const s = state;
      await step("revert: our keys are gone", async () => {
        await net.dns.revert(s);
        const left = await keysLeft();
        ensure(left.length === 0, `still there: ${left.join(", ")}`);
      });
    }
    await step("configd is back as before (resolver #1, primary service)", async () => {
      const ms = await within(10_000, async () => (await configdView()) === before);
      ensure(ms !== undefined, `now ${await configdView()}`);
      return `after ${ms} ms`;
    });
    await responder?.stop();
    t.close();
  }
  await crashTest(before);
}

/** §8 step 5: a child publishes and is killed with -9; then the next run's revert. */
async function crashTest(before: string): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", import.meta.filename!, "--child"],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let recorded: DnsState | undefined;
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const up = await step("kill -9 test: a child process publishes", async () => {
    let buf = "";
    const deadline = Date.now() + 30_000;
    while (!recorded) {
      const r = await Promise.race([reader.read(), sleep(deadline - Date.now()).then(() => null)]);
      ensure(r && !r.done, "no report from the child within 30 s (or it exited)");
      buf += r.value;
      const line = buf.split("\n").find((l) => l.startsWith("{") && l.endsWith("}"));
      if (line) recorded = JSON.parse(line).state as DnsState;
    }
    ensure((await keysLeft()).length === KEYS.length, "the child's keys are not in configd");
    return JSON.stringify(recorded);
  });
  child.kill("SIGKILL");
  await child.status;
  await reader.cancel().catch(() => {});
  if (!up) return;
  const gone = await within(5000, async () => (await keysLeft()).length === 0);
  fact(
    "§9.2 configd drops a killed process's session keys",
    gone === undefined ? "NO: still there 5 s after kill -9" : `yes, within ${gone} ms`,
  );
  await step("the next run's revert from the recorded state leaves none of our keys", async () => {
    await darwinPlatform({ fullTunnelDns: TUNING }).dns.revert(recorded!);
    const left = await keysLeft();
    ensure(left.length === 0, `still there: ${left.join(", ")}`);
  });
  await step("configd is back as before after the crash", async () => {
    const ms = await within(10_000, async () => (await configdView()) === before);
    ensure(ms !== undefined, `now ${await configdView()}`);
    return `after ${ms} ms`;
  });
}

/** The process the crash test kills: publish, report the state, wait. */
async function child(): Promise<void> {
  const net = darwinPlatform({ fullTunnelDns: TUNING });
  const tun = await net.openTun(CHILD_TUN);
  const state = await net.dns.apply({ ifname: tun.name, server: CHILD_TUN.peer, domains: ["."] });
  console.log(JSON.stringify({ ifname: tun.name, state }));
  setTimeout(() => Deno.exit(3), 60_000); // never outlive a parent that forgot us for long
}

if (import.meta.main) {
  if (Deno.args[0] === "--child") {
    await child();
  } else {
    if (Deno.build.os !== "darwin" || Deno.uid() !== 0) {
      console.log(
        "FAIL run on macOS as root: sudo deno run --allow-all scripts/macos_dns_smoke.ts",
      );
      Deno.exit(1);
    }
    await main();
    smoke.finish();
  }
}
