/**
 * `start` without ssm-proxy-agent on the instance (DESIGN §9): the laptop terminates TCP itself
 * and carries each connection as a stream of a remote-host Port session. Here: the one line that
 * says what agentless carries, the VPC resolver, and the tunnel's addresses.
 */
import type { AwsOptions } from "../aws/config.ts";
import type { ResolvedTarget } from "../aws/targets.ts";
import { ExitCode, UserError } from "../errors.ts";
import { AgentlessTunnel } from "../netstack/tunnel.ts";
import { localInterfaces } from "../tunnel/heal.ts";
import { PortSession } from "../ssm/session.ts";
import { messageSize } from "../ssm/message_size.ts";
import {
  agentlessPolicy,
  awsInputs,
  DEFAULT_POLICY_PATH,
  type PolicyInputs,
} from "../policy/agentless_policy.ts";

/**
 * The laptop's end of an agentless tunnel. Nothing on the wire carries it (connections end on
 * the laptop), so any address works that no VPC uses: the benchmarking range (RFC 2544).
 */
export const AGENTLESS_ADDRESS = "198.18.0.1";
export const AGENTLESS_PEER = "198.18.0.2";

/**
 * Agentless packets never leave this machine (connections end in our netstack), so the MTU need
 * not fit any real link: 16 KiB cuts per-packet costs (TUN writes, parsing) by an order of
 * magnitude, measured at 1.4–2× the throughput of 1400 through the emulator. macOS keeps 1400
 * until a large utun MTU has been seen working on a real Mac.
 */
export const AGENTLESS_MTU = Deno.build.os === "linux" ? 16384 : 1400;

/** Said once when `auto` falls back, so nobody wonders why ping fails. */
export function agentlessNotice(instanceId: string, why: string): string {
  return `${why}; running agentless: TCP and DNS are carried, UDP and ping need the agent (ssm-proxy agent install --target ${instanceId})`;
}

export interface AgentlessStart {
  tunnel: AgentlessTunnel;
  /** The VPC resolver apps query, when known. */
  resolver?: string;
  /** The team's rules this laptop applies, in one line; absent when none are. */
  policy?: string;
}

export async function openAgentless(
  aws: AwsOptions,
  target: ResolvedTarget,
  o: {
    wantDns: boolean;
    /** The VPC resolver when discovery already found it (saves two EC2 calls). */
    resolver?: string;
    progress: (line: string) => void;
    idleSessionMs?: number;
    dnsUpstreams?: string[];
    /** Parameter Store path of the team's rules (default DEFAULT_POLICY_PATH). */
    policyPath?: string;
    /** Tests: the rules and identity instead of Parameter Store and STS. */
    policyInputs?: PolicyInputs;
  },
): Promise<AgentlessStart> {
  const ssm = await import("../aws/ssm.ts");
  const path = o.policyPath ?? DEFAULT_POLICY_PATH;
  const inputs = o.policyInputs ?? awsInputs(aws, path);
  // The rules load while the resolver is found; only compiling them needs the resolver.
  const rulesRead = inputs.rules();
  rulesRead.catch(() => {}); // awaited below; not unhandled meanwhile
  const resolver = o.resolver ?? await findResolver(aws, target, o);
  const policy = await agentlessPolicy(path, { ...inputs, rules: () => rulesRead }, {
    addresses: `${AGENTLESS_ADDRESS.replace(/\.\d+$/, ".0")}/30`,
    ...(resolver ? { resolver } : {}),
    progress: o.progress,
  });
  const tunnel = new AgentlessTunnel({
    ...(policy ? { allowPacket: policy.allowPacket } : {}),
    resolvers: resolver ? [resolver] : [],
    localAddresses: localAddresses(),
    log: o.progress,
    idleSessionMs: o.idleSessionMs,
    dnsUpstreams: o.dnsUpstreams,
    openSession: async (dst) => {
      const grant = await ssm.startSession(aws, {
        target: target.instanceId,
        documentName: "AWS-StartPortForwardingSessionToRemoteHost",
        parameters: { host: [dst.host], portNumber: [String(dst.port)] },
      });
      return await PortSession.open({
        grant,
        api: ssm.sessionApi(aws),
        log: o.progress,
        maxPayload: messageSize(),
      });
    },
  });
  return {
    tunnel,
    ...(resolver ? { resolver } : {}),
    ...(policy ? { policy: policy.summary } : {}),
  };
}

/** The VPC's base+2 through EC2; without it DNS is off, which only --dns-domain must have. */
async function findResolver(
  aws: AwsOptions,
  target: ResolvedTarget,
  o: { wantDns: boolean; progress: (line: string) => void },
): Promise<string | undefined> {
  // Through the planning child: EC2's client must not load into the tunnel process (issue 13).
  const { vpcResolverInChild } = await import("./plan_remote.ts");
  let found: string | undefined;
  let why = "";
  try {
    found = await vpcResolverInChild(aws, target.instanceId);
    if (!found) why = `found no VPC for ${target.instanceId}`;
  } catch (e) {
    why = (e as Error).message;
  }
  if (found) return found;
  if (o.wantDns) {
    throw new UserError(
      `--dns-domain needs the VPC resolver, but ${why}; start without --dns-domain, or use the agent (--mode agent)`,
      ExitCode.Remote,
    );
  }
  o.progress(`private DNS is off: ${why}`);
  return undefined;
}

/** This host's own addresses plus the tunnel's: the only sources agentless mode serves. */
function localAddresses(): string[] {
  const out = new Set([AGENTLESS_ADDRESS]);
  for (const i of localInterfaces()) out.add(i.address.replace(/%.*$/, ""));
  return [...out];
}
