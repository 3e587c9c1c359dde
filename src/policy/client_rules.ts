/**
 * The policy rules published to Parameter Store (issue 15), read by the client for agentless
 * mode, where no agent enforces them: the same parameters and language as the agent's
 * `policyParameterPath` (agent/rules_parameter.ts), read with the user's credentials.
 *
 * Unlike the agent, which keeps its last good rules, the client has none to fall back on: a
 * parameter it cannot read or parse is a UserError naming it (`name:line: path: problem`), and the
 * caller decides whether to go on without rules.
 */
import type { AwsOptions } from "../aws/config.ts";
import { getParametersByPath } from "../aws/parameters.ts";
import type { PolicyRule } from "../../agent/rules.ts";
import { parseRulesParameters } from "../../agent/rules_parameter.ts";

/** Every rule under `path`, parameters in name order; [] when the path holds none. */
export async function loadClientRules(aws: AwsOptions, path: string): Promise<PolicyRule[]> {
  const params = await getParametersByPath(aws, path);
  return parseRulesParameters(params);
}
