/**
 * A full tunnel's endpoint pins follow the network (issue 14, macos-dns-routes §5.4). The pins
 * keep the tunnel's own AWS endpoints on the path the kernel used before the half-defaults went
 * in; after a Wi-Fi switch, a new DHCP gateway or an interface bounce they point at a router that
 * is gone, or the kernel has flushed them, and healing would send the session into the tunnel it
 * is healing. Every few seconds this checks each pin against the kernel and the system's own
 * default route, and re-makes the stale ones through the path that works now, as wg-quick's
 * `route -n monitor` loop does. It only ever replaces pins: the half-defaults are not its business,
 * and removing the pins on undo stays with the caller (who learns the current set from `onPins`).
 */
import { UserError } from "../errors.ts";
import { parseIpv4 } from "../net/cidr.ts";
import { type PinRoute, RouteExistsError, type RouteInfo, type Routes } from "../net/types.ts";

export interface PinKeeperOptions {
  routes: Routes;
  /** The pins in place now (the state file's `pins`). */
  pins: PinRoute[];
  /** How often to look; default 3000. */
  periodMs?: number;
  /** One line per change worth telling the user. */
  onChange(line: string): void;
  /** The pins after a change, for the state file (undo removes exactly these). */
  onPins(pins: PinRoute[]): void;
}

export const NO_NETWORK = "no network: the session will heal when one is back";

/** Which way the system's default goes, as a comparable key. */
const pathOf = (r: RouteInfo) => `${r.interface} ${r.gateway ?? "on-link"}`;

const viaText = (p: PinRoute) =>
  p.gateway ? `via ${p.gateway} on ${p.ifname}` : `on-link on ${p.ifname}`;

const copy = (p: PinRoute): PinRoute => ({
  cidr: p.cidr,
  ifname: p.ifname,
  ...(p.gateway ? { gateway: p.gateway } : {}),
});

type Outcome = { kind: "made" } | { kind: "taken" } | { kind: "failed"; line: string };

interface Entry {
  pin: PinRoute;
  /** The default route (pathOf) in place when the pin was last made or confirmed. */
  madeVia?: string;
}

/**
 * One check per `check()` call, no timer (startPinKeeper adds that): the logic, testable against
 * a scripted Routes.
 */
export class PinKeeper {
  readonly #routes: Routes;
  readonly #onChange: (line: string) => void;
  readonly #onPins: (pins: PinRoute[]) => void;
  #entries: Entry[];
  #offline = false;
  #stopped = false;
  /** Failure lines told in the last check: each is said once while it lasts. */
  #told = new Set<string>();

  constructor(o: Omit<PinKeeperOptions, "periodMs">) {
    this.#routes = o.routes;
    this.#onChange = o.onChange;
    this.#onPins = o.onPins;
    this.#entries = o.pins.map((p) => ({ pin: copy(p) }));
  }

  /** The pins as they stand. */
  get pins(): PinRoute[] {
    return this.#entries.map((e) => copy(e.pin));
  }

  /** No further deletions; a replacement already under way is finished and reported. */
  stop(): void {
    this.#stopped = true;
  }

  async check(): Promise<void> {
    let def: RouteInfo | undefined;
    try {
      def = await this.#routes.defaultRoute();
    } catch (e) {
      this.#tell([`endpoint pins: cannot read the routing table (${msg(e)})`]);
      return;
    }
    if (!def) {
      // The pins stay: when the same network comes back they are right again, and with no way
      // out there is nothing better to point them at.
      if (!this.#offline) this.#onChange(NO_NETWORK);
      this.#offline = true;
      return;
    }
    this.#offline = false;
    const now = pathOf(def);
    const changed: PinRoute[] = [];
    const dropped: PinRoute[] = [];
    const failures: string[] = [];
    for (const e of [...this.#entries]) {
      if (this.#stopped) break;
      const address = e.pin.cidr.split("/")[0];
      if (parseIpv4(address) === undefined) continue; // IPv6 is not routed through the tunnel
      // The first check finds the default the pins were made through.
      e.madeVia ??= now;
      if (e.madeVia === now && await this.#holds(e.pin, address)) continue;
      const r = await this.#replace(e, address, def);
      if (r.kind === "made") {
        e.madeVia = now;
        changed.push(e.pin);
      } else if (r.kind === "taken") {
        this.#entries = this.#entries.filter((x) => x !== e);
        dropped.push(e.pin);
      } else failures.push(r.line);
    }
    if (changed.length || dropped.length) this.#onPins(this.pins);
    if (changed.length) {
      const paths = [...new Set(changed.map(viaText))];
      this.#onChange(`network changed: endpoints now pinned ${paths.join(", ")}`);
    }
    for (const p of dropped) {
      this.#onChange(
        `network changed: a route to ${p.cidr} that is not ours decides its path now; no longer pinned`,
      );
    }
    this.#tell(failures);
  }

  /** Does the kernel still send `address` the pin's way? */
  async #holds(pin: PinRoute, address: string): Promise<boolean> {
    const r = await this.#routes.get(address).catch(() => undefined);
    return r?.interface === pin.ifname && (r.gateway ?? "") === (pin.gateway ?? "");
  }

  /**
   * Delete the pin and add it through today's path. Failures leave the entry as it was, so the
   * next check tries again (deleting a pin already gone is not an error).
   */
  async #replace(
    e: Entry,
    address: string,
    def: RouteInfo,
  ): Promise<Outcome> {
    const old = e.pin;
    try {
      await this.#routes.deletePin(old);
    } catch (err) {
      return { kind: "failed", line: `cannot remove the stale pin ${old.cidr}: ${msg(err)}` };
    }
    // With our pin gone the kernel shows what else there is: a connected network, a route more
    // specific than the half-defaults, or the half-defaults themselves (the tunnel).
    const seen = await this.#routes.get(address).catch(() => undefined);
    const next = { ...nextPin(old, seen, def), cidr: old.cidr };
    try {
      await this.#routes.addPin(next);
    } catch (err) {
      // Someone else's route to exactly this address (configd's ExcludedRoutes on macOS): it
      // decides now, and it is not ours to remove on undo.
      if (err instanceof RouteExistsError) return { kind: "taken" };
      // The platform's own line already names the pin ("cannot pin X via G: ...").
      const line = err instanceof UserError
        ? err.message
        : `cannot pin ${old.cidr} ${viaText(next)}: ${msg(err)}`;
      return { kind: "failed", line };
    }
    e.pin = next;
    return { kind: "made" };
  }

  /**
   * Pin a new address of an endpoint (its name moved to another address): through the way the
   * kernel would send it without the tunnel. False when it is pinned already or cannot be.
   */
  async adopt(address: string): Promise<boolean> {
    const cidr = `${address}/32`;
    if (this.#stopped || this.#entries.some((e) => e.pin.cidr === cidr)) return false;
    const def = await this.#routes.defaultRoute().catch(() => undefined);
    if (!def) return false;
    // Nothing to remove first: `seen` is what the kernel does today, the tunnel most likely.
    const seen = await this.#routes.get(address).catch(() => undefined);
    const pin = { ...nextPin({ cidr, ifname: def.interface }, seen, def), cidr };
    try {
      await this.#routes.addPin(pin);
    } catch (err) {
      if (!(err instanceof RouteExistsError)) this.#tell([`cannot pin ${cidr}: ${msg(err)}`]);
      return false;
    }
    this.#entries.push({ pin, madeVia: pathOf(def) });
    this.#onPins(this.pins);
    return true;
  }

  #tell(lines: string[]): void {
    for (const l of lines) if (!this.#told.has(l)) this.#onChange(`${l}; retrying`);
    this.#told = new Set(lines);
  }
}

const msg = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * Where a pin goes now. `seen` is the kernel's answer with the pin removed. A next hop means a
 * route more specific than the half-defaults (which have none): keep to it, as planning did.
 * On-link on the uplink (or on the interface the pin was already on-link on) means the address
 * is on a connected network: stay on-link. Anything else is the tunnel: go through the default.
 */
export function nextPin(
  old: PinRoute,
  seen: RouteInfo | undefined,
  def: RouteInfo,
): Omit<PinRoute, "cidr"> {
  if (seen?.gateway) return { ifname: seen.interface, gateway: seen.gateway };
  const connected = seen !== undefined &&
    (seen.interface === def.interface || (!old.gateway && seen.interface === old.ifname));
  if (connected) return { ifname: seen.interface };
  return def.gateway ? { ifname: def.interface, gateway: def.gateway } : { ifname: def.interface };
}

/**
 * Check the pins now and every `periodMs` after, until `stop()`. The timer does not keep the
 * process alive. `stop()` resolves once a check under way has finished, so a replacement it
 * made has reached `onPins` before the caller removes the pins.
 */
export function startPinKeeper(o: PinKeeperOptions & NameRefresh): { stop(): Promise<void> } {
  const keeper = new PinKeeper(o);
  const period = o.periodMs ?? 3000;
  const refreshEvery = Math.max(1, Math.round((o.refreshMs ?? 60_000) / period));
  let ticks = 0;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<void> = Promise.resolve();
  const tick = () => {
    const refresh = o.names && ++ticks % refreshEvery === 0;
    running = keeper.check()
      .then(() => (refresh ? refreshNames(keeper, o) : undefined))
      .catch((e) => o.onChange(`keeping the endpoint pins: ${msg(e)}`))
      .finally(() => {
        if (stopped) return;
        const t = setTimeout(tick, period);
        Deno.unrefTimer(t);
        timer = t;
      });
  };
  tick();
  return {
    async stop() {
      stopped = true;
      keeper.stop();
      clearTimeout(timer);
      await running;
    },
  };
}

/**
 * The endpoints' names, asked again now and then of the nameservers the laptop had before the
 * full tunnel took its DNS (not the VPC resolver: a VPC endpoint's private DNS would answer
 * addresses only the tunnel reaches): AWS moves its endpoints between addresses, and a stream or
 * API call to an address that is not pinned would go into the tunnel. Asked while the tunnel is
 * up; while it heals the names answer from what is pinned.
 */
export interface NameRefresh {
  /** Each name and the addresses pinned for it (net/pinned_names.ts answers from these). */
  names?: Map<string, string[]>;
  /** The laptop's own nameservers, from before the tunnel. */
  nameservers?: string[];
  /** Default 60 s. */
  refreshMs?: number;
  /** A name's addresses changed (the new ones are pinned): hand them to pinNames. */
  onNames?(names: Map<string, string[]>): void;
  /** For tests: the lookup (default Deno.resolveDns A records at that server, port 53). */
  resolve?(name: string, server: string): Promise<string[]>;
}

export async function refreshNames(keeper: PinKeeper, o: NameRefresh): Promise<void> {
  if (!o.names || !o.nameservers?.length) return;
  const resolve = o.resolve ??
    ((name: string, server: string) =>
      Deno.resolveDns(name, "A", { nameServer: { ipAddr: server, port: 53 } }));
  let changed = false;
  for (const [name, known] of o.names) {
    let found: string[] | undefined;
    for (const server of o.nameservers) {
      found = await resolve(name, server).catch(() => undefined);
      if (found?.length) break;
    }
    const fresh = (found ?? []).filter((a) => !known.includes(a) && parseIpv4(a) !== undefined);
    const pinned: string[] = [];
    for (const a of fresh) if (await keeper.adopt(a)) pinned.push(a);
    if (pinned.length) {
      o.names.set(name, [...pinned, ...known]);
      changed = true;
    }
  }
  if (changed) o.onNames?.(o.names);
}
