/**
 * Arrival counters: nftables counters in a lab namespace's input hook (e.g. the vpc's), one per
 * named match, in a table of their own, to show what reached a host and what never did.
 *
 *   const c = await startArrivalCounter(lab, "vpc", { web: "tcp dport 80", echo: "udp dport 7" });
 *   … await c.counts()  // { web: 12, echo: 0 }
 */
import type { Lab, Role } from "../lab.ts";
import { must, run } from "./proc.ts";

export interface ArrivalCounter {
  /** Packets each named match has seen so far. */
  counts(): Promise<Record<string, number>>;
  /** Delete the table. */
  stop(): Promise<void>;
}

/** The nft script for `matches` (name → nft match expression); pure. */
export function arrivalRuleset(table: string, matches: Record<string, string>): string {
  const names = Object.keys(matches);
  for (const n of names) {
    if (!/^[a-z][a-z0-9_]*$/.test(n)) throw new Error(`counter name ${n}: use [a-z0-9_]`);
  }
  return [
    `table inet ${table} {`,
    ...names.map((n) => `  counter ${n} { }`),
    `  chain in {`,
    `    type filter hook input priority -1000; policy accept;`,
    ...names.map((n) => `    ${matches[n]} counter name ${n}`),
    `  }`,
    `}`,
    "",
  ].join("\n");
}

/** Count packets arriving in `role` (its input hook) for each named match. */
export async function startArrivalCounter(
  lab: Lab,
  role: Role,
  matches: Record<string, string>,
): Promise<ArrivalCounter> {
  const table = `ssmp_arrivals_${crypto.randomUUID().slice(0, 8)}`;
  const file = `${lab.dir}/${table}.nft`;
  await Deno.writeTextFile(file, arrivalRuleset(table, matches));
  const nft = (...args: string[]) => ["ip", "netns", "exec", lab.ns(role), "nft", ...args];
  try {
    await must(nft("-f", file));
  } finally {
    await Deno.remove(file).catch(() => {});
  }
  return {
    async counts() {
      const doc = JSON.parse(await must(nft("-j", "list", "counters", "table", "inet", table)));
      const out: Record<string, number> = {};
      for (const e of doc.nftables as { counter?: { name: string; packets: number } }[]) {
        if (e.counter) out[e.counter.name] = e.counter.packets;
      }
      for (const n of Object.keys(matches)) {
        if (typeof out[n] !== "number") throw new Error(`no counter ${n} in ${table}`);
      }
      return out;
    },
    async stop() {
      await run(nft("delete", "table", "inet", table));
    },
  };
}
