/**
 * Policy rules kept in SSM Parameter Store (issue 15, agent.yaml's `policyParameterPath`): every
 * parameter under the path holds YAML in agent.yaml's rule language (agent/rules.ts), with the
 * same `name:line: path: problem` errors, the parameter's name standing for the file:
 *
 *   rules:
 *     - principals: { permissionSets: [DataTeam] }
 *       allow: [10.0.7.0/24:5432/tcp]
 *
 * Only `rules`. `requireIdentity` stays in agent.yaml: it is the instance's security floor, and
 * whoever may write the parameters must not be able to lower it. The old `allow`/`deny` lists
 * are refused too: inside a rule they say the same, and a rule without principals is the old form.
 *
 * Combining (mergeRules): the file's rules come first, then the store's, and they all pool
 * (rules_compile.ts): the allows of every rule a tunnel matches add up, and a deny in any of them
 * beats every allow. So a parameter can only add allows for the principals its rules select, or
 * add denies; it can never lift a deny of the file. The file's old form (`policy: {allow, deny}`)
 * is one rule for every tunnel (rulesOf), its empty allow meaning everywhere: with an agent.yaml
 * that has no `policy`, or an old-form policy without allow, every tunnel may already go
 * everywhere and the store's rules can only deny. To let the store decide what is allowed, give
 * agent.yaml the rules form, e.g. `policy: {rules: []}` (storeCanOnlyDeny tells the agent to say so).
 *
 * Pure.
 */
import { isMap, isScalar, LineCounter, type Node, parseDocument } from "yaml";
import { YamlWalker } from "../src/config/yaml_walk.ts";
import { UserError } from "../src/errors.ts";
import { parseRuleList, type PolicyConfig, type PolicyRule, type RulesPolicy } from "./rules.ts";

export class RulesParameterError extends UserError {
  override name = "RulesParameterError";
}

/** The keys of agent.yaml's `policy` a parameter may not hold, with why. */
const REFUSED: Record<string, string> = {
  requireIdentity:
    "not accepted in a parameter: requireIdentity stays in agent.yaml's policy, the instance's " +
    "security floor that Parameter Store cannot lower",
  allow: "not accepted in a parameter: write it as a rule, `rules: [{allow: [...]}]` (a rule " +
    "without principals applies to every tunnel)",
  deny: "not accepted in a parameter: write it as a rule, `rules: [{deny: [...]}]` (a rule " +
    "without principals applies to every tunnel)",
  policy: "a parameter holds `rules: [...]` at the top level, not under policy:",
};

/** One parameter's rules; a RulesParameterError `name:line: path: problem` when it is wrong. */
export function parseRulesParameter(text: string, name: string): PolicyRule[] {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines });
  if (doc.errors.length) {
    const e = doc.errors[0];
    throw new RulesParameterError(
      `${name}:${e.linePos?.[0].line ?? 0}: ${e.message.split("\n")[0]}`,
    );
  }
  const root = doc.contents as Node | null;
  // Nothing but comments: no rules (a way to switch a parameter off without deleting it).
  if (root === null || (isScalar(root) && root.value === null)) return [];
  const w = new YamlWalker(name, lines, (m) => new RulesParameterError(m));
  if (isMap(root)) {
    for (const pair of root.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : "";
      if (key in REFUSED) w.fail(pair.key as Node, key, REFUSED[key]);
    }
  }
  const rules = w.map(root, "", ["rules"]).get("rules");
  if (rules === undefined) return w.fail(root, "", "expected `rules: [...]`");
  if (isScalar(rules) && rules.value === null) return [];
  return parseRuleList(w, rules, "rules");
}

/**
 * Every parameter's rules, in name order (code-unit order, as Parameter Store lists a path).
 * All or nothing: the first broken parameter throws, so a caller keeps its last good set rather
 * than one with a deny missing.
 */
export function parseRulesParameters(params: { name: string; value: string }[]): PolicyRule[] {
  return [...params]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .flatMap((p) => parseRulesParameter(p.value, p.name));
}

/** The file's policy with the store's rules after its own; requireIdentity only from the file. */
export function mergeRules(file: RulesPolicy, fromStore: PolicyRule[]): RulesPolicy {
  return { rules: [...file.rules, ...fromStore], requireIdentity: file.requireIdentity };
}

/**
 * True when agent.yaml's policy already lets every tunnel go everywhere (no policy, or the old
 * form without allow), so rules from Parameter Store can only add denies: worth a line in the
 * agent's log, since that is rarely what someone who set policyParameterPath meant.
 */
export function storeCanOnlyDeny(file: PolicyConfig): boolean {
  return !file.rules && file.allow.length === 0;
}
