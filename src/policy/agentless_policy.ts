/**
 * The team's policy in agentless mode (issue 15): no agent judges the packets, so the laptop
 * judges them itself by the rules published to Parameter Store (the agent's policyParameterPath
 * language), as this laptop's own IAM principal. A courtesy, not a boundary: the user controls
 * this laptop, and the instance's Session Manager permissions stay the authority (README).
 *
 * No rules published, or none this user may read: nothing is judged here (one line says which).
 * Rules that do not parse stop the start: running as if there were none would let through what
 * the team meant to deny.
 */
import type { AwsOptions } from "../aws/config.ts";
import { ExitCode, UserError } from "../errors.ts";
import { parseCidr } from "../../agent/cidr.ts";
import { DEFAULT_POOL6, parseCidr6 } from "../../agent/cidr6.ts";
import { parsePrincipalArn } from "../../agent/principal.ts";
import { compile } from "../../agent/rules_compile.ts";
import { type PolicyRule, resolverRule } from "../../agent/rules.ts";
import { RulesParameterError } from "../../agent/rules_parameter.ts";

/** Where `config publish` keeps the team's entries, plus /policy. */
export const DEFAULT_POLICY_PATH = "/ssm-proxy/policy";

export interface AgentlessPolicy {
  allowPacket: (packet: Uint8Array) => boolean;
  /** For the up line: "team policy /ssm-proxy/policy: 3 rules as arn:…". */
  summary: string;
}

export interface PolicyInputs {
  /** The rules read; a RulesParameterError when they do not parse, any other error when unread. */
  rules: () => Promise<PolicyRule[]>;
  /** This laptop's caller ARN and UserId (STS GetCallerIdentity). */
  identity: () => Promise<{ arn: string; userId: string }>;
}

/** The real inputs: Parameter Store and STS with the user's credentials. */
export function awsInputs(aws: AwsOptions, path: string): PolicyInputs {
  return {
    rules: async () => (await import("./client_rules.ts")).loadClientRules(aws, path),
    identity: async () => (await import("../aws/sts.ts")).getCallerIdentity(aws),
  };
}

/**
 * The laptop's judge, or undefined when there are no rules to apply. `addresses`: the agentless
 * tunnel's own block (never a destination); `resolver`: the VPC resolver, whose DNS is allowed
 * first as the agent allows it.
 */
export async function agentlessPolicy(
  path: string,
  inputs: PolicyInputs,
  o: { addresses: string; resolver?: string; progress: (line: string) => void },
): Promise<AgentlessPolicy | undefined> {
  let rules: PolicyRule[];
  try {
    rules = await inputs.rules();
  } catch (e) {
    if (e instanceof RulesParameterError) {
      throw new UserError(
        `the team's policy in Parameter Store is broken: ${e.message}; fix the parameter ` +
          "(or start with --mode agent, where the agent keeps its last good rules)",
        ExitCode.Failure,
      );
    }
    o.progress(`team policy ${path} not read (${oneLine(e)}): no rules applied on this laptop`);
    return undefined;
  }
  if (rules.length === 0) return undefined;
  const who = await inputs.identity();
  const principal = parsePrincipalArn(who.arn, who.userId);
  const dns = o.resolver ? resolverRule(o.resolver) : undefined;
  const all = dns ? [dns, ...rules] : rules;
  const decide = compile({ rules: all, requireIdentity: false }, principal, {
    pool: parseCidr(o.addresses)!,
    pool6: parseCidr6(DEFAULT_POOL6)!,
  });
  return {
    allowPacket: (p) => decide(p) === "allow",
    summary: `team policy ${path}: ${rules.length} rule${rules.length === 1 ? "" : "s"} as ${
      principal?.arn ?? `${who.arn} (not a principal the rules can name)`
    }`,
  };
}

function oneLine(e: unknown): string {
  return String(e instanceof Error ? e.message : e).replace(/\s+/g, " ").trim();
}
