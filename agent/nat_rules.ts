/**
 * The forwarding/NAT rules as text (os-ffi.md §9.4). Pure, so the exact rules are unit-tested and
 * reviewable; nat.ts applies them.
 *
 * - Masquerade the pool out of the uplink, so the VPC sees the instance's address and replies
 *   come back without any VPC route for the pool.
 * - Forward: accept what comes out of the tun (the agent already enforced anti-spoofing and the
 *   destination policy in userspace), accept replies into the tun, drop anything else into it (a
 *   VPC host routing the pool at the instance must not reach laptops). The chain policy stays
 *   accept: a drop policy in our table would cut every other forwarded flow on the host.
 * - Clamp TCP MSS on SYNs both ways to what fits the tun MTU, so peers with a larger path MTU
 *   never send segments the tunnel would have to drop.
 *
 * IPv6 (NAT66) gets the same rules in a table of the ip6 family with the same name, nft only,
 * installed and removed on its own so that IPv6 trouble never costs the IPv4 rules. Replies and
 * ICMPv6 errors about forwarded flows (packet too big above all) pass as established/related.
 */
import { type Cidr, formatCidr } from "./cidr.ts";
import { type Cidr6, formatCidr6 } from "./cidr6.ts";

export const NFT_TABLE = "ssm_proxy";
export const IPT_FWD_CHAIN = "SSM-PROXY-FWD";
export const IPT_NAT_CHAIN = "SSM-PROXY-NAT";

export interface NatParams {
  pool: Cidr;
  tun: string;
  uplink: string;
  mtu: number;
}

export interface Nat6Params {
  pool6: Cidr6;
  tun: string;
  uplink: string;
  mtu: number;
}

/** IPv4 + TCP headers without options. */
export const mssFor = (mtu: number) => mtu - 40;
/** IPv6 + TCP headers without options. */
export const mss6For = (mtu: number) => mtu - 60;

function forwardChain(tun: string, mss: number): string[] {
  const clamp = `tcp flags & (syn | rst) == syn tcp option maxseg size > ${mss} ` +
    `tcp option maxseg size set ${mss}`;
  return [
    `  chain forward {`,
    `    type filter hook forward priority filter; policy accept;`,
    `    iifname "${tun}" ${clamp}`,
    `    oifname "${tun}" ${clamp}`,
    `    iifname "${tun}" accept`,
    `    oifname "${tun}" ct state established,related accept`,
    `    oifname "${tun}" drop`,
    `  }`,
  ];
}

/**
 * One `nft -f -` transaction. The leading `table …` + `delete table …` pair makes it replace a
 * table left by a crashed run (and not fail when there is none), atomically.
 */
export function nftRuleset(p: NatParams): string {
  return natTable(
    "ip",
    `ip saddr ${formatCidr(p.pool)}`,
    p.uplink,
    forwardChain(p.tun, mssFor(p.mtu)),
  );
}

/** Our table of one family: masquerade `saddr` out of the uplink, then the forward chain. */
function natTable(family: "ip" | "ip6", saddr: string, uplink: string, forward: string[]): string {
  return [
    `table ${family} ${NFT_TABLE}`,
    `delete table ${family} ${NFT_TABLE}`,
    `table ${family} ${NFT_TABLE} {`,
    `  chain postrouting {`,
    `    type nat hook postrouting priority srcnat; policy accept;`,
    `    ${saddr} oifname "${uplink}" masquerade`,
    `  }`,
    ...forward,
    `}`,
    ``,
  ].join("\n");
}

/** Removal: our table and nothing else. */
export function nftTeardown(): string {
  return `delete table ip ${NFT_TABLE}\n`;
}

/** NAT66 from pool6 out of the uplink: nftRuleset's IPv6 twin, replacing a stale table too. */
export function nftRuleset6(p: Nat6Params): string {
  return natTable(
    "ip6",
    `ip6 saddr ${formatCidr6(p.pool6)}`,
    p.uplink,
    forwardChain(p.tun, mss6For(p.mtu)),
  );
}

export function nftTeardown6(): string {
  return `delete table ip6 ${NFT_TABLE}\n`;
}

/** Removes an IPv6 table a run with IPv6 on left behind, and succeeds when there is none. */
export function nftDropStale6(): string {
  return `table ip6 ${NFT_TABLE}\ndelete table ip6 ${NFT_TABLE}\n`;
}

/**
 * iptables fallback: our own chains, jumped to from the built-in ones. Each entry is the argv of
 * one `iptables` run. Teardown first, so a crashed run's chains are replaced, not duplicated.
 */
export function iptablesSetup(p: NatParams): string[][] {
  const pool = formatCidr(p.pool);
  const mss = String(mssFor(p.mtu));
  const clamp = (dir: "-i" | "-o") => [
    "-A",
    IPT_FWD_CHAIN,
    dir,
    p.tun,
    "-p",
    "tcp",
    "--tcp-flags",
    "SYN,RST",
    "SYN",
    "-m",
    "tcpmss",
    "--mss",
    `${mssFor(p.mtu) + 1}:65535`,
    "-j",
    "TCPMSS",
    "--set-mss",
    mss,
  ];
  return [
    ["-N", IPT_FWD_CHAIN],
    clamp("-i"),
    clamp("-o"),
    ["-A", IPT_FWD_CHAIN, "-i", p.tun, "-j", "ACCEPT"],
    [
      "-A",
      IPT_FWD_CHAIN,
      "-o",
      p.tun,
      "-m",
      "conntrack",
      "--ctstate",
      "RELATED,ESTABLISHED",
      "-j",
      "ACCEPT",
    ],
    ["-A", IPT_FWD_CHAIN, "-o", p.tun, "-j", "DROP"],
    // Inserted first so another FORWARD rule (Docker, ufw) cannot drop tunnel traffic before us.
    ["-I", "FORWARD", "1", "-j", IPT_FWD_CHAIN],
    ["-t", "nat", "-N", IPT_NAT_CHAIN],
    ["-t", "nat", "-A", IPT_NAT_CHAIN, "-s", pool, "-o", p.uplink, "-j", "MASQUERADE"],
    ["-t", "nat", "-A", "POSTROUTING", "-j", IPT_NAT_CHAIN],
  ];
}

/** Removes exactly our jumps and chains; each step may fail harmlessly when already gone. */
export function iptablesTeardown(): string[][] {
  return [
    ["-D", "FORWARD", "-j", IPT_FWD_CHAIN],
    ["-F", IPT_FWD_CHAIN],
    ["-X", IPT_FWD_CHAIN],
    ["-t", "nat", "-D", "POSTROUTING", "-j", IPT_NAT_CHAIN],
    ["-t", "nat", "-F", IPT_NAT_CHAIN],
    ["-t", "nat", "-X", IPT_NAT_CHAIN],
  ];
}
