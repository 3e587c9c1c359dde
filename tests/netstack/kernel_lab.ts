/**
 * The netstack against the real Linux kernel (specs/netstack.md §12.4), run inside a throwaway
 * network namespace by kernel_test.ts: a TUN with 10.200.0.0/16 (and fd00:200::/64) routed to
 * it, the NetStack on it (resolver 10.200.0.53), and a DirectTransport that carries each
 * connection to services on 127.0.0.1 / ::1, among them a DNS-over-TCP server on 127.0.0.1:53.
 * Apps are ordinary kernel sockets and programs (curl, dig, python3, ping), so every byte crosses
 * the kernel's TCP and ours. Prints one JSON line per scenario, { name, ok, ms, data | detail,
 * stats }, then a "shutdown" line once the stack is closed.
 *
 *   ip netns exec NS deno run -A tests/netstack/kernel_lab.ts SCENARIO...
 *
 * Environment: LAB_LOSS (a LossSpec as JSON: seeded loss, duplication, reordering on the TUN),
 * LAB_TRACE (ports whose last segments a failed scenario prints), LAB_TIMEOUT_MS (per scenario,
 * 40 s), LAB_OPEN_DELAY_MS, and the sizes the scenarios read.
 */
import { linuxPlatform } from "../../src/net/linux.ts";
import { NetStackDriver } from "../../src/netstack/driver.ts";
import { parseAddr } from "../../src/netstack/packet.ts";
import type { Tun } from "../../src/net/types.ts";
import { DirectTransport } from "../support/direct_transport.ts";
import { LossyTun } from "../support/lossy_tun.ts";
import { TcpDnsServer } from "../support/tcp_dns.ts";
import { TraceTun } from "../support/trace_tun.ts";
import { command, envNumber, RESOLVER, type Scenario, sleep, withDeadline } from "./kernel_io.ts";
import { TCP_SCENARIOS } from "./kernel_scenarios.ts";
import { DNS_RECORDS, NET_SCENARIOS } from "./kernel_scenarios_net.ts";

export const TUN_ADDRESS = "198.18.0.1";
export const SCENARIOS: Record<string, Scenario> = { ...TCP_SCENARIOS, ...NET_SCENARIOS };

async function main(names: string[]): Promise<void> {
  const net = linuxPlatform();
  let tun: Tun = await net.openTun({
    name: "ssmpt0",
    mtu: 1400,
    address: TUN_ADDRESS,
    peer: "198.18.0.2",
    prefixLength: 32,
  });
  await net.routes.add("10.200.0.0/16", tun.name);
  // The product turns IPv6 off on its tuns (os-ffi §1 item 12); agentless IPv6 needs it on.
  Deno.writeTextFileSync(`/proc/sys/net/ipv6/conf/${tun.name}/disable_ipv6`, "0");
  const ip6 = await new Deno.Command("ip", {
    args: ["-6", "addr", "add", "fd00:200::1/64", "dev", tun.name, "nodad"],
  }).output();
  if (!ip6.success) throw new Error(new TextDecoder().decode(ip6.stderr));
  const loss = Deno.env.get("LAB_LOSS");
  const lossy = loss ? new LossyTun(tun, JSON.parse(loss)) : undefined;
  if (lossy) tun = lossy;
  // LAB_TRACE=PORT,…: keep the last segments of those ports, as the netstack saw them.
  const traced = Deno.env.get("LAB_TRACE");
  const trace = traced === undefined ? undefined : new TraceTun(
    tun,
    traced.split(",").filter(Boolean).map(Number),
    envNumber("LAB_TRACE_KEEP", 400),
  );
  if (trace) tun = trace;
  const transport = new DirectTransport({
    map: (d) => ({ hostname: d.family === 4 ? "127.0.0.1" : "::1", port: d.port }),
    openDelayMs: envNumber("LAB_OPEN_DELAY_MS", 0),
  });
  const dns = new TcpDnsServer(DNS_RECORDS);
  const ours = [parseAddr(TUN_ADDRESS)!, parseAddr("fd00:200::1")!];
  const driver = new NetStackDriver(tun, {
    transport,
    allowSource: (a) => ours.some((o) => o.length === a.length && o.every((b, i) => b === a[i])),
    resolvers: [parseAddr(RESOLVER)!],
  });
  const pump = driver.run();
  const stats = () => ({
    ...driver.stack.stats(),
    tunDrops: driver.dropsIn,
    kernelTunTxDropped: Number(
      Deno.readTextFileSync(`/sys/class/net/${tun.name}/statistics/tx_dropped`).trim(),
    ),
    ...(lossy ? { lossy: { ...lossy.counts } } : {}),
  });
  const timeoutMs = envNumber("LAB_TIMEOUT_MS", 40_000);
  for (const name of names) {
    const run = SCENARIOS[name];
    const t0 = performance.now();
    let line: Record<string, unknown>;
    try {
      if (!run) throw new Error(`no scenario ${name}`);
      const data = await withDeadline(
        run({ driver, transport, tun, dns }),
        timeoutMs,
        () => `timed out after ${timeoutMs} ms`,
      );
      line = { name, ok: true, ms: Math.round(performance.now() - t0), data };
    } catch (e) {
      const ms = Math.round(performance.now() - t0);
      line = { name, ok: false, ms, detail: (e as Error).stack ?? String(e) };
      // What is stuck: the streams still open and the kernel's view of its sockets.
      line.streams = [...transport.streams].slice(0, 20);
      line.sockets = appSockets((await command("ss", ["-tniH"])).stdout);
      if (trace) line.trace = trace.lines();
    }
    line.stats = stats();
    console.log(JSON.stringify(line));
  }
  // Closing resets what is left and ends the DNS relay's pooled stream: no stream may outlive it.
  driver.close();
  await pump;
  for (let i = 0; i < 20 && transport.live > 0; i++) await sleep(100);
  console.log(JSON.stringify({
    name: "shutdown",
    ok: transport.live === 0,
    data: { streams: transport.live, dnsServer: dns.stats },
    stats: stats(),
  }));
  await dns.close();
  tun.close();
  // A scenario that timed out may still hold sockets and timers: do not wait for them.
  Deno.exit(0);
}

/** `ss -tni` entries (header and info line) of the apps' sockets to the lab's addresses. */
function appSockets(ss: string): string[] {
  const lines = ss.split("\n");
  const out: string[] = [];
  for (let i = 0; i < lines.length && out.length < 40; i++) {
    if (!/^\S/.test(lines[i]) || !/ (10\.200\.|\[?fd00:200::)/.test(lines[i])) continue;
    out.push(lines[i].trim().replace(/\s+/g, " "));
    if (/^\s/.test(lines[i + 1] ?? "")) out.push("  " + lines[i + 1].trim());
  }
  return out;
}

if (import.meta.main) await main(Deno.args);
