/**
 * What `start` was asked to do, checked before anything touches AWS or the system: every
 * mistake in the flags (or a saved tunnel) is one usage line, and later steps get values they
 * can trust. Pure.
 */
import type { AwsOptions } from "../aws/config.ts";
import { ExitCode, UserError } from "../errors.ts";
import type { Cidr } from "../net/cidr.ts";
import { domainName } from "../net/domain.ts";
import { parseExcludes } from "../discover/plan.ts";
import { parseAddr } from "../netstack/packet.ts";
import { distinctRanges, parseCidrs } from "../tunnel/checks.ts";
import { splitAllTraffic } from "./full_tunnel.ts";
import { type Cidr6, isIpv6Text, overlaps6, parseCidr6 } from "../net/cidr6.ts";
import { type HealSettings, healSettings } from "../tunnel/heal_options.ts";
import { validName } from "../tunnel/state.ts";

export type StartMode = "agent" | "agentless" | "auto";

export interface StartOptions extends AwsOptions {
  target: string;
  /** Routes; none = discovered from the instance's VPC. */
  cidr: string[];
  /** Ranges taken out of the routes (discovered or given). */
  exclude?: string[];
  /** Everything through the VPC (also: 0.0.0.0/0 among `cidr`). */
  allTraffic?: boolean;
  /** false (`--no-lan`): with allTraffic, the laptop's own networks go through the tunnel too. */
  lan?: boolean;
  /** Private domains; none = discovered. */
  dnsDomain?: string[];
  /** false (`--no-dns`): leave DNS alone. */
  dns?: boolean;
  /** agent: ssm-proxy-agent only; agentless: TCP and DNS from the laptop; auto: agent if it answers. */
  mode?: StartMode;
  /** Agentless: close a destination's unused session after this long. */
  sessionIdleSeconds?: number;
  /** Agentless: resolvers to relay DNS to before the VPC resolver itself. */
  dnsUpstream?: string[];
  /** Agentless: the team's rules in Parameter Store (default /ssm-proxy/policy). */
  policyPath?: string;
  /** A fixed number of Port sessions, or `auto` (grow with the load up to maxStripes). */
  stripes: number | "auto";
  /** With `auto`: the most stripes (default 8). */
  maxStripes?: number;
  /**
   * Put stripes on every online instance the target matches (each with its agent); stripe
   * counts are then per instance.
   */
  spread?: boolean;
  name: string;
  agentPort: number;
  background?: boolean;
  force?: boolean;
  /** Print the plan and change nothing. */
  dryRun?: boolean;
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

/** The options once checked: parsed ranges and domains, settled mode and healing. */
export interface CheckedStart {
  /** Given with --cidr; undefined = discover (or everything, with allTraffic). */
  cidrs?: Cidr[];
  /** IPv6 ranges given with --cidr (carried when the agent hands out IPv6). */
  cidrs6: Cidr6[];
  /** Full tunnel (full_tunnel.ts): half-default routes, every name to the VPC resolver. */
  allTraffic: boolean;
  /** With allTraffic: the LAN too (`--no-lan`). */
  noLan: boolean;
  exclude: Cidr[];
  /** Given with --dns-domain; undefined = discover (unless `dns` is false). */
  domains?: string[];
  dns: boolean;
  mode: StartMode;
  heal: HealSettings;
  upstreams: string[];
  idleSessionMs?: number;
  policyPath?: string;
}

/** `--policy-path`: a Parameter Store path. */
export function parsePolicyPath(v: string): string {
  if (/^(\/[A-Za-z0-9_.-]+)+\/?$/.test(v)) return v.replace(/\/$/, "");
  throw new UserError(
    `--policy-path ${JSON.stringify(v)} is not a Parameter Store path like /ssm-proxy/policy`,
  );
}

export function parseMode(v: string): StartMode {
  if (v === "agent" || v === "agentless" || v === "auto") return v;
  throw new UserError(
    `--mode ${JSON.stringify(v)}: use agent, agentless or auto`,
    ExitCode.Usage,
  );
}

/** `--dns-upstream`: IP addresses only (the instance dials them; names would be resolved there). */
export function parseUpstreams(values: string[]): string[] {
  for (const v of values) {
    if (!parseAddr(v)) {
      throw new UserError(
        `--dns-upstream ${
          JSON.stringify(v)
        } is not an IP address (e.g. a Route 53 Resolver inbound endpoint)`,
        ExitCode.Usage,
      );
    }
  }
  return values;
}

export function parseDomains(values: string[]): string[] {
  const out: string[] = [];
  for (const v of values) {
    let d: string;
    try {
      d = domainName(v);
    } catch (e) {
      throw new UserError(`--dns-domain ${(e as Error).message}`, ExitCode.Usage);
    }
    if (!out.includes(d)) out.push(d);
  }
  return out;
}

/** --cidr's IPv6 ranges: each once, none inside another. */
export function parseCidrs6(texts: string[]): Cidr6[] {
  return distinctRanges(texts, parseCidr6, overlaps6);
}

export function checkStart(o: StartOptions): CheckedStart {
  if (!validName(o.name)) {
    throw new UserError(
      `tunnel name ${JSON.stringify(o.name)}: use up to 32 of a-z, 0-9, - and _`,
      ExitCode.Usage,
    );
  }
  if (o.stripes !== "auto" && (!Number.isInteger(o.stripes) || o.stripes < 1 || o.stripes > 16)) {
    throw new UserError("--stripes must be auto or a whole number from 1 to 16", ExitCode.Usage);
  }
  const max = o.maxStripes;
  if (max !== undefined && (!Number.isInteger(max) || max < 1 || max > 16)) {
    throw new UserError("--max-stripes must be a whole number from 1 to 16", ExitCode.Usage);
  }
  if (o.spread && o.wake) {
    throw new UserError(
      "--spread uses the instances that are already online: drop --wake (or wake one by its id first)",
      ExitCode.Usage,
    );
  }
  if (o.spread && o.mode === "agentless") {
    throw new UserError(
      "--spread needs ssm-proxy-agent on the instances: drop --mode agentless or --spread",
      ExitCode.Usage,
    );
  }
  const dns = o.dns !== false;
  if (!dns && (o.dnsDomain ?? []).length > 0) {
    throw new UserError(
      "--no-dns and --dns-domain contradict each other: drop one",
      ExitCode.Usage,
    );
  }
  const idle = o.sessionIdleSeconds;
  if (idle !== undefined && (!Number.isFinite(idle) || idle < 1 || idle > 86_400)) {
    throw new UserError(
      "--session-idle-seconds must be a number of seconds from 1 to 86400",
      ExitCode.Usage,
    );
  }
  const exclude = parseExcludes(o.exclude ?? []);
  const texts4 = o.cidr.filter((t) => !isIpv6Text(t));
  const cidrs6 = parseCidrs6(o.cidr.filter(isIpv6Text));
  // IPv6 ranges alone replace discovery too: then no IPv4 range is routed.
  const given4 = texts4.length > 0 ? parseCidrs(texts4) : cidrs6.length > 0 ? [] : undefined;
  const all = splitAllTraffic(
    o.allTraffic === true || cidrs6.some((c) => c.prefix === 0),
    given4,
  );
  if (all.all && o.mode === "agentless") {
    throw new UserError(
      "--all-traffic needs ssm-proxy-agent on the instance (agentless mode carries only TCP and DNS): drop --mode agentless",
      ExitCode.Usage,
    );
  }
  if (o.lan === false && !all.all) {
    throw new UserError(
      "--no-lan routes your own network through the tunnel, which only a full tunnel does: add --all-traffic",
      ExitCode.Usage,
    );
  }
  if (all.all && !dns) {
    throw new UserError(
      "--all-traffic sends every DNS query to the VPC resolver (anything else would leak names outside the tunnel): drop --no-dns",
      ExitCode.Usage,
    );
  }
  return {
    ...(all.cidrs ? { cidrs: all.cidrs } : {}),
    allTraffic: all.all,
    noLan: o.lan === false,
    cidrs6: all.all ? [] : cidrs6,
    exclude,
    ...((o.dnsDomain ?? []).length > 0 ? { domains: parseDomains(o.dnsDomain!) } : {}),
    dns,
    // A full tunnel carries UDP and ICMP too: only the agent can.
    mode: all.all ? "agent" : o.mode ?? "auto",
    heal: healSettings(o),
    upstreams: parseUpstreams(o.dnsUpstream ?? []),
    ...(o.policyPath ? { policyPath: parsePolicyPath(o.policyPath) } : {}),
    ...(idle !== undefined ? { idleSessionMs: idle * 1000 } : {}),
  };
}
