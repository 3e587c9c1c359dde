/**
 * What every tunnel's policy shares (DESIGN §3): the blocks denied whatever the config says, and
 * the policy as the WELCOME tells it to a client. Pure. Judging packets is rules_compile.ts's.
 *
 * The always-denied blocks reach the instance itself or things that trust it by address; the
 * agent's pools are added to them (tunnels cannot reach each other).
 */
import { parseCidr } from "./cidr.ts";
import { parseCidr6 } from "./cidr6.ts";
import { type Dest, formatDest, type PolicyRule } from "./rules.ts";
import type { PolicyScope } from "./rules_compile.ts";
import type { Policy as WirePolicy } from "../src/tunnel/wire.ts";

/** Always denied: metadata/link-local, loopback, "this network", multicast. The pool is added too. */
export const ALWAYS_DENIED = ["169.254.0.0/16", "127.0.0.0/8", "0.0.0.0/8", "224.0.0.0/4"];

/**
 * IPv6 always denied: link-local, multicast, loopback, unspecified, IPv4-mapped (an IPv4
 * destination in disguise), and fd00:ec2::/32, where EC2 puts the instance's own metadata
 * (fd00:ec2::254), DNS (::253), time (::123) and licensing (::240) services. Pool6 is added too.
 */
export const ALWAYS_DENIED6 = [
  "fe80::/10",
  "ff00::/8",
  "::1/128",
  "::/128",
  "::ffff:0:0/96",
  "fd00:ec2::/32",
];

/** The denies that always apply, the agent's own pools included (tunnels cannot reach each other). */
export function builtInDenies(scope: PolicyScope): Dest[] {
  return [
    ...ALWAYS_DENIED.map((t) => ({ v4: parseCidr(t)! })),
    { v4: scope.pool },
    ...ALWAYS_DENIED6.map((t) => ({ v6: parseCidr6(t)! })),
    { v6: scope.pool6 },
  ];
}

/**
 * The policy a tunnel's rules (rules_compile.rulesFor) amount to, as sent in WELCOME so the
 * client can explain refusals: destination texts (rules.ts formatDest), IPv4 first, then IPv6
 * only for a tunnel that has IPv6 (older clients never see IPv6 blocks). The built-in denies
 * come first. For the old `policy: {allow, deny}` form this is exactly the CIDR lists of old.
 */
export function wirePolicy(rules: PolicyRule[], scope: PolicyScope, ipv6 = false): WirePolicy {
  const allow = rules.flatMap((r) => r.allow);
  const deny = [...builtInDenies(scope), ...rules.flatMap((r) => r.deny)];
  return {
    allow: unique([...texts(allow, 4), ...(ipv6 ? texts(allow, 6) : [])]),
    deny: unique([...texts(deny, 4), ...(ipv6 ? texts(deny, 6) : [])]),
  };
}

/** One family's part of each destination (`any` is both), as text. */
function texts(dests: Dest[], family: 4 | 6): string[] {
  return dests
    .filter((d) => (family === 4 ? d.v4 : d.v6))
    .map((d) => formatDest(family === 4 ? { ...d, v6: undefined } : { ...d, v4: undefined }));
}

/** Each text once, where it first appears. */
const unique = (list: string[]) => [...new Set(list)];
