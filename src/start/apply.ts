/**
 * Applying a plan: the interface, its routes, split DNS, and the state file that lets `stop`,
 * `status` and the next run after a crash find all of it. Whatever fails half-way is undone
 * before the error goes up: the system is left as it was.
 */
import { NETWORK_UNDO_MS, within } from "../signals.ts";
import { ExitCode, UserError } from "../errors.ts";
import { contains, parseCidr, parseIpv4 } from "../net/cidr.ts";
import {
  type DnsState,
  type NetPlatform,
  type PinRoute,
  RouteExistsError,
  type Tun,
} from "../net/types.ts";
import { removeState, type TunnelState, writeState } from "../tunnel/state.ts";
import type { Link } from "./link.ts";
import type { NetworkPlan } from "./plan.ts";
import { isIpv6Text } from "../net/cidr6.ts";
import type { ResolvedTarget } from "../aws/targets.ts";

export interface Up {
  tun: Tun;
  state: TunnelState;
  /** Undo routes and DNS, close the tunnel and the interface, forget the state. Idempotent. */
  undo(): Promise<void>;
}

/**
 * The routes to add: the plan's (IPv6 ones only when the link carries IPv6, said in one line
 * otherwise), plus the resolver's own when no planned range holds it.
 */
export function linkRoutes(
  plan: NetworkPlan,
  resolver: string | undefined,
  ipv6: true | string = "no IPv6 on this link",
  progress: (line: string) => void = () => {},
): string[] {
  const all = plan.routes.map((r) => r.cidr);
  const routes = ipv6 === true ? all : all.filter((r) => !isIpv6Text(r));
  if (routes.length < all.length) {
    progress(`IPv6 is not carried (${ipv6}): ${all.filter(isIpv6Text).join(", ")} left out`);
  }
  if (plan.domains.length === 0 || !resolver) return routes;
  const ip = parseIpv4(resolver);
  if (ip === undefined) return routes;
  const holds = routes.some((r) => !isIpv6Text(r) && contains(parseCidr(r), ip));
  return holds ? routes : [...routes, `${resolver}/32`];
}

export async function bringUp(
  net: NetPlatform,
  link: Link,
  plan: NetworkPlan,
  o: { name: string; target: ResolvedTarget; progress: (line: string) => void },
): Promise<Up> {
  const tunnel = link.tunnel;
  let tun: Tun | undefined;
  const added: string[] = [];
  const pinned: PinRoute[] = [];
  let dns: DnsState = { kind: "none", items: [] };
  let undone = false;
  let keeper: { stop(): Promise<void> } | undefined;
  const undo = async () => {
    if (undone) return;
    undone = true;
    // First: a replacement in flight finishes, so the pins removed below are the current ones.
    await keeper?.stop();
    for (const r of [...added].reverse()) await net.routes.delete(r, tun!.name).catch(() => {});
    // After the half-defaults: until they are gone the pins keep the session's path.
    for (const p of pinned) await net.routes.deletePin(p).catch(() => {});
    await net.dns.revert(dns).catch((e) => o.progress((e as Error).message));
    // The tunnel first: agentless mode resets every open connection through the interface, so
    // apps learn at once instead of retransmitting into a device that is gone.
    // Bounded: ending the sessions needs the network, which may be what is gone; they time out.
    await within(tunnel.close(), NETWORK_UNDO_MS);
    tun?.close();
    await removeState(o.name);
  };
  let domains: string[] = [];
  // A full tunnel without IPv6 from the agent still takes ::/1 and 8000::/1 on Linux: IPv6 then
  // goes nowhere instead of around the tunnel (no leak). Elsewhere it is said in one line.
  const sink = plan.allTraffic === true && !link.address6 && Deno.build.os === "linux";
  try {
    tun = await net.openTun({
      name: "ssmp%d",
      mtu: link.mtu,
      address: link.address,
      peer: link.peer,
      ...(link.address6 ? { address6: link.address6 } : sink ? { ipv6Sink: true } : {}),
      prefixLength: 32,
    });
    if (plan.pins?.length) {
      // Recorded before the first change, so a crash from here on is undone by the next run.
      await writeState(
        stateOf(o, link, plan, tun.name, [], plan.pins, dnsNone(), [], "connecting"),
      );
      for (const p of plan.pins) {
        const pin = {
          cidr: p.cidr,
          ifname: p.ifname,
          ...(p.gateway ? { gateway: p.gateway } : {}),
        };
        try {
          await net.routes.addPin(pin);
        } catch (e) {
          // Someone's route to exactly this address (macOS keeps host routes it learned): it
          // already goes outside the tunnel, and it is not ours to remove on stop.
          if (!(e instanceof RouteExistsError)) throw e;
          o.progress(`keep ${p.cidr}: a route of the system's already does; left as it is`);
          continue;
        }
        pinned.push(pin);
      }
    }
    const ipv6 = link.address6 !== undefined || sink || (link.noIpv6 ?? "no IPv6 on this link");
    if (sink) {
      o.progress(
        `IPv6 is not carried (${link.noIpv6}): it is blocked while the full tunnel is up, not sent around it`,
      );
    }
    for (const r of linkRoutes(plan, link.resolver, ipv6, o.progress)) {
      await net.routes.add(r, tun.name);
      added.push(r);
    }
    ({ dns, domains } = await applyDns(net, tun.name, link, plan, o.progress));
  } catch (e) {
    await undo();
    throw e;
  }
  const state = stateOf(o, link, plan, tun.name, added, pinned, dns, domains, "up");
  try {
    await writeState(state);
  } catch (e) {
    await undo();
    throw e;
  }
  if (pinned.length) {
    // The network may change under a full tunnel: its pins follow the new default route.
    const { startPinKeeper } = await import("./pin_keeper.ts");
    const { pinNames } = await import("../net/pinned_names.ts");
    keeper = startPinKeeper({
      routes: net.routes,
      pins: pinned,
      ...(plan.pinnedNames ? { names: new Map(plan.pinnedNames) } : {}),
      nameservers: plan.nameservers ?? [],
      onNames: pinNames,
      onChange: o.progress,
      onPins: (pins) => {
        pinned.splice(0, pinned.length, ...pins);
        state.pins = pins.map((p) => ({ ...p }));
        writeState(state).catch(() => {});
      },
    });
  }
  return { tun, state, undo };
}

function dnsNone(): DnsState {
  return { kind: "none", items: [] };
}

function stateOf(
  o: { name: string; target: ResolvedTarget },
  link: Link,
  plan: NetworkPlan,
  ifname: string,
  routes: string[],
  pins: PinRoute[],
  dns: DnsState,
  domains: string[],
  status: TunnelState["status"],
): TunnelState {
  const now = new Date().toISOString();
  return {
    name: o.name,
    pid: Deno.pid,
    startedAt: now,
    updatedAt: now,
    status,
    mode: link.mode,
    target: o.target,
    interface: ifname,
    address: link.address,
    peer: link.peer,
    ...(link.address6 ? { address6: link.address6 } : {}),
    // What is carried: IPv6 ranges only when the link has IPv6 (linkRoutes).
    cidrs: plan.routes.map((r) => r.cidr).filter((c) => link.address6 || !isIpv6Text(c)),
    routes,
    ...(pins.length ? { pins: pins.map((p) => ({ ...p })) } : {}),
    dns,
    ...(domains.length ? { domains, resolver: link.resolver } : {}),
    sessions: link.sessionIds,
  };
}

/**
 * Split DNS for the plan's domains. Domains the user named must work, or start fails; discovered
 * ones are a convenience: when they cannot be set up, say why in one line and go on.
 */
async function applyDns(
  net: NetPlatform,
  ifname: string,
  link: Link,
  plan: NetworkPlan,
  progress: (line: string) => void,
): Promise<{ dns: DnsState; domains: string[] }> {
  const none = { dns: { kind: "none" as const, items: [] }, domains: [] };
  const domains = plan.domains.map((d) => d.domain);
  if (domains.length === 0) return none;
  if (!link.resolver) {
    if (plan.dnsRequired) {
      throw new UserError(`--dns-domain cannot work: ${link.noResolver}`, ExitCode.Remote);
    }
    progress(`private DNS is off: ${link.noResolver}`);
    return none;
  }
  try {
    const excluded = plan.pins?.map((p) => p.cidr);
    const cfg = { ifname, server: link.resolver, domains, ...(excluded ? { excluded } : {}) };
    return { dns: await net.dns.apply(cfg), domains };
  } catch (e) {
    if (plan.dnsRequired || !(e instanceof UserError)) throw e;
    progress(`private DNS is off: ${e.message} (routes work; --no-dns silences this)`);
    return none;
  }
}
