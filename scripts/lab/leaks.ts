/**
 * A leak counter for full-tunnel tests: counts the IP packets that leave a lab namespace by its
 * outer interface (a laptop's lab0) towards anything not in an allow list (e.g. the emulator's
 * address), with nftables counters in a table of its own inside that namespace.
 *
 * The chain hooks postrouting at a priority after every other chain (NAT included), so what it
 * counts is what really leaves. IPv6 link-scope traffic (fe80::/10, ff02::/16: neighbour
 * discovery, MLD) is never counted: the kernel sends it on its own and it cannot leave the link.
 */
import type { Lab, Role } from "../lab.ts";
import { must, run } from "./proc.ts";

export interface LeakCounter {
  /** Packets counted so far. */
  packets(): Promise<number>;
  /** The distinct destinations counted so far (for failure messages), sorted. */
  destinations(): Promise<string[]>;
  /** Delete the table. */
  stop(): Promise<void>;
}

export interface LeakOptions {
  /** Destinations that are not leaks: addresses or CIDRs, IPv4 or IPv6. */
  allow: string[];
  /** The interface to watch; default the role's outer one (lab0, vpc0, inet0). */
  iface?: string;
}

/** The interface a role's traffic leaves by towards the rest of the lab. */
export function outerInterface(role: Role): string {
  if (role === "instance" || role === "instance2") return "vpc0";
  if (role === "vpc") return "inet0";
  if (role === "inet") return "vpc0";
  return "lab0";
}

const LINK_SCOPE_V6 = ["fe80::/10", "ff02::/16"];

/** The nft script creating table `table`; pure, so its shape is tested without a namespace. */
export function leakRuleset(table: string, iface: string, allow: string[]): string {
  const v6 = allow.filter((a) => a.includes(":"));
  const v4 = allow.filter((a) => !a.includes(":"));
  const elements = (xs: string[]) => xs.length ? ` elements = { ${xs.join(", ")} };` : "";
  const name = JSON.stringify(iface);
  return [
    `table inet ${table} {`,
    `  counter leaks { }`,
    `  set allow4 { type ipv4_addr; flags interval; auto-merge;${elements(v4)} }`,
    `  set allow6 { type ipv6_addr; flags interval; auto-merge;${
      elements([...LINK_SCOPE_V6, ...v6])
    } }`,
    `  set seen4 { type ipv4_addr; size 4096; flags dynamic; }`,
    `  set seen6 { type ipv6_addr; size 4096; flags dynamic; }`,
    `  chain out {`,
    `    type filter hook postrouting priority 1000; policy accept;`,
    `    oifname ${name} ip daddr != @allow4 counter name leaks add @seen4 { ip daddr }`,
    `    oifname ${name} ip6 daddr != @allow6 counter name leaks add @seen6 { ip6 daddr }`,
    `  }`,
    `}`,
    "",
  ].join("\n");
}

/** Count packets leaving `role`'s outer interface to destinations outside `o.allow`. */
export async function startLeakCounter(
  lab: Lab,
  role: Role,
  o: LeakOptions,
): Promise<LeakCounter> {
  const table = `ssmp_leaks_${crypto.randomUUID().slice(0, 8)}`;
  const file = `${lab.dir}/${table}.nft`;
  await Deno.writeTextFile(file, leakRuleset(table, o.iface ?? outerInterface(role), o.allow));
  const nft = (...args: string[]) => ["ip", "netns", "exec", lab.ns(role), "nft", ...args];
  try {
    await must(nft("-f", file));
  } finally {
    await Deno.remove(file).catch(() => {});
  }
  let stopped = false;
  return {
    async packets() {
      const doc = JSON.parse(await must(nft("-j", "list", "counter", "inet", table, "leaks")));
      const c = doc.nftables.find((e: { counter?: unknown }) => e.counter)?.counter;
      if (typeof c?.packets !== "number") throw new Error(`no leak counter in ${table}`);
      return c.packets;
    },
    async destinations() {
      const out: string[] = [];
      for (const set of ["seen4", "seen6"]) {
        const doc = JSON.parse(await must(nft("-j", "list", "set", "inet", table, set)));
        const s = doc.nftables.find((e: { set?: unknown }) => e.set)?.set;
        for (const e of s?.elem ?? []) out.push(typeof e === "string" ? e : JSON.stringify(e));
      }
      return out.sort();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      // The namespace may be gone already (lab destroyed first): nothing left to delete then.
      await run(nft("delete", "table", "inet", table));
    },
  };
}
