/**
 * Full-tunnel DNS on macOS (macos-dns-routes §2–3): the tunnel becomes a network service of its
 * own in configd's dynamic store, and `OverridePrimary` makes it the primary service, so configd
 * makes its resolver #1 (the system default) and leaves the LAN's resolver for queries scoped to
 * en0 only. All three keys are written in one transaction through a session with
 * `UseSessionKeys`: configd deletes them itself when the process ends, even by `kill -9`, and
 * IPMonitor puts the previous primary service, default route and DNS back. Nothing that existed
 * before is modified, so "restored exactly" holds by construction.
 *
 * `serviceDicts` (what to publish) is pure; the rest talks to configd through a `DarwinSC`.
 */
import type { DarwinSC } from "../../ffi/darwin/cf.ts";
import { DynamicStore, SC_STATUS, ScError } from "../../ffi/darwin/dynamic_store.ts";
import { CfError, type Plist, plistEqual } from "../../ffi/darwin/plist.ts";
import { UserError } from "../errors.ts";
import { formatIpv4, mask, parseCidr, parseIpv4 } from "../net/cidr.ts";
import { ALL_DOMAINS, domainName } from "../net/domain.ts";

/** Our service, fixed and never reused; a UUID shape keeps other VPN scripts' greps working. */
export const SERVICE_ID = "5353C0DE-55A1-4F11-9D00-000000000001";
const SERVICE = `State:/Network/Service/${SERVICE_ID}`;
export const SERVICE_KEYS = {
  ipv4: `${SERVICE}/IPv4`,
  ipv6: `${SERVICE}/IPv6`,
  dns: `${SERVICE}/DNS`,
} as const;
export const GLOBAL_IPV4 = "State:/Network/Global/IPv4";
export const GLOBAL_DNS = "State:/Network/Global/DNS";
const STORE_NAME = "ssm-proxy";

export interface DefaultDnsInput {
  /** The utun, up and addressed. */
  ifname: string;
  /** Our IPv4 address on it, the point-to-point peer, and the prefix of the on-link network. */
  address: string;
  peer: string;
  prefixLength: number;
  /** The resolver reached through the tunnel (IPv4: configd drops IPv6 servers of a v4 service). */
  server: string;
  /** `DnsConfig.domains`: "." plus any private domains (sent there as supplemental domains). */
  domains: string[];
  /** CIDRs that must keep leaving through the physical network (the tunnel's own endpoints). */
  excluded?: string[];
}

function ipv4(text: string, what: string): string {
  const n = parseIpv4(text);
  if (n === undefined) {
    throw new UserError(`full-tunnel DNS on macOS needs an IPv4 ${what}, not ${text}`);
  }
  return formatIpv4(n);
}

/** The three dicts of §3.5, by key. Pure; throws UserError on an input configd would drop. */
export function serviceDicts(i: DefaultDnsInput): Record<string, Plist> {
  const address = ipv4(i.address, "tunnel address");
  const peer = ipv4(i.peer, "tunnel peer");
  const server = ipv4(i.server, "resolver");
  if (!Number.isInteger(i.prefixLength) || i.prefixLength < 0 || i.prefixLength > 32) {
    throw new UserError(`bad prefix length ${i.prefixLength} for ${i.ifname}`);
  }
  const ipv4Dict: Record<string, Plist> = {
    InterfaceName: i.ifname,
    Addresses: [address],
    SubnetMasks: [formatIpv4(mask(i.prefixLength))],
    // The peer as router: a plain gateway default (§3.5). Without a Router, OverridePrimary
    // counts for nothing (trap 7).
    Router: peer,
    OverridePrimary: 1,
  };
  const excluded = (i.excluded ?? []).map((c) => {
    const { base, prefix } = parseCidr(c);
    return { DestinationAddress: formatIpv4(base), SubnetMask: formatIpv4(mask(prefix)) };
  });
  if (excluded.length) ipv4Dict.ExcludedRoutes = excluded;
  const supplemental: string[] = [];
  for (const d of i.domains) {
    if (d === ALL_DOMAINS) continue;
    try {
      const name = domainName(d);
      if (!supplemental.includes(name)) supplemental.push(name);
    } catch (e) {
      throw new UserError((e as Error).message);
    }
  }
  const dns: Record<string, Plist> = {
    ServerAddresses: [server],
    // Trusted by IPMonitor only when it names our own service: resolver #1 then shows
    // "if_index … (utunN)" and mDNSResponder binds those queries to the utun (§2.2 item 4).
    ConfirmedServiceID: SERVICE_ID,
  };
  if (supplemental.length) dns.SupplementalMatchDomains = supplemental;
  return {
    [SERVICE_KEYS.ipv4]: ipv4Dict,
    // IPv4-only tunnel: Apple's "null" IPv6 primary, so no unscoped IPv6 default route remains.
    [SERVICE_KEYS.ipv6]: {
      InterfaceName: i.ifname,
      Addresses: ["::1"],
      Router: "::1",
      OverridePrimary: 1,
      IsNULL: true,
    },
    [SERVICE_KEYS.dns]: dns,
  };
}

/** One line for the user: configd's and CF's failures, and a framework that would not load. */
export function dnsUserError(e: unknown): unknown {
  if (e instanceof UserError) return e;
  if (e instanceof ScError) {
    if (e.code === SC_STATUS.AccessError) {
      return new UserError("changing the system DNS needs root: run with sudo");
    }
    if (e.code === SC_STATUS.NoStoreServer || e.code === SC_STATUS.NoStoreSession) {
      return new UserError(
        `configd (the macOS network configuration daemon) is not answering: try again (${e.message})`,
      );
    }
    return new UserError(`macOS refused the DNS change: ${e.message}; please report this`);
  }
  if (e instanceof CfError) {
    return new UserError(`CoreFoundation: ${e.message}; please report this`);
  }
  return e;
}

export interface DefaultDnsOptions {
  /** Does this interface exist? A key naming a live utun belongs to a running tunnel. */
  interfaceExists(name: string): boolean;
  /** How long configd may take to make our service primary (§3.6 step 9). Default 3000. */
  convergeMs?: number;
  pollMs?: number;
  /**
   * Fail (and undo) when our resolver does not become the default in time. Default true; the
   * smoke test turns it off to report what macOS did instead.
   */
  requireDefault?: boolean;
  /** Re-publish after configd lost our keys (a configd restart), checked this often; 0: never. */
  watchMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Who is primary now (Global/IPv4), for checks and messages. */
export function primaryOf(store: DynamicStore): { service?: string; interface?: string } {
  const g = store.get(GLOBAL_IPV4) as Record<string, Plist> | undefined;
  const s = g?.PrimaryService, i = g?.PrimaryInterface;
  return {
    ...(typeof s === "string" ? { service: s } : {}),
    ...(typeof i === "string" ? { interface: i } : {}),
  };
}

function isDefault(store: DynamicStore, server: string): boolean {
  if (primaryOf(store).service !== SERVICE_ID) return false;
  const dns = store.get(GLOBAL_DNS) as Record<string, Plist> | undefined;
  return Array.isArray(dns?.ServerAddresses) && dns.ServerAddresses[0] === server;
}

/** The keys under our service that are not held by a running tunnel (removed by the caller). */
function staleKeys(store: DynamicStore, ifname: string, exists: (n: string) => boolean) {
  const keys = store.keys(`^${SERVICE}/`);
  const v4 = store.get(SERVICE_KEYS.ipv4) as Record<string, Plist> | undefined;
  const holder = v4?.InterfaceName;
  // The utun dies with its process: a key naming a live one other than ours is another tunnel's.
  if (typeof holder === "string" && holder !== ifname && exists(holder)) {
    throw new UserError(
      `another ssm-proxy full tunnel is up on ${holder}: stop it first (ssm-proxy stop)`,
    );
  }
  return keys;
}

/** Our published service: keep it for the tunnel's whole life (closing it removes the keys). */
export class DefaultDnsSession {
  readonly keys = Object.values(SERVICE_KEYS) as string[];
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    readonly store: DynamicStore,
    readonly dicts: Record<string, Plist>,
    /** Did configd make our resolver the default within the time allowed? */
    readonly converged: boolean,
    watchMs: number,
  ) {
    if (watchMs > 0) {
      // Unref'd: the watchdog alone never keeps the process alive.
      const t = setInterval(() => this.check(), watchMs);
      Deno.unrefTimer(t);
      this.#timer = t;
    }
  }

  /** Re-publish whatever configd lost (it restarted); true when something was. */
  check(): boolean {
    if (this.store.closed) return false;
    try {
      const missing = this.keys.filter((k) => this.store.get(k) === undefined);
      if (missing.length === 0) return false;
      this.store.setMultiple(Object.fromEntries(missing.map((k) => [k, this.dicts[k]])));
      return true;
    } catch {
      return false; // configd is still down: the next tick tries again
    }
  }

  /**
   * Remove our keys, give IPMonitor a moment to put the previous primary back, end the session.
   * Closing alone would remove them too (session keys), so a failed remove is not an error.
   */
  async close(waitMs = 3000, pollMs = 50): Promise<void> {
    clearInterval(this.#timer);
    if (this.store.closed) return;
    try {
      this.store.setMultiple({}, this.keys);
      for (let t = 0; t < waitMs && primaryOf(this.store).service === SERVICE_ID; t += pollMs) {
        await sleep(pollMs);
      }
    } catch {
      // configd gone or restarted: the keys went with it, or go with the session below.
    } finally {
      this.store.close();
    }
  }
}

/**
 * Publish our service (§3.6 Start steps 1–9): open the session, clear what a dead run left,
 * write the three keys at once, read them back, and wait until configd makes our resolver the
 * default. Throws UserError (with nothing left behind) when it cannot.
 */
export async function publishDefaultDns(
  sc: DarwinSC,
  input: DefaultDnsInput,
  o: DefaultDnsOptions,
): Promise<DefaultDnsSession> {
  const dicts = serviceDicts(input);
  const server = (dicts[SERVICE_KEYS.dns] as { ServerAddresses: string[] }).ServerAddresses[0];
  let store: DynamicStore;
  try {
    store = DynamicStore.open(sc, STORE_NAME);
  } catch (e) {
    throw dnsUserError(e);
  }
  let wrote = false;
  try {
    for (const k of staleKeys(store, input.ifname, o.interfaceExists)) store.remove(k);
    wrote = true; // from here on, anything under our service is ours to remove
    // SetMultiple reports success even when configd refused a key another session holds
    // (trap 3): read back, and take the keys over once.
    let wrong: string[] = [];
    for (let attempt = 0; attempt < 2; attempt++) {
      for (const k of wrong) store.remove(k);
      store.setMultiple(dicts);
      wrong = Object.keys(dicts).filter((k) => !plistEqual(store.get(k), dicts[k]));
      if (wrong.length === 0) break;
    }
    if (wrong.length) {
      const key = wrong[0];
      throw new UserError(
        `configd kept another value for ${key} (another ssm-proxy starting at once?): try again`,
      );
    }
    const limit = o.convergeMs ?? 3000, poll = o.pollMs ?? 50;
    let converged = isDefault(store, server);
    for (let t = 0; !converged && t < limit; t += poll) {
      await sleep(poll);
      converged = isDefault(store, server);
    }
    if (!converged && (o.requireDefault ?? true)) {
      const p = primaryOf(store);
      throw new UserError(
        `macOS did not make the tunnel's DNS the system default within ${limit / 1000} s: ` +
          `${p.interface ?? "another interface"} (service ${p.service ?? "none"}) stays primary ` +
          `(another VPN?); stop it and retry`,
      );
    }
    return new DefaultDnsSession(store, dicts, converged, o.watchMs ?? 2000);
  } catch (e) {
    try {
      if (wrote) store.setMultiple({}, Object.keys(dicts));
    } catch {
      // the session's end below removes them anyway
    }
    store.close();
    throw dnsUserError(e);
  }
}

/**
 * After a crash, from the recorded keys: configd normally removed them with the dead session,
 * so this finds nothing. Whatever is left (configd missed the death, or an older build wrote
 * plain keys) is removed unless a running tunnel holds our service. Only our service's keys are
 * ever touched, whatever the state file says. Returns the keys removed.
 */
export function removeLeftoverService(
  sc: DarwinSC,
  recorded: string[],
  interfaceExists: (name: string) => boolean,
): string[] {
  const ours = recorded.filter((k) => (Object.values(SERVICE_KEYS) as string[]).includes(k));
  if (ours.length === 0) return [];
  let store: DynamicStore | undefined;
  try {
    store = DynamicStore.open(sc, STORE_NAME);
    const v4 = store.get(SERVICE_KEYS.ipv4) as Record<string, Plist> | undefined;
    const holder = v4?.InterfaceName;
    if (typeof holder === "string" && interfaceExists(holder)) return [];
    return ours.filter((k) => store!.remove(k));
  } catch (e) {
    throw dnsUserError(e);
  } finally {
    store?.close();
  }
}
