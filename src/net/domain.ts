/**
 * DNS domain names as the user, the config, AWS and the forwarder give them: one normal form
 * (lowercase, no leading or trailing dots) and one rule for what counts as a domain. Pure.
 */

/**
 * The root domain: in `DnsConfig.domains` it stands for every name (full-tunnel DNS). Not a
 * domain by `isDomain`, and `normalizeDomain` would make it "" (which the forwarder reads as the
 * root zone too): code that builds or checks a domain list passes this one through as it is.
 */
export const ALL_DOMAINS = ".";

/** Does the list send every name through the tunnel (it holds the root)? */
export function coversAll(domains: readonly string[]): boolean {
  return domains.includes(ALL_DOMAINS);
}

/** "Corp.Example." → "corp.example". */
export function normalizeDomain(s: string): string {
  return s.trim().replace(/^\.+|\.+$/g, "").toLowerCase();
}

const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** Is an already normalized name a domain (labels of letters, digits, `-`, `_`; ≤ 253)? */
export function isDomain(d: string): boolean {
  return d !== "" && d.length <= 253 && d.split(".").every((l) => LABEL.test(l));
}

/** The normal form of `s`, or an Error saying it is not a domain name. */
export function domainName(s: string): string {
  const d = normalizeDomain(s);
  if (!isDomain(d)) throw new Error(`${JSON.stringify(s)} is not a domain name like corp.internal`);
  return d;
}
