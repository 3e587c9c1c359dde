/**
 * Choosing how packets travel: ssm-proxy-agent when it answers (striped Port sessions to its
 * port), else agentless (our netstack over remote-host sessions). Both end as a `Link`: what the
 * interface, routes and DNS need from either mode.
 */
import type { AwsOptions } from "../aws/config.ts";
import type { ResolvedTarget } from "../aws/targets.ts";
import type { AgentlessTunnel } from "../netstack/tunnel.ts";
import { messageSize } from "../ssm/message_size.ts";
import { PortSession } from "../ssm/session.ts";
import { Tunnel } from "../tunnel/client.ts";
import type { HealSettings } from "../tunnel/heal_options.ts";
import { AgentUnavailable } from "../tunnel/stripe.ts";
import {
  AGENTLESS_ADDRESS,
  AGENTLESS_MTU,
  AGENTLESS_PEER,
  agentlessNotice,
  openAgentless,
} from "./agentless.ts";
import type { StartMode } from "./options.ts";
import { identityProver } from "./prover.ts";

/** What either mode brings to the interface, routes and DNS. */
export interface Link {
  tunnel: Tunnel | AgentlessTunnel;
  mode: "agent" | "agentless";
  address: string;
  peer: string;
  /** The tunnel's IPv6 address and the agent's, when the agent hands out IPv6. */
  address6?: string;
  peer6?: string;
  /** Why there is no IPv6 through this link (one line), when there is none. */
  noIpv6?: string;
  mtu: number;
  resolver?: string;
  /** Why DNS cannot work without a resolver, in this mode. */
  noResolver: string;
  /** For the "up" line: stripes, or what agentless carries. */
  summary: string;
  /** Agent mode: what the agent made of this client's IAM identity (tunnel/identity.ts). */
  identity?: string;
  /** Session ids and stream URLs of the first sessions (for the state file, endpoint checks). */
  sessionIds: string[];
  streamUrls: string[];
}

const AGENT_MTU = 1400;

export interface AgentConnect {
  aws: AwsOptions;
  target: ResolvedTarget;
  /** `--spread`: every instance to put stripes on, `target` first; stripe counts are per instance. */
  spread?: ResolvedTarget[];
  /** A fixed count, or `auto` up to maxStripes (default 8). */
  stripes: number | "auto";
  maxStripes?: number;
  agentPort: number;
  heal: HealSettings;
  progress: (line: string) => void;
}

/** A striped tunnel to ssm-proxy-agent; throws AgentUnavailable when nothing usable answers. */
export async function connectAgent(o: AgentConnect): Promise<Link> {
  const ssm = await import("../aws/ssm.ts");
  const targets = o.spread ?? [o.target];
  const first = o.stripes === "auto" ? 1 : o.stripes;
  const max = o.stripes === "auto" ? o.maxStripes ?? 8 : o.stripes;
  const each = o.spread ? " on each" : "";
  o.progress(
    `opening ${first} session${first > 1 ? "s" : ""}${each} to ${
      targets.map(label).join(", ")
    }, agent port ${o.agentPort}${
      o.stripes === "auto" ? `; more as the load needs, up to ${max}${each}` : ""
    }`,
  );
  const sessionIds: string[] = [];
  const streamUrls: string[] = [];
  const tunnel = await Tunnel.connect({
    stripes: o.stripes,
    maxStripes: max,
    agentPort: o.agentPort,
    mtu: AGENT_MTU,
    pingMs: o.heal.keepaliveMs,
    giveUpMs: o.heal.giveUpMs,
    maxSessionMs: o.heal.maxSessionMs,
    log: o.progress,
    ...(o.spread ? { instances: o.spread.map((t) => t.instanceId) } : {}),
    target: o.target.instanceId,
    // Agents that check identities challenge the HELLO; the proof is signed here, per nonce.
    prover: identityProver(o.aws),
    openSession: async (_stripe, instance) => {
      const grant = await ssm.startSession(o.aws, {
        target: targets[instance].instanceId,
        documentName: "AWS-StartPortForwardingSession",
        parameters: { portNumber: [String(o.agentPort)] },
      });
      // Only the first sessions: the tunnel's later ones are listed by the ticker.
      if (sessionIds.length < first * targets.length) {
        streamUrls.push(grant.streamUrl);
        sessionIds.push(grant.sessionId);
      }
      return PortSession.open({
        grant,
        api: ssm.sessionApi(o.aws),
        log: o.progress,
        maxPayload: messageSize(),
        // Tens of ms of data in flight, not seconds: a tunnel must drop, not buffer (DESIGN §1).
        window: 512,
        windowBytes: 512 * 1024,
      });
    },
  });
  const w = tunnel.welcome;
  return {
    tunnel,
    mode: "agent",
    address: w.address,
    peer: w.peer,
    ...(o.spread ? { noIpv6: "--spread carries IPv4 only" } : ipv6Of(w)),
    mtu: w.mtu,
    ...(w.resolver ? { resolver: w.resolver } : {}),
    noResolver:
      "the agent did not report a VPC resolver: set `resolver` in the agent's config (/etc/ssm-proxy-agent.yaml)",
    summary:
      (o.stripes === "auto"
        ? `stripes auto (1 to ${max}${each})`
        : `${o.stripes} stripe${o.stripes > 1 ? "s" : ""}${each}`) + spreadSummary(tunnel),
    identity: tunnel.identity(),
    sessionIds,
    streamUrls,
  };
}

/** The Welcome's IPv6 half: both addresses, or the agent's reason (an old agent says nothing). */
function ipv6Of(
  w: { address6?: string; peer6?: string; ipv6Off?: string },
): Pick<Link, "address6" | "peer6" | "noIpv6"> {
  if (w.address6 && w.peer6) return { address6: w.address6, peer6: w.peer6 };
  return {
    noIpv6: w.ipv6Off ??
      "the agent hands out no IPv6 address (it is older than IPv6 support: ssm-proxy agent install updates it)",
  };
}

function label(t: ResolvedTarget): string {
  return t.name ? `${t.instanceId} (${t.name})` : t.instanceId;
}

/** ", spread over 2 instances: i-a 100.64.0.2, i-b 100.65.0.2" (those that connected). */
function spreadSummary(t: Tunnel): string {
  const inst = t.stats().instances;
  if (!inst) return "";
  const list = inst.map((i) => `${i.instanceId} ${i.address}`).join(", ");
  return `, spread over ${inst.length} instance${inst.length === 1 ? "" : "s"}: ${list}`;
}

export interface AgentlessOpen {
  aws: AwsOptions;
  target: ResolvedTarget;
  /** DNS is wanted and must work (explicit --dns-domain). */
  needDns: boolean;
  resolver?: string;
  upstreams: string[];
  idleSessionMs?: number;
  /** `--policy-path`: the team's rules in Parameter Store. */
  policyPath?: string;
  progress: (line: string) => void;
}

export async function openAgentlessLink(o: AgentlessOpen): Promise<Link> {
  const a = await openAgentless(o.aws, o.target, {
    wantDns: o.needDns,
    ...(o.resolver ? { resolver: o.resolver } : {}),
    progress: o.progress,
    idleSessionMs: o.idleSessionMs,
    dnsUpstreams: o.upstreams,
    ...(o.policyPath ? { policyPath: o.policyPath } : {}),
  });
  return {
    tunnel: a.tunnel,
    mode: "agentless",
    address: AGENTLESS_ADDRESS,
    peer: AGENTLESS_PEER,
    noIpv6: "agentless mode carries IPv4 only",
    mtu: AGENTLESS_MTU,
    ...(a.resolver ? { resolver: a.resolver } : {}),
    noResolver: "the VPC resolver is unknown",
    summary: `agentless (TCP and DNS)${a.policy ? `; ${a.policy}` : ""}`,
    sessionIds: [],
    streamUrls: [],
  };
}

/**
 * The agent, when the mode allows it: `agent` (and `auto --install-agent`) insist, through
 * `offer` (which may install it); `auto` tries once and returns undefined to go agentless.
 */
export async function tryAgent(
  mode: StartMode,
  installAgent: boolean,
  connect: () => Promise<Link>,
  offer: (connect: () => Promise<Link>) => Promise<Link>,
  progress: (line: string) => void,
  instanceId: string,
): Promise<Link | undefined> {
  if (mode === "agentless") return undefined;
  if (mode === "agent" || installAgent) return await offer(connect);
  try {
    return await connect();
  } catch (e) {
    if (!(e instanceof AgentUnavailable)) throw e;
    progress(agentlessNotice(instanceId, e.message.replace(/ \(ssm-proxy agent install.*$/, "")));
    return undefined;
  }
}
