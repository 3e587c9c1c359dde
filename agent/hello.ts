/**
 * Answering a HELLO (DESIGN §3): version negotiation and the WELCOME contents. Pure.
 */
import {
  chooseVersion,
  type Hello,
  type Policy as WirePolicy,
  PROTOCOL_VERSION,
  type VerifiedIdentity,
  type Welcome,
  type WireErrorBody,
} from "../src/tunnel/wire.ts";

export const SUPPORTED_VERSIONS = [PROTOCOL_VERSION];

/** The version to speak, or the ERROR body that says what we speak instead. */
export function negotiate(
  h: Hello,
  supported: number[] = SUPPORTED_VERSIONS,
): { version: number } | { error: WireErrorBody } {
  const version = chooseVersion(h.versions, supported);
  if (version !== undefined) return { version };
  return {
    error: {
      code: "unsupported-version",
      message: `client speaks protocol ${JSON.stringify(h.versions)}, this agent speaks ${
        JSON.stringify(supported)
      }: upgrade the older side`,
      versions: supported,
    },
  };
}

export interface WelcomeParams {
  version: number;
  address: string;
  agentAddress: string;
  agentMtu: number;
  resolver?: string;
  policy: WirePolicy;
  agentVersion: string;
  /**
   * Only for a hello that asked for FEATURE_IPV6: the tunnel's IPv6 addresses, or why there are
   * none. Clients that did not ask never see either.
   */
  ipv6?: { address6: string; peer6: string } | { off: string };
  /** The principal this stripe proved; the policy above is its. */
  identity?: VerifiedIdentity;
  /** Why this stripe's proof was let pass unchecked. */
  identityUnverified?: string;
}

export function welcomeFor(h: Hello, p: WelcomeParams): Welcome {
  return {
    version: p.version,
    address: p.address,
    peer: p.agentAddress,
    mtu: Math.min(h.mtu, p.agentMtu),
    ...(p.resolver ? { resolver: p.resolver } : {}),
    policy: p.policy,
    agent: `ssm-proxy-agent ${p.agentVersion}`,
    ...(p.ipv6 === undefined
      ? {}
      : "off" in p.ipv6
      ? { ipv6Off: p.ipv6.off }
      : { address6: p.ipv6.address6, peer6: p.ipv6.peer6 }),
    ...(p.identity ? { identity: p.identity } : {}),
    ...(p.identityUnverified ? { identityUnverified: p.identityUnverified } : {}),
  };
}
