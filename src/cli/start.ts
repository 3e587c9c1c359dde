/**
 * `ssm-proxy start`: sessions to the agent, then interface, routes and DNS; a live line in the
 * foreground; everything undone on Ctrl-C / SIGTERM, and by the next command after a crash.
 */
import type { AwsOptions } from "../aws/config.ts";
import { ExitCode, UserError } from "../errors.ts";
import type { NetPlatform, Tun } from "../net/types.ts";
import { PortSession } from "../ssm/session.ts";
import {
  checkOtherTunnels,
  checkRouteConflicts,
  endpointAddresses,
  parseCidrs,
} from "../tunnel/checks.ts";
import { Tunnel } from "../tunnel/client.ts";
import { ClockWatch, localInterfaces, NetworkWatch } from "../tunnel/heal.ts";
import { healSettings } from "../tunnel/heal_options.ts";
import {
  readState,
  removeState,
  type TunnelState,
  validName,
  writeState,
} from "../tunnel/state.ts";
import { messageSize } from "../ssm/message_size.ts";
import { LiveLine, rates } from "./live.ts";
import { requireRoot, useInvokingUsersAwsConfig } from "./privileges.ts";
import { cleanupStale, liveStates } from "./stop.ts";
import { V8_FLAGS } from "../runtime.ts";
import { logTo, spawnDetached } from "./background.ts";
import { AgentUnavailable } from "../tunnel/stripe.ts";
import { contains, parseIpv4 } from "../net/cidr.ts";
import type { AgentlessTunnel } from "../netstack/tunnel.ts";
import {
  AGENTLESS_ADDRESS,
  AGENTLESS_MTU,
  AGENTLESS_PEER,
  agentlessNotice,
  openAgentless,
  parseUpstreams,
  type StartMode,
} from "./start_agentless.ts";

export interface StartOptions extends AwsOptions {
  target: string;
  cidr: string[];
  dnsDomain?: string[];
  /** agent: ssm-proxy-agent only; agentless: TCP and DNS from the laptop; auto: agent if it answers. */
  mode?: StartMode;
  /** Agentless: close a destination's unused session after this long. */
  sessionIdleSeconds?: number;
  /** Agentless: resolvers to relay DNS to before the VPC resolver itself. */
  dnsUpstream?: string[];
  stripes: number;
  name: string;
  agentPort: number;
  background?: boolean;
  force?: boolean;
  /** Start a stopped instance and wait until it is online. */
  wake?: boolean;
  /** Install ssm-proxy-agent when the instance lacks it (or has one too old), without asking. */
  installAgent?: boolean;
  /** The agent binary for --install-agent (default: next to ssm-proxy). */
  agentBinary?: string;
  /** Healing settings (heal_options.ts); the environment fills in what the CLI does not pass. */
  keepaliveSeconds?: number;
  giveUpSeconds?: number;
  maxSessionSeconds?: number;
}

const DEFAULT_MTU = 1400;

export async function runStart(
  opts: Omit<StartOptions, "target"> & { target?: string },
): Promise<void> {
  requireRoot("ssm-proxy start");
  if (!validName(opts.name)) {
    throw new UserError(
      `--name ${JSON.stringify(opts.name)}: use up to 32 of a-z, 0-9, - and _`,
      ExitCode.Usage,
    );
  }
  const cidrs = parseCidrs(opts.cidr);
  if (!Number.isInteger(opts.stripes) || opts.stripes < 1 || opts.stripes > 16) {
    throw new UserError("--stripes must be a whole number from 1 to 16", ExitCode.Usage);
  }
  const domains = (opts.dnsDomain ?? []).map((d) => d.replace(/^\.+|\.+$/g, "").toLowerCase());
  for (const d of domains) {
    if (!/^[a-z0-9-]+(\.[a-z0-9-]+)*$/.test(d)) {
      throw new UserError(`--dns-domain ${JSON.stringify(d)} is not a domain name`, ExitCode.Usage);
    }
  }
  const heal = healSettings(opts);
  parseUpstreams(opts.dnsUpstream ?? []);
  const idle = opts.sessionIdleSeconds;
  if (idle !== undefined && (!Number.isFinite(idle) || idle < 1 || idle > 86_400)) {
    throw new UserError(
      "--session-idle-seconds must be a number of seconds from 1 to 86400",
      ExitCode.Usage,
    );
  }
  // Picked before going to the background, which has no terminal to ask on; with the sudo
  // user's AWS config, like everything else start does.
  if (opts.target === undefined) useInvokingUsersAwsConfig();
  const o: StartOptions = {
    ...opts,
    target: opts.target ??
      await (await import("./picker.ts")).pickTarget(
        { profile: opts.profile, region: opts.region },
        opts,
      ),
  };
  if (o.background) return await startInBackground(o);

  const logFile = Deno.env.get("SSM_PROXY_LOG");
  if (logFile) logTo(logFile);
  useInvokingUsersAwsConfig();
  const old = await readState(o.name);
  if (old) await cleanupStale(old);
  const running = await liveStates();
  const same = running.find((s) => s.name === o.name);
  if (same) {
    throw new UserError(
      `a tunnel named "${o.name}" is already running (pid ${same.pid}): stop it with ssm-proxy stop ${o.name}, or pick another --name`,
      ExitCode.Usage,
    );
  }
  checkOtherTunnels(cidrs, running);

  const { netPlatform } = await import("../net/platform.ts");
  const net = await netPlatform();
  const aws: AwsOptions = { profile: o.profile, region: o.region };
  const progress = (s: string) => console.error(`ssm-proxy: ${s}`);

  const { resolveTarget } = await import("../aws/targets.ts");
  const ssm = await import("../aws/ssm.ts");
  const { endpointFor, explicitRegion } = await import("../aws/config.ts");
  progress(`resolving ${o.target}`);
  const target = o.wake
    ? await (await import("../aws/wake.ts")).resolveTargetWaking(aws, o.target, progress)
    : await resolveTarget(aws, o.target);
  const region = explicitRegion(aws) ?? "us-east-1";
  if (!o.force) {
    const reach = await endpointAddresses([endpointFor("ssm", region)]);
    await checkRouteConflicts(cidrs, net.routes, reach);
  }

  const streamUrls: string[] = [];
  const sessionIds: string[] = [];
  const mode = o.mode ?? "auto";
  const connectAgent = () => {
    progress(
      `opening ${o.stripes} session${o.stripes > 1 ? "s" : ""} to ${target.instanceId}${
        target.name ? ` (${target.name})` : ""
      }, agent port ${o.agentPort}`,
    );
    // A second try (after installing the agent) lists only its own sessions.
    streamUrls.length = 0;
    sessionIds.length = 0;
    return Tunnel.connect({
      stripes: o.stripes,
      agentPort: o.agentPort,
      mtu: DEFAULT_MTU,
      pingMs: heal.keepaliveMs,
      giveUpMs: heal.giveUpMs,
      maxSessionMs: heal.maxSessionMs,
      log: progress,
      openSession: async () => {
        const grant = await ssm.startSession(aws, {
          target: target.instanceId,
          documentName: "AWS-StartPortForwardingSession",
          parameters: { portNumber: [String(o.agentPort)] },
        });
        // Only the first sessions: the tunnel's later ones are listed by the ticker.
        if (sessionIds.length < o.stripes) {
          streamUrls.push(grant.streamUrl);
          sessionIds.push(grant.sessionId);
        }
        return PortSession.open({
          grant,
          api: ssm.sessionApi(aws),
          log: progress,
          maxPayload: messageSize(),
          // Tens of ms of data in flight, not seconds: a tunnel must drop, not buffer (DESIGN §1).
          window: 512,
          windowBytes: 512 * 1024,
        });
      },
    });
  };
  const { connectOrInstall, terminalAsk } = await import("./agent_offer.ts");
  const offer = {
    aws,
    target,
    install: o.installAgent,
    binary: o.agentBinary,
    progress,
    ask: terminalAsk(),
  };
  let agentTunnel: Tunnel | undefined;
  if (mode === "agent" || (mode === "auto" && o.installAgent)) {
    agentTunnel = await connectOrInstall(connectAgent, offer);
  } else if (mode === "auto") {
    try {
      agentTunnel = await connectAgent();
    } catch (e) {
      if (!(e instanceof AgentUnavailable)) throw e;
      progress(
        agentlessNotice(target.instanceId, e.message.replace(/ \(ssm-proxy agent install.*$/, "")),
      );
    }
  }
  let link: Link;
  if (agentTunnel) {
    const w = agentTunnel.welcome;
    link = {
      tunnel: agentTunnel,
      mode: "agent",
      address: w.address,
      peer: w.peer,
      mtu: w.mtu,
      resolver: w.resolver,
      noResolver:
        "the agent did not report a VPC resolver, so --dns-domain cannot work: set `resolver` in the agent's config",
      routes: cidrs.map((c) => c.text),
      summary: `${o.stripes} stripe${o.stripes > 1 ? "s" : ""}`,
    };
  } else {
    const a = await openAgentless(aws, target, {
      wantDns: domains.length > 0,
      progress,
      idleSessionMs: o.sessionIdleSeconds === undefined ? undefined : o.sessionIdleSeconds * 1000,
      dnsUpstreams: parseUpstreams(o.dnsUpstream ?? []),
    });
    const inside = a.resolver && cidrs.some((c) => contains(c, parseIpv4(a.resolver!) ?? 0));
    link = {
      tunnel: a.tunnel,
      mode: "agentless",
      address: AGENTLESS_ADDRESS,
      peer: AGENTLESS_PEER,
      mtu: AGENTLESS_MTU,
      resolver: a.resolver,
      noResolver: "the VPC resolver is unknown, so --dns-domain cannot work",
      // The resolver must reach the tunnel even when the CIDRs leave it out.
      routes: [...cidrs.map((c) => c.text), ...(a.resolver && !inside ? [`${a.resolver}/32`] : [])],
      summary: "agentless (TCP and DNS)",
    };
  }
  const tunnel = link.tunnel;

  let tun: Tun | undefined;
  const added: string[] = [];
  let dnsState: TunnelState["dns"] = { kind: "none", items: [] };
  const undo = async () => {
    for (const r of added.reverse()) await net.routes.delete(r, tun!.name).catch(() => {});
    await net.dns.revert(dnsState).catch(() => {});
    // The tunnel first: agentless mode resets every open connection through the interface, so
    // apps learn at once instead of retransmitting into a device that is gone.
    await tunnel.close();
    tun?.close();
    await removeState(o.name);
  };
  try {
    if (!o.force && streamUrls.length) {
      await checkRouteConflicts(cidrs, net.routes, await endpointAddresses(streamUrls));
    }
    tun = await net.openTun({
      name: "ssmp%d",
      mtu: link.mtu,
      address: link.address,
      peer: link.peer,
      prefixLength: 32,
    });
    for (const r of link.routes) {
      await net.routes.add(r, tun.name);
      added.push(r);
    }
    if (domains.length) {
      if (!link.resolver) throw new UserError(link.noResolver, ExitCode.Remote);
      dnsState = await net.dns.apply({ ifname: tun.name, server: link.resolver, domains });
    }
  } catch (e) {
    await undo();
    throw e;
  }

  const state: TunnelState = {
    name: o.name,
    pid: Deno.pid,
    startedAt: new Date().toISOString(),
    updatedAt: new Date().toISOString(),
    status: "up",
    mode: link.mode,
    target,
    interface: tun.name,
    address: link.address,
    peer: link.peer,
    cidrs: cidrs.map((c) => c.text),
    routes: added,
    dns: dnsState,
    sessions: sessionIds,
  };
  await writeState(state);
  console.log(
    `ssm-proxy: tunnel "${o.name}" up: ${
      state.cidrs.join(", ")
    } via ${tun.name} (${link.address}) -> ${target.instanceId}, ${link.summary}`,
  );
  if (link.resolver) {
    console.log(
      `ssm-proxy: VPC resolver ${link.resolver}${
        domains.length ? ` for ${domains.join(", ")}` : ""
      }`,
    );
  }

  await serve(o.name, state, tunnel, tun, net, undo);
}

/** What either mode brings to the interface, routes and DNS. */
interface Link {
  tunnel: Tunnel | AgentlessTunnel;
  mode: "agent" | "agentless";
  address: string;
  peer: string;
  mtu: number;
  resolver?: string;
  /** Why --dns-domain cannot work without a resolver, in this mode. */
  noResolver: string;
  routes: string[];
  /** For the "up" line: stripes, or what agentless carries. */
  summary: string;
}

async function serve(
  name: string,
  state: TunnelState,
  tunnel: Tunnel | AgentlessTunnel,
  tun: Tun,
  _net: NetPlatform,
  undo: () => Promise<void>,
) {
  const stop = Promise.withResolvers<string>();
  const sigs = (["SIGINT", "SIGTERM", "SIGHUP"] as const).map((s) => {
    const h = () => (s === "SIGHUP" ? undefined : stop.resolve(s)); // survive the terminal closing
    Deno.addSignalListener(s, h);
    return [s, h] as const;
  });
  const live = new LiveLine(Deno.stderr.isTerminal());
  let last = { t: performance.now(), ...tunnel.stats() };
  const clock = new ClockWatch();
  // Other tunnels' interfaces coming and going are not a network change for this one.
  const network = new NetworkWatch((n) => n === tun.name || n.startsWith("ssmp"));
  const ticker = setInterval(async () => {
    const jump = clock.tick(Date.now(), performance.now());
    if (jump !== undefined) {
      tunnel.recover(`the clock jumped ${Math.round(jump / 1000)} s (sleep or clock change)`);
    } else if (network.tick(localInterfaces())) {
      tunnel.recover("the local network changed");
    }
    const now = { t: performance.now(), ...tunnel.stats() };
    const r = rates(last, now);
    last = now;
    const { t: _t, ...stats } = now;
    state.stats = { ...stats, ...r };
    const h = tunnel.health();
    state.status = h.state;
    state.sessions = h.sessions;
    state.lastError = h.lastError;
    state.health = {
      reconnects: h.reconnects,
      healingMs: h.healingMs,
      ...(h.maxSessionMs !== undefined ? { maxSessionMs: h.maxSessionMs } : {}),
    };
    if ("agentless" in tunnel) state.agentless = tunnel.agentless();
    state.updatedAt = new Date().toISOString();
    live.show(state);
    await writeState(state).catch(() => {});
  }, 1000);
  const pump = tunnel.run(tun);
  const outcome = await Promise.race([
    stop.promise.then((sig) => ({ sig })),
    tunnel.ended.then((reason) => ({ reason })),
  ]);
  clearInterval(ticker);
  live.clear();
  for (const [s, h] of sigs) Deno.removeSignalListener(s, h);
  await undo();
  await pump.catch(() => {});
  if ("sig" in outcome) {
    console.error(
      `ssm-proxy: tunnel "${name}" stopped (${outcome.sig}); routes${
        state.dns.kind !== "none" ? ", DNS" : ""
      } and interface removed`,
    );
    return;
  }
  throw new UserError(
    `tunnel "${name}" went down: ${outcome.reason}; routes and interface removed`,
    ExitCode.Remote,
  );
}

/** Re-run this command detached, and return once its state file says it is up. */
async function startInBackground(o: StartOptions): Promise<void> {
  const { stateDir } = await import("../tunnel/state.ts");
  await Deno.mkdir(stateDir(), { recursive: true });
  const log = `${stateDir()}/${o.name}.log`;
  const args = Deno.args.filter((a) => a !== "-d" && a !== "--background");
  if (!Deno.args.some((a) => a === "-t" || a.startsWith("--target"))) {
    args.push("--target", o.target);
  }
  const self = Deno.mainModule.startsWith("file:") && !Deno.execPath().endsWith("/ssm-proxy")
    ? ["run", "-A", `--v8-flags=${V8_FLAGS}`, new URL(Deno.mainModule).pathname]
    : [];
  const { pid, state: s } = await spawnDetached({
    command: Deno.execPath(),
    args: [...self, ...args],
    env: { SSM_PROXY_LOG: log },
    log,
    what: `tunnel "${o.name}"`,
    ready: async (pid) => {
      const s = await readState(o.name);
      return s && s.pid === pid && s.status === "up" ? s : undefined;
    },
  });
  console.log(
    `ssm-proxy: tunnel "${o.name}" up in the background (pid ${pid}): ${
      s.cidrs.join(", ")
    } via ${s.interface}; log ${log}`,
  );
}
