/**
 * The netstack against the real Linux kernel (specs/netstack.md §12.4), run inside a throwaway
 * network namespace by kernel_test.ts: a TUN with 10.200.0.0/16 (and fd00:200::/64) routed to
 * it, the NetStack on it, and a DirectTransport that carries each connection to services on
 * 127.0.0.1. Apps are ordinary kernel sockets (Deno.connect), so every byte crosses the kernel's
 * TCP and ours. Prints one JSON line per scenario: { name, ok, detail, data }.
 *
 *   ip netns exec NS deno run -A tests/netstack/kernel_lab.ts SCENARIO...
 */
import { linuxPlatform } from "../../src/net/linux.ts";
import { NetStackDriver } from "../../src/netstack/driver.ts";
import { parseAddr } from "../../src/netstack/packet.ts";
import type { Tun } from "../../src/net/types.ts";
import { DirectTransport } from "../support/direct_transport.ts";
import { LossyTun } from "../support/lossy_tun.ts";
import { SCENARIOS } from "./kernel_scenarios.ts";

export const TUN_ADDRESS = "198.18.0.1";
export const REMOTE = "10.200.0.5";
export const REMOTE6 = "fd00:200::5";

export interface LabEnv {
  driver: NetStackDriver;
  transport: DirectTransport;
  tun: Tun;
}

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
  if (loss) tun = new LossyTun(tun, JSON.parse(loss));
  const transport = new DirectTransport({
    map: (d) => ({ hostname: d.family === 4 ? "127.0.0.1" : "::1", port: d.port }),
    openDelayMs: Number(Deno.env.get("LAB_OPEN_DELAY_MS") ?? 0),
  });
  const ours = [parseAddr(TUN_ADDRESS)!, parseAddr("fd00:200::1")!];
  const driver = new NetStackDriver(tun, {
    transport,
    allowSource: (a) => ours.some((o) => o.length === a.length && o.every((b, i) => b === a[i])),
    resolvers: [parseAddr("10.200.0.53")!],
  });
  const pump = driver.run();
  for (const name of names) {
    const run = SCENARIOS[name];
    const t0 = performance.now();
    let line: Record<string, unknown>;
    try {
      if (!run) throw new Error(`no scenario ${name}`);
      const data = await run({ driver, transport, tun });
      line = { name, ok: true, ms: Math.round(performance.now() - t0), data };
    } catch (e) {
      line = { name, ok: false, detail: (e as Error).stack ?? String(e) };
    }
    line.stats = { ...driver.stack.stats(), tunDrops: driver.dropsIn };
    console.log(JSON.stringify(line));
  }
  driver.close();
  await pump;
  tun.close();
}

if (import.meta.main) await main(Deno.args);
