/**
 * Who may reach what, at run time (issue 15): the rules in force (agent.yaml's, then Parameter
 * Store's, plus the VPC resolver on port 53), their refresh, and the audit trail's table, sink
 * and sweep. server.ts builds one and hands the registry's tunnels to it; status.json shows it.
 */
import type { AgentConfig } from "./config.ts";
import { FlowAudit, type PacketAudit } from "./audit.ts";
import { openAuditSink } from "./audit_sink.ts";
import { type LoadParameters, PolicySource, type PolicySourceStatus } from "./policy_source.ts";
import { mergeRules, storeCanOnlyDeny } from "./rules_parameter.ts";
import { resolverRule, rulesOf, type RulesPolicy } from "./rules.ts";

export interface AccessStatus {
  rules: number;
  requireIdentity: boolean;
  /** Parameter Store's part; null without policyParameterPath. */
  store: PolicySourceStatus | null;
  /** null while the audit trail is off. */
  audit:
    | { to: "journal" | "file"; path?: string; lines: number; flows: number; evicted: number }
    | null;
}

export interface Access {
  readonly policy: RulesPolicy;
  /** The data path's audit hook; undefined while the audit trail is off. */
  readonly audit?: PacketAudit;
  status(): AccessStatus;
  close(): Promise<void>;
}

export interface AccessOptions {
  cfg: AgentConfig;
  /** The VPC resolver the agent announces: always reachable on port 53 unless a rule denies it. */
  resolver?: string;
  /** New rules are in force: recompile the tunnels (Registry.setPolicy). */
  apply: (p: RulesPolicy) => void;
  log: (line: string) => void;
  /** Tests: the Parameter Store read, and an audit hook instead of cfg.audit's. */
  load?: LoadParameters;
  audit?: PacketAudit;
  /** How often idle flows are written out (default 5 s). */
  auditSweepMs?: number;
}

/**
 * agent.yaml's rules. In the rules form the resolver the agent announces comes first, allowed on
 * port 53 without principals: every admitted tunnel's DNS works however narrow its rules (a deny
 * rule naming it still wins). The old allow/deny form stays exactly what it was.
 */
export function filePolicy(cfg: Pick<AgentConfig, "policy">, resolver?: string): RulesPolicy {
  const p = rulesOf(cfg.policy);
  const dns = cfg.policy.rules && resolver ? resolverRule(resolver) : undefined;
  return dns ? { ...p, rules: [dns, ...p.rules] } : p;
}

/**
 * Does anything depend on who a tunnel is? Identities are only asked for then: checking one
 * costs each new stripe an STS round trip, and an instance that cannot reach STS (private
 * subnets with only Session Manager's endpoints) its timeout.
 */
export function identityMatters(
  p: RulesPolicy,
  o: { audit: boolean; store: boolean },
): boolean {
  return p.requireIdentity || p.rules.some((r) => r.principals) || o.audit || o.store;
}

export async function startAccess(o: AccessOptions): Promise<Access> {
  const { cfg, log } = o;
  const file = filePolicy(cfg, o.resolver);
  let policy = file;
  const undo: (() => Promise<void> | void)[] = [];

  let flowAudit: FlowAudit | undefined;
  let audit = o.audit;
  if (!audit && cfg.audit.to !== "off") {
    const sink = await openAuditSink(cfg.audit, log);
    if (sink) {
      const table = new FlowAudit({ write: (line) => sink.write(line) });
      const sweep = setInterval(() => table.sweep(), o.auditSweepMs ?? 5000);
      // Reverse order on close: stop sweeping, write every open flow, then flush the sink.
      undo.push(() => sink.close());
      undo.push(() => table.close());
      undo.push(() => clearInterval(sweep));
      flowAudit = table;
      audit = table;
    }
  }

  let source: PolicySource | undefined;
  if (cfg.policyParameterPath) {
    if (storeCanOnlyDeny(cfg.policy)) {
      log(
        `policyParameterPath ${cfg.policyParameterPath}: agent.yaml's policy lets every tunnel ` +
          "go everywhere, so rules from Parameter Store can only deny; set policy.rules in " +
          "agent.yaml (rules: [] for none) to let them allow",
      );
    }
    source = new PolicySource({
      path: cfg.policyParameterPath,
      refreshMs: cfg.policyRefreshMs,
      log,
      ...(o.load ? { load: o.load } : {}),
    });
    // The first read is awaited so tunnels never start under rules about to change.
    await source.start((store) => {
      policy = mergeRules(file, store);
      o.apply(policy);
    });
    undo.push(() => source!.close());
  }

  return {
    get policy() {
      return policy;
    },
    audit,
    status: () => ({
      rules: policy.rules.length,
      requireIdentity: policy.requireIdentity,
      store: source?.status() ?? null,
      audit: flowAudit && cfg.audit.to !== "off"
        ? {
          to: cfg.audit.to,
          ...(cfg.audit.to === "file" ? { path: cfg.audit.path } : {}),
          lines: flowAudit.lines,
          flows: flowAudit.flows,
          evicted: flowAudit.evicted,
        }
        : null,
    }),
    close: async () => {
      for (const u of undo.reverse()) await u();
      undo.length = 0;
    },
  };
}
