/** Which DNS domains to send to the VPC resolver, each with its reason. Pure. */
import type { HostedZoneSummary } from "../aws/route53.ts";
import { isDomain, normalizeDomain } from "../net/domain.ts";

export interface DomainCandidate {
  domain: string;
  reason: string;
}

export interface DnsFacts {
  region: string;
  /** Private hosted zones associated with the VPC; absent when Route 53 was not asked. */
  zones?: HostedZoneSummary[];
  /** The VPC's DHCP options set and its domain-name values. */
  dhcp?: { id: string; names: string[] };
}

/** The domain of EC2's private DNS names (`ip-10-0-0-1.ec2.internal`) in a region. */
export function ec2InternalDomain(region: string): string {
  return region === "us-east-1" ? "ec2.internal" : `${region}.compute.internal`;
}

/**
 * Hosted zones, then DHCP domain names, then the region's EC2 domain: lowercase, without the
 * trailing dot, each once (the first reason wins). A name that is not a plain domain (Route 53
 * escapes such as `\052` for `*`) is noted and left out.
 */
export function dnsCandidates(f: DnsFacts): { domains: DomainCandidate[]; notes: string[] } {
  const domains: DomainCandidate[] = [];
  const notes: string[] = [];
  const add = (raw: string, reason: string) => {
    const domain = normalizeDomain(raw);
    if (!isDomain(domain)) {
      notes.push(`${JSON.stringify(raw)} (${reason}) is not a domain name --dns-domain takes`);
    } else if (!domains.some((d) => d.domain === domain)) {
      domains.push({ domain, reason });
    }
  };
  for (const z of f.zones ?? []) add(z.name, `private hosted zone ${z.id}`);
  for (const n of f.dhcp?.names ?? []) add(n, `DHCP options ${f.dhcp?.id}`);
  add(ec2InternalDomain(f.region), `EC2 private DNS names in ${f.region}`);
  return { domains, notes };
}
