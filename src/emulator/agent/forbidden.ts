/**
 * The agent's refusal to forward to reserved addresses (specs/ssm-protocol.md §8), as
 * amazon-ssm-agent's Port plugin does it (`agent/session/plugins/port/port.go`,
 * validateParameters / dnsRoutingAddress / calculateAddress):
 *
 * - Only when the session has a `host` property (AWS-StartPortForwardingSessionToRemoteHost);
 *   `localhost:<portNumber>` sessions are never checked.
 * - `host` is resolved (Go's net.LookupHost: an IP literal as it is, else the system resolver).
 *   A host that does not resolve is not checked at all (its dials fail later).
 * - Every resolved address is compared, as an IP (so `::ffff:169.254.169.254` matches
 *   169.254.169.254), with `Mgs.DeniedPortForwardingRemoteIPs` from amazon-ssm-agent.json
 *   followed by five addresses of each of the instance's primary VPC CIDRs from IMDS: the first
 *   four (network, router, DNS, reserved) and the last (broadcast).
 * - A match fails the session with `Forwarding to IP address <host> is forbidden.`, naming the
 *   host as requested, not the address it resolved to.
 *
 * Pure apart from `lookupHost`.
 */
import { lookup } from "node:dns/promises";
import { formatIP, parseIPv4, parseIPv6 } from "../../../ffi/struct.ts";
import type { DestinationMap } from "../destinations.ts";

/**
 * `DefaultDeniedPortForwardingRemoteIPs` (agent/appconfig/constants.go), in its order: IMDS,
 * the Amazon DNS server, Amazon Time Sync and Windows license activation, IPv4 and IPv6.
 */
export const DEFAULT_DENIED_PORT_FORWARDING_REMOTE_IPS: readonly string[] = [
  "169.254.169.254",
  "fd00:ec2::254",
  "169.254.169.253",
  "fd00:ec2::253",
  "169.254.169.123",
  "fd00:ec2::123",
  "169.254.169.250",
  "169.254.169.251",
  "fd00:ec2::240",
];

/**
 * What IMDS tells the agent (VpcPrimaryCIDRBlock): per network interface, the VPC's primary
 * IPv4 CIDR (`vpc-ipv4-cidr-block`) and the text of `vpc-ipv6-cidr-blocks`. Each entry is parsed
 * as ONE CIDR; one that does not parse (empty, or several IPv6 blocks on separate lines) is
 * skipped, as in the agent.
 */
export interface VpcCidrs {
  ipv4: string[];
  ipv6: string[];
}

/** What the agent on one instance knows of itself when a Port session starts. */
export interface InstanceFacts {
  /** From IMDS; absent off EC2 (hybrid `mi-` nodes have no IMDS, so no VPC addresses). */
  vpcCidrs?: VpcCidrs;
  /** `Mgs.DeniedPortForwardingRemoteIPs` of its amazon-ssm-agent.json; absent = the default. */
  deniedPortForwardingRemoteIPs?: readonly string[];
  /** Where its Port sessions really dial (its own "localhost"), over the emulator's map. */
  destinations?: DestinationMap;
}

export const forbiddenMessage = (host: string) => `Forwarding to IP address ${host} is forbidden.`;

/**
 * Go's net.ParseIP as 16 bytes (IPv4 as IPv4-mapped, which is how Go's IP.Equal compares the
 * two families): dotted IPv4 without leading zeros, or IPv6 without a zone.
 */
export function parseGoIP(s: string): Uint8Array | undefined {
  const v4 = /^\d+(\.\d+){3}$/.test(s) && !/(^|\.)0\d/.test(s) ? parseIPv4(s) : undefined;
  if (v4) return mapped(v4);
  return s.includes(":") ? parseIPv6(s) : undefined;
}

function mapped(v4: Uint8Array): Uint8Array {
  const out = new Uint8Array(16);
  out[10] = out[11] = 0xff;
  out.set(v4, 12);
  return out;
}

function isMapped(b: Uint8Array): boolean {
  return b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
}

function sameIP(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Go's IP.IsLoopback: 127.0.0.0/8 (IPv4-mapped too) or ::1. */
export function isLoopback(b: Uint8Array): boolean {
  if (isMapped(b)) return b[12] === 127;
  return b.subarray(0, 15).every((x) => x === 0) && b[15] === 1;
}

/**
 * calculateAddress: for each CIDR, its first four addresses and its broadcast address. Like the
 * agent, the first four count up from the address as written (the last byte only, wrapping),
 * and the broadcast is the network's last address. IMDS gives canonical CIDRs, where this is
 * simply network, +1, +2, +3 and last.
 */
export function vpcReservedAddresses(cidrs: VpcCidrs): string[] {
  const out: string[] = [];
  for (const text of [...cidrs.ipv4, ...cidrs.ipv6]) {
    const c = parseGoCidr(text);
    if (!c) continue;
    const ip = c.ip.slice();
    for (let i = 0; i < 4; i++) {
      out.push(format(ip));
      ip[15] = (ip[15] + 1) & 0xff;
    }
    // The broadcast comes from the masked network in its own family's length, as Go does.
    const bits = c.v4 ? 32 : 128;
    const net = c.v4 ? c.ip.slice(12) : c.ip.slice();
    for (let bit = c.prefix; bit < bits; bit++) net[bit >> 3] |= 0x80 >> (bit & 7);
    out.push(formatIP(net));
  }
  return out;
}

/** Go's net.ParseCIDR: the address (16 bytes, not masked), its family and the prefix. */
function parseGoCidr(
  text: string,
): { ip: Uint8Array; v4: boolean; prefix: number } | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const addr = text.slice(0, slash);
  const ip = parseGoIP(addr);
  const bitsText = text.slice(slash + 1);
  if (!ip || !/^\d{1,3}$/.test(bitsText)) return undefined;
  const v4 = !addr.includes(":");
  const prefix = Number(bitsText);
  if (prefix > (v4 ? 32 : 128)) return undefined;
  return { ip, v4, prefix };
}

function format(b: Uint8Array): string {
  return formatIP(isMapped(b) ? b.subarray(12) : b);
}

export interface ForbiddenRule {
  /** Mgs.DeniedPortForwardingRemoteIPs; entries that are not IP addresses never match. */
  denied: readonly string[];
  /** vpcReservedAddresses of the instance's VPC. */
  vpc: readonly string[];
  /**
   * Also refuse loopback addresses. Not in the agent source read for this (the 2024 tree);
   * newer agents are reported to refuse `127.0.0.1` and `localhost` with the same message.
   */
  loopback?: boolean;
}

/**
 * The check on an already resolved host: the failure message, or undefined when the session
 * may go on. `resolved` are the addresses net.LookupHost gave for `host`.
 */
export function checkForbidden(
  host: string,
  resolved: readonly string[],
  rule: ForbiddenRule,
): string | undefined {
  const deny = [...rule.denied, ...rule.vpc].map(parseGoIP).filter((b) => b !== undefined);
  for (const address of resolved) {
    const ip = parseGoIP(address);
    if (!ip) continue;
    if (deny.some((d) => sameIP(ip, d)) || (rule.loopback && isLoopback(ip))) {
      return forbiddenMessage(host);
    }
  }
  return undefined;
}

/**
 * The literal answer of net.LookupHost for an IP address (an IPv6 zone allowed), without a
 * lookup; undefined for a name.
 */
export function literalHost(host: string): string[] | undefined {
  if (parseGoIP(host)) return [host];
  const zone = host.indexOf("%");
  if (zone > 0 && zone < host.length - 1 && parseIPv6(host.slice(0, zone))) return [host];
  return undefined;
}

/**
 * net.LookupHost on the instance: an IP literal as it is, else the system resolver
 * (getaddrinfo: /etc/hosts, then DNS; both families). Rejects when the name does not resolve.
 */
export async function lookupHost(host: string): Promise<string[]> {
  const literal = literalHost(host);
  if (literal) return literal;
  const found = await lookup(host, { all: true, verbatim: true });
  return found.map((a) => a.address);
}
