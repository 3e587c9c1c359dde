/**
 * The platform seam (DESIGN §2): one narrow interface per job, one file per OS (linux.ts,
 * darwin.ts) implementing them on ffi/. Nothing above this knows which OS it runs on.
 */

export interface TunConfig {
  /** Requested name ("ssmp%d" lets the kernel number it); macOS always picks utunN. */
  name?: string;
  mtu: number;
  /** Our address on the tunnel, e.g. 100.64.0.2. */
  address: string;
  /** The far end (point-to-point peer), e.g. 100.64.0.1. */
  peer: string;
  /** Our IPv6 address on the tunnel (a /128, no peer), when the agent hands one out. */
  address6?: string;
  /**
   * Without address6: keep IPv6 on the device anyway, so a full tunnel can route IPv6 into it
   * (where it is dropped) rather than let it go around the tunnel. Linux only.
   */
  ipv6Sink?: boolean;
  /**
   * Prefix of the on-link network, e.g. 32 for a laptop (only the peer is on-link) or 16 for the
   * agent's tun that hosts a whole pool.
   */
  prefixLength: number;
}

/** A layer-3 tunnel device carrying raw IPv4/IPv6 packets (no link header). */
export interface Tun {
  readonly name: string;
  readonly index: number;
  readonly mtu: number;
  /**
   * Wait up to `timeoutMs` for packets, then return every packet available without blocking.
   * The views point into an internal buffer and are valid only until the next call; copy what
   * you keep. An empty array means the timeout passed.
   */
  read(timeoutMs: number): Promise<Uint8Array[]>;
  /** Write one IP packet, synchronously. False when the kernel queue is full (dropped). */
  write(packet: Uint8Array): boolean;
  /** Close the device; the OS removes it and its addresses and routes. */
  close(): void;
}

export interface RouteInfo {
  /** Interface the kernel would use. */
  interface: string;
  gateway?: string;
  source?: string;
}

/**
 * A route that keeps one destination on the original path (full tunnel): through `gateway` on
 * `ifname`, or on-link on `ifname` when the lookup had no gateway. Taken from `Routes.get` before
 * the half-default routes go in, so the tunnel's own traffic never loops into the tunnel.
 */
export interface PinRoute {
  cidr: string;
  gateway?: string;
  ifname: string;
}

export interface Routes {
  /** Route `cidr` to the interface. Throws RouteExistsError if an identical route exists. */
  add(cidr: string, ifname: string): Promise<void>;
  /** Remove a route we added; a route already gone is not an error. */
  delete(cidr: string, ifname: string): Promise<void>;
  /** Add a pin (unscoped, main table). Throws RouteExistsError if a route to `cidr` exists. */
  addPin(r: PinRoute): Promise<void>;
  /**
   * Remove a pin we added; a route already gone is not an error, and a route to the same
   * destination that now goes another way (another gateway or interface) is left alone.
   */
  deletePin(r: PinRoute): Promise<void>;
  /**
   * Which way would the kernel send a packet to `address`: the interface, and the next hop when
   * it is not on-link (for conflict checks and for pins).
   */
  get(address: string): Promise<RouteInfo | undefined>;
  /**
   * The system's own IPv4 default route (the physical uplink's gateway and interface), also while
   * our half-defaults are in place, where `get` would answer the tunnel. Undefined when there is
   * none (no network). What full-tunnel pins are re-made through when the network changes.
   */
  defaultRoute(): Promise<RouteInfo | undefined>;
}

export interface DnsConfig {
  ifname: string;
  /** Resolver reached through the tunnel. */
  server: string;
  /**
   * Private domains routed to it, e.g. ["ec2.internal", "corp.example"]. The root "."
   * (ALL_DOMAINS in domain.ts) means every name: full-tunnel DNS, where no query may reach the
   * machine's own nameservers while the tunnel is up.
   */
  domains: string[];
  /**
   * Full tunnel: destinations kept outside it (the pinned endpoints), which macOS's configd is
   * told as ExcludedRoutes so its own route finalising keeps them off the tunnel too.
   */
  excluded?: string[];
}

export interface DnsState {
  /** What was changed, recorded in the state file so a later run can undo it after a crash. */
  kind: "systemd-resolved" | "resolver-files" | "resolv-conf" | "sc-dynamic-store" | "none";
  /**
   * Files written (macOS), the link configured (systemd-resolved), or the backup of the replaced
   * /etc/resolv.conf in the state dir (resolv-conf: Linux without systemd-resolved).
   */
  items: string[];
}

export interface Dns {
  /** Apply split DNS; returns what to record for undo. Throws UserError saying what to do if it cannot. */
  apply(cfg: DnsConfig): Promise<DnsState>;
  /** Undo exactly what `apply` did (also after a crash, from the recorded state). */
  revert(state: DnsState): Promise<void>;
}

export interface NetPlatform {
  openTun(cfg: TunConfig): Promise<Tun>;
  routes: Routes;
  dns: Dns;
}

export class RouteExistsError extends Error {
  override name = "RouteExistsError";
}
