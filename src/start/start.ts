/**
 * `start` as steps: clean stale state, resolve the target, plan routes and DNS (discovered from
 * the VPC unless given) while connecting to the agent, fall back to agentless, bring the
 * interface up, then serve. The caller (cli/start.ts) presents; nothing here reads a terminal.
 * Finding the target and discovery run in a child process (plan_child.ts): nothing reachable
 * from here may load the EC2 or Route 53 clients (tests/start/plan_child_test.ts checks).
 */
import type { AwsOptions } from "../aws/config.ts";
import type { ResolvedTarget } from "../aws/targets.ts";
import type { Discovery } from "../discover/discover.ts";
import { NETWORK_UNDO_MS, raceAbort, within } from "../signals.ts";
import { ExitCode, UserError } from "../errors.ts";
import type { NetPlatform } from "../net/types.ts";
import { endpointAddresses } from "../tunnel/checks.ts";
import { cleanupStale, liveStates, recoverLeftovers } from "../tunnel/stale.ts";
import { readState, type TunnelState } from "../tunnel/state.ts";
import { bringUp, type Up } from "./apply.ts";
import { gatewayPins, originalNameservers, planPins, tunnelEndpoints } from "./full_tunnel.ts";
import { connectAgent, type Link, openAgentlessLink, tryAgent } from "./link.ts";
import type { CheckedStart, StartOptions } from "./options.ts";
import { dropEndpointConflicts, type NetworkPlan, planNetwork, wantDiscovery } from "./plan.ts";
import { type PlanChild, planInChild } from "./plan_remote.ts";
import type { Located } from "./plan_wire.ts";

export interface StartHooks {
  progress(line: string): void;
  /** The plan and the link it will use, before the system changes. */
  showPlan(target: ResolvedTarget, plan: NetworkPlan, link: Link): void;
  /** Connects to the agent, or installs it when the user agrees (cli/agent_offer.ts). */
  offerAgent(target: ResolvedTarget, connect: () => Promise<Link>): Promise<Link>;
  /**
   * Ctrl-C / SIGTERM: bring-up stops at once (rejecting with the signal's reason) and undoes
   * what it got to; network undo is bounded so the process can exit within 1 s.
   */
  signal?: AbortSignal;
}

export interface Planned {
  target: ResolvedTarget;
  region: string;
  plan: NetworkPlan;
  running: TunnelState[];
}

/** Tunnels still running (after cleaning up dead ones); refuses a second tunnel of one name. */
export async function runningTunnels(name: string): Promise<TunnelState[]> {
  await recoverLeftovers();
  const old = await readState(name);
  if (old) await cleanupStale(old);
  const running = await liveStates();
  const same = running.find((s) => s.name === name);
  if (same) {
    throw new UserError(
      `a tunnel named "${name}" is already running (pid ${same.pid}): stop it with ssm-proxy stop ${name}, or pick another name`,
      ExitCode.Usage,
    );
  }
  return running;
}

/**
 * The planning child (plan_child.ts) for this start: it resolves the target, then discovers what
 * is left to discover, so the EC2 and Route 53 clients never load into this process.
 */
function askChild(
  o: StartOptions,
  c: CheckedStart,
  progress: (line: string) => void,
  signal?: AbortSignal,
): PlanChild {
  return planInChild({
    kind: "plan",
    aws: awsOf(o),
    target: o.target,
    spread: o.spread === true,
    wake: o.wake === true,
    discover: wantDiscovery(c),
  }, { progress, ...(signal ? { signal } : {}) });
}

/** The plan once the child's discovery is in, checked against this host's routes and tunnels. */
async function planFor(
  o: StartOptions,
  c: CheckedStart,
  net: NetPlatform,
  running: TunnelState[],
  at: Located,
  discovered: Promise<Discovery | undefined>,
): Promise<NetworkPlan> {
  const [found, mustReach] = await Promise.all([discovered, ssmEndpoint(at.region)]);
  return await planNetwork(c, found, {
    target: at.target,
    force: o.force === true,
    routes: net.routes,
    running,
    mustReach,
  });
}

/** Everything `--dry-run` shows: target, routes and DNS with their reasons. No changes. */
export async function planStart(
  o: StartOptions,
  c: CheckedStart,
  net: NetPlatform,
  running: TunnelState[],
  progress: (line: string) => void,
): Promise<Planned> {
  const child = askChild(o, c, progress);
  const at = await child.located;
  let plan = await planFor(o, c, net, running, at, child.discovered);
  // Without a session yet its stream's address is unknown: the API endpoints show what is pinned.
  if (plan.allTraffic) plan = await withPins(plan, net, running, at.region, []);
  return { target: at.target, region: at.region, plan, running };
}

/**
 * Up to the point of serving: plan and agent connection run together (the discovery calls and
 * the session handshake overlap), then agentless if the agent is not there, then the interface.
 */
export async function bringUpStart(
  o: StartOptions,
  c: CheckedStart,
  net: NetPlatform,
  running: TunnelState[],
  hooks: StartHooks,
): Promise<{ up: Up; link: Link; planned: Planned }> {
  const signal = hooks.signal;
  const guard = <T>(p: Promise<T>): Promise<T> => (signal ? raceAbort(p, signal) : p);
  // Before any AWS client exists: a full tunnel's clients resolve its endpoints from the pins.
  if (c.allTraffic) await (await import("../net/pinned_names.ts")).usePinnedNames();
  const child = askChild(o, c, hooks.progress, signal);
  // While the child finds the target, load the client every session is opened with (~0.3 s).
  import("@aws-sdk/client-ssm").catch(() => {});
  const at = await guard(child.located);
  const { target, spread, region } = at;
  const aws = awsOf(o);
  const planning = planFor(o, c, net, running, at, child.discovered);
  planning.catch(() => {}); // awaited below; a rejection before then is not unhandled
  const connect = () =>
    connectAgent({
      aws,
      target,
      ...(spread ? { spread } : {}),
      stripes: o.stripes,
      maxStripes: o.maxStripes,
      agentPort: o.agentPort,
      heal: c.heal,
      progress: hooks.progress,
    });
  let link: Link | undefined;
  // A link still being made when a signal comes: closed too if it arrives while we undo.
  let making: Promise<Link | undefined> | undefined;
  const made = <T extends Link | undefined>(p: Promise<T>): Promise<T> => {
    making = p;
    return guard(p);
  };
  try {
    link = await made(tryAgent(
      c.mode,
      o.installAgent === true,
      connect,
      (conn) => hooks.offerAgent(target, conn),
      hooks.progress,
      target.instanceId,
    ));
    let plan = await guard(planning);
    if (plan.allTraffic && link) {
      plan = await guard(withPins(plan, net, running, region, link.streamUrls));
      (await import("../net/pinned_names.ts")).pinNames(plan.pinnedNames ?? new Map());
    } else if (link && !o.force) {
      plan = dropEndpointConflicts(plan, await guard(endpointAddresses(link.streamUrls)), c.cidrs);
    }
    link ??= await made(openAgentlessLink({
      aws,
      target,
      needDns: plan.dnsRequired,
      ...(plan.resolver ? { resolver: plan.resolver } : {}),
      upstreams: c.upstreams,
      idleSessionMs: c.idleSessionMs,
      ...(c.policyPath ? { policyPath: c.policyPath } : {}),
      progress: hooks.progress,
    }));
    hooks.showPlan(target, plan, link);
    signal?.throwIfAborted();
    // Local and quick: a signal meanwhile is seen once it is done, and undone at once.
    const up = await bringUp(net, link, plan, { name: o.name, target, progress: hooks.progress });
    if (signal?.aborted) {
      await up.undo();
      throw signal.reason;
    }
    return { up, link, planned: { target, region, plan, running } };
  } catch (e) {
    // bringUp closes the tunnel itself when it fails; closing twice is harmless.
    const undo = Promise.all([
      planning.catch(() => {}),
      link?.tunnel.close().catch(() => {}),
      making?.then((l) => l?.tunnel.close()).catch(() => {}),
    ]);
    // After a signal the network side gets a bounded time: sessions left open time out.
    if (signal?.aborted) await within(undo, NETWORK_UNDO_MS);
    else await undo;
    throw e;
  }
}

/** A full tunnel's plan with its pins: the tunnel's own endpoints, through today's path. */
async function withPins(
  plan: NetworkPlan,
  net: NetPlatform,
  running: TunnelState[],
  region: string,
  streamUrls: string[],
): Promise<NetworkPlan> {
  const { endpoints, names } = await tunnelEndpoints(region, streamUrls);
  // Asked later for the endpoints' new addresses (pin_keeper.ts). Not pinned: a server on the
  // LAN is reached there anyway, and any other through the tunnel (a pin would let every app's
  // queries to it leave outside the tunnel).
  const nameservers = await originalNameservers();
  const { pins, notes } = await planPins(net.routes, endpoints, running.map((r) => r.interface));
  // --no-lan routes the LAN into the tunnel: the gateways the pins go through stay on it.
  const all = plan.noLan ? [...gatewayPins(pins), ...pins] : pins;
  return { ...plan, pins: all, pinnedNames: names, nameservers, notes: [...plan.notes, ...notes] };
}

function awsOf(o: StartOptions): AwsOptions {
  return { profile: o.profile, region: o.region };
}

/** The SSM endpoint's addresses: a range holding them would route the tunnel into itself. */
async function ssmEndpoint(region: string) {
  const { endpointFor } = await import("../aws/config.ts");
  return await endpointAddresses([endpointFor("ssm", region)]);
}
