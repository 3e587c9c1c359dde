/**
 * Names a full tunnel must keep resolving when its own DNS is down. In a full tunnel every name
 * goes to the VPC resolver through the tunnel, so while a session heals, ssm.<region>.amazonaws.com
 * (ResumeSession, StartSession) and the stream's host would not resolve, and healing would wait on
 * the tunnel it is healing (macos-dns-routes.md §5.3: "pin what you dial"). The addresses looked
 * up before DNS was switched, the ones the pins route outside the tunnel, answer for those names
 * in this process instead: the WebSocket dials them (TLS still checks the name), and the SDK's
 * HTTP agents look them up here (node:http's `lookup`).
 */
const pinned = new Map<string, string[]>();
let turn = 0;

/** Answer `names` (host → IPv4 addresses) from here from now on. */
export function pinNames(names: Map<string, string[]>): void {
  for (const [host, addrs] of names) {
    if (addrs.length > 0) pinned.set(host.toLowerCase(), [...addrs]);
  }
}

export function unpinNames(): void {
  pinned.clear();
}

/** One of the pinned addresses of `host` (in turn, as a resolver would rotate), or undefined. */
export function pinnedAddress(host: string): string | undefined {
  const a = pinned.get(host.toLowerCase());
  return a ? a[turn++ % a.length] : undefined;
}

type LookupCallback = (
  err: Error | null,
  address: string | { address: string; family: number }[],
  family?: number,
) => void;

/** node:dns `lookup` for HTTP agents: pinned names from here, every other the usual way. */
export function pinnedLookup(
  host: string,
  options: { all?: boolean } | number | LookupCallback,
  callback?: LookupCallback,
): void {
  const cb = (typeof options === "function" ? options : callback)!;
  const opts = typeof options === "object" ? options : {};
  const addrs = pinned.get(host.toLowerCase());
  if (!addrs) {
    // deno-lint-ignore no-explicit-any
    (loaded!.dnsLookup as any)(host, opts, cb);
    return;
  }
  if (opts.all) cb(null, addrs.map((address) => ({ address, family: 4 })));
  else cb(null, pinnedAddress(host)!, 4);
}

interface Loaded {
  // deno-lint-ignore no-explicit-any
  dnsLookup: (...args: any[]) => void;
  agents: { httpAgent: unknown; httpsAgent: unknown };
}
let loaded: Loaded | undefined;

/**
 * Called by `start` before any AWS client exists when the tunnel may take all traffic: from then
 * on clients are built with agents that use pinnedLookup (aws/config.ts clientConfig). The
 * agents keep the SDK's own defaults (keep-alive, 50 sockets).
 */
export async function usePinnedNames(): Promise<void> {
  if (loaded) return;
  const [dns, http, https] = await Promise.all([
    import("node:dns"),
    import("node:http"),
    import("node:https"),
  ]);
  const o = { keepAlive: true, maxSockets: 50, lookup: pinnedLookup };
  loaded = {
    dnsLookup: dns.lookup,
    // deno-lint-ignore no-explicit-any
    agents: { httpAgent: new http.Agent(o as any), httpsAgent: new https.Agent(o as any) },
  };
}

/** The SDK's `requestHandler` options once usePinnedNames ran; undefined before. */
export function pinnedAgents(): { httpAgent: unknown; httpsAgent: unknown } | undefined {
  return loaded?.agents;
}
