/**
 * The per-principal policy's cost on the data path (issue 15): ns per packet judged by
 * `compile(...)` with 0, 10 and 100 rules that all apply to the tunnel's principal (the worst
 * case: every entry is scanned), over a mix of IPv4/IPv6 TCP/UDP/ICMP packets allowed and
 * denied, and the same for the old global Policy for scale. Also what that costs at 50 MB/s of
 * 1400-byte packets, against issue 15's "≤ 5 % agent CPU at 50 MB/s".
 *
 * deno run bench/policy.ts   (not part of bench/run.ts). Prints a table and a JSON line.
 */
import { compile } from "../agent/rules_compile.ts";
import { parseDest, type PolicyRule } from "../agent/rules.ts";
import { parsePrincipalArn } from "../agent/principal.ts";
import { Policy } from "../tests/agent/policy_oracle.ts";
import { parseCidr } from "../agent/cidr.ts";
import { DEFAULT_POOL6, parseCidr6 } from "../agent/cidr6.ts";
import { ICMP, ICMP6, TCP, UDP, v4Packet, v6Packet } from "../tests/agent/policy_packets.ts";

const PACKETS_PER_RUN = 2_000_000;
const PACKET_BYTES = 1400;
const RATE = 50e6;

const scope = { pool: parseCidr("100.64.0.0/16")!, pool6: parseCidr6(DEFAULT_POOL6)! };
const principal = parsePrincipalArn(
  "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Developer_0123456789abcdef/alice",
)!;

const dest = (text: string) => {
  const d = parseDest(text);
  if (typeof d === "string") throw new Error(`${text} ${d}`);
  return d;
};

/** `n` rules, each selecting the principal, with a few allows and a deny of both families. */
function rules(n: number): PolicyRule[] {
  return Array.from({ length: n }, (_, i) => ({
    principals: i % 2 ? { permissionSets: ["Developer"] } : { accounts: ["1234*"] },
    allow: [
      dest(`10.${i % 200}.0.0/16:443/tcp`),
      dest(`10.${i % 200}.1.0/24:5432`),
      dest(`fd00:${i.toString(16)}::/32/udp`),
    ],
    deny: [dest(`10.${i % 200}.9.0/24`), dest(`fd00:${i.toString(16)}:9::/48`)],
  }));
}

/** Mostly traffic the last rule decides (a full scan), some denied early, some of each family. */
function packets(n: number): Uint8Array[] {
  const last = Math.max(0, n - 1) % 200;
  const lastV6 = Math.max(0, n - 1).toString(16);
  return [
    v4Packet(`10.${last}.3.4`, TCP, 443),
    v4Packet(`10.${last}.1.7`, UDP, 5432),
    v4Packet(`10.${last}.9.1`, TCP, 443),
    v4Packet("172.16.0.1", TCP, 80),
    v4Packet("169.254.169.254", TCP, 80),
    v4Packet(`10.${last}.3.4`, ICMP),
    v6Packet(`fd00:${lastV6}::5`, UDP, 53),
    v6Packet(`fd00:${lastV6}:9::5`, UDP, 53),
    v6Packet("2600:1f18::1", TCP, 443, [{ type: "hop" }]),
    v6Packet(`fd00:${lastV6}::5`, ICMP6),
  ];
}

/** ns per call of `judge` over `mix`, best of three runs after a warm-up. */
function time(judge: (p: Uint8Array) => unknown, mix: Uint8Array[]): number {
  let sink = 0;
  const run = () => {
    const t0 = performance.now();
    for (let i = 0; i < PACKETS_PER_RUN; i++) {
      if (judge(mix[i % mix.length]) === "allow") sink++;
    }
    return ((performance.now() - t0) * 1e6) / PACKETS_PER_RUN;
  };
  run();
  const best = Math.min(run(), run(), run());
  if (sink < 0) console.log(sink); // keeps the loop's result alive
  return best;
}

const cpuShare = (ns: number) => (ns * (RATE / PACKET_BYTES)) / 1e9;

const rows: { case: string; nsPerPacket: number; cpuAt50MBps: number }[] = [];
for (const n of [0, 10, 100]) {
  const decide = compile({ rules: rules(n), requireIdentity: false }, principal, scope);
  const ns = time(decide, packets(n));
  rows.push({ case: `rules: ${n}`, nsPerPacket: ns, cpuAt50MBps: cpuShare(ns) });
}
{
  // The old global policy, judging destinations only (as dispatch.ts does today).
  const old = new Policy(["10.0.0.0/8", "fd00::/8"], ["10.0.9.0/24"], scope.pool, scope.pool6);
  const judge = (p: Uint8Array) =>
    p[0] >> 4 === 4
      ? old.allows(((p[16] << 24) | (p[17] << 16) | (p[18] << 8) | p[19]) >>> 0)
      : old.allows6(p, 24);
  const ns = time(judge, packets(1));
  rows.push({ case: "old policy.ts", nsPerPacket: ns, cpuAt50MBps: cpuShare(ns) });
}

console.log("case            ns/packet   CPU at 50 MB/s (1400-byte packets)");
for (const r of rows) {
  console.log(
    `${r.case.padEnd(15)} ${r.nsPerPacket.toFixed(1).padStart(9)}   ${
      (r.cpuAt50MBps * 100).toFixed(3)
    } %`,
  );
}
console.log(JSON.stringify({ bench: "policy", packetBytes: PACKET_BYTES, rows }));
