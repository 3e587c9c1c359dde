/**
 * The extra steps of `ssm-proxy demo --ipv6` (src/cli/demo.ts): the lab's VPC is dual-stack with
 * an IPv6-only host and AAAA records (scripts/lab/ipv6.ts), the tunnel carries the VPC's IPv6
 * range beside its IPv4 one (a full tunnel carries all of IPv6), and these steps show IPv6 going
 * through it: the tun's address from the agent's pool, HTTP, the agent's NAT66, AAAA and ping6.
 */
import type { Lab } from "../../scripts/lab.ts";
import { contains6, DEFAULT_POOL6, parseCidr6 } from "../net/cidr6.ts";
import type { Line } from "./demo_full.ts";

/** What the IPv6 steps need of the running tunnel (`status --json`). */
export interface Tun6 {
  interface: string;
  address: string;
  /** Absent when the agent gave the tunnel no IPv6 address. */
  address6?: string;
}

export interface Ipv6Checks {
  line: Line;
  /** Three pings to an address, one line (demo.ts: `ping -6` for IPv6). */
  ping: (address: string) => Promise<void>;
  /** A full tunnel: also the internet host over IPv6. */
  allTraffic?: boolean;
}

/** Whether `address` is an IPv6 address inside `pool` ("addr/len"); pure. */
export function inPool6(address: string, pool = DEFAULT_POOL6): boolean {
  try {
    return contains6(parseCidr6(pool), parseCidr6(address).bytes);
  } catch {
    return false; // not an IPv6 address (or pool) at all
  }
}

/** The ranges for `start --cidr`: the VPC's IPv4 range, and with `ipv6` its IPv6 one. */
export function splitCidrs(lab: Lab, ipv6: boolean): string[] {
  if (ipv6 && !lab.vpcNetwork6) throw new Error("demo --ipv6 needs a lab built with ipv6: true");
  return ipv6 ? [lab.vpcNetwork, lab.vpcNetwork6!] : [lab.vpcNetwork];
}

/** The IPv6 checks, from the laptop through the tunnel; each prints one line. */
export async function showIpv6(lab: Lab, tun: Tun6, c: Ipv6Checks): Promise<void> {
  const { PAGE_MARKER } = await import("../../scripts/lab/services.ts");
  const { line } = c;
  const svc6 = lab.serviceAddress6!;
  const address6 = tun.address6;
  console.log("Over IPv6, through the same tunnel:");
  line(
    address6 !== undefined && inPool6(address6),
    "tun IPv6 address",
    address6 === undefined
      ? "none: the agent gave the tunnel no IPv6 address"
      : inPool6(address6)
      ? `${address6} on ${tun.interface}, from the agent's ULA pool ${DEFAULT_POOL6} (the same host number as ${tun.address})`
      : `${address6} is outside the agent's ULA pool ${DEFAULT_POOL6}`,
  );

  const http = await lab.probe("laptop", ["http", `http://[${svc6}]/`, PAGE_MARKER]);
  line(
    http.ok,
    `HTTP GET http://[${svc6}]/ (the dual-stack service, ${lab.dualStackName})`,
    http.detail,
    http.ms,
  );

  await whoami(lab, c, {
    url: `http://[${lab.ipv6OnlyAddress}]/`,
    what: "an IPv6-only host that answers who is asking",
    address6,
    says: "NAT66: the VPC sees the instance, not the laptop",
  });

  const name = lab.ipv6OnlyName!;
  const want = lab.ipv6OnlyAddress!;
  const dns = await lab.probe("laptop", ["dns", lab.resolver, name, "AAAA"]);
  const got = (dns.data?.addresses ?? []) as string[];
  const ok = dns.ok && got.includes(want);
  line(
    ok,
    `DNS AAAA ${name} @${lab.resolver} (the VPC resolver; the name has no A record)`,
    ok || !dns.ok ? dns.detail : `${dns.detail}, expected ${want}`,
    dns.ms,
  );

  await c.ping(svc6);

  if (c.allTraffic) {
    if (!lab.internetAddress6) throw new Error("demo --ipv6 --all-traffic needs an internet lab");
    await whoami(lab, c, {
      url: `http://[${lab.internetAddress6}]/`,
      what: "the host on the internet, over IPv6",
      address6,
      says: "the internet sees the instance over IPv6 too",
    });
  }
}

/** A whoami host must answer the instance's IPv6 address: the agent's NAT66 at work. */
async function whoami(
  lab: Lab,
  c: Ipv6Checks,
  o: { url: string; what: string; address6?: string; says: string },
): Promise<void> {
  const instance6 = lab.instanceVpcAddress6!;
  const r = await lab.probe("laptop", ["http", o.url, `${instance6}\n`]);
  const not = o.address6 ? `, not the tunnel's ${o.address6}` : "";
  c.line(
    r.ok,
    `HTTP GET ${o.url} (${o.what})`,
    r.ok
      ? `answers ${instance6}, the instance's IPv6 address${not}: ${o.says}`
      : `expected ${instance6}: ${r.detail}`,
    r.ms,
  );
}
