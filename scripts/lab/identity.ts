/**
 * Verified identities in the lab (issue 15): two principals the emulator's STS knows, with real
 * SigV4 checks once `identities:` is in its fixtures, so two laptops with different keys really
 * are two people to the agent:
 *
 *   alice  an IAM Identity Center user: arn:aws:sts::210987654321:assumed-role/
 *          AWSReservedSSO_Dev_0123456789abcdef/alice (temporary keys, with a session token)
 *   bob    an IAM user: arn:aws:iam::210987654321:user/bob (long-term keys)
 *
 * and an agent.yaml policy over the vpc's services (services.ts): alice may use HTTP :80/tcp and
 * DNS :53, bob only UDP echo :7 and ICMP. The agent gets an environment pointing its STS checks
 * and Parameter Store reads at the emulator.
 */
import type { Lab } from "../lab.ts";
import { instanceAwsEnv } from "./stack.ts";

export const LAB_ACCOUNT = "210987654321";
/** Where the agent looks for more rules (policyParameterPath). */
export const POLICY_PARAMETER_PATH = "/ssm-proxy/policy";

export interface LabIdentity {
  accessKeyId: string;
  secretAccessKey: string;
  /** Temporary credentials carry one. */
  sessionToken?: string;
  /** What GetCallerIdentity answers for these keys. */
  arn: string;
}

export const ALICE: LabIdentity = {
  accessKeyId: "ASIAALICE00000000001",
  secretAccessKey: "alice-secret-0123456789",
  sessionToken: "alice-session-token-IQoJb3JpZ2luX2VjEXAMPLE",
  arn: `arn:aws:sts::${LAB_ACCOUNT}:assumed-role/AWSReservedSSO_Dev_0123456789abcdef/alice`,
};

export const BOB: LabIdentity = {
  accessKeyId: "AKIABOB0000000000001",
  secretAccessKey: "bob-secret-0123456789",
  arn: `arn:aws:iam::${LAB_ACCOUNT}:user/bob`,
};

/** The instance's own role, for the agent's Parameter Store reads. */
export const AGENT_ROLE: LabIdentity = {
  accessKeyId: "ASIABASTION000000001",
  secretAccessKey: "bastion-secret-0123456789",
  sessionToken: "bastion-session-token-IQoJb3JpZ2luX2VjEXAMPLE",
  arn: `arn:aws:sts::${LAB_ACCOUNT}:assumed-role/ssm-proxy-bastion/i-0123456789abcdef0`,
};

/** The fixtures' `identities:` and `account:` lines (YAML), plus `parameters` if given. */
export function identityFixtures(parameters: { name: string; value: string }[] = []): string {
  const lines = [`account: "${LAB_ACCOUNT}"`, "identities:"];
  for (const id of [ALICE, BOB, AGENT_ROLE]) {
    lines.push(
      `  - accessKeyId: ${id.accessKeyId}`,
      `    secretAccessKey: ${id.secretAccessKey}`,
      ...(id.sessionToken ? [`    sessionToken: ${id.sessionToken}`] : []),
      `    arn: ${id.arn}`,
    );
  }
  if (parameters.length) {
    lines.push("parameters:");
    for (const p of parameters) {
      lines.push(`  - name: ${p.name}`, `    value: ${JSON.stringify(p.value)}`);
    }
  }
  return lines.join("\n") + "\n";
}

/** Write identityFixtures into the lab's directory; returns the path (for startEmulator). */
export async function writeIdentityFixtures(
  lab: Lab,
  parameters: { name: string; value: string }[] = [],
): Promise<string> {
  const file = `${lab.dir}/identity-fixtures.yaml`;
  await Deno.writeTextFile(file, identityFixtures(parameters));
  return file;
}

/** A client environment (over stack.ts's clientEnv) signing as `id`. */
export function identityEnv(id: LabIdentity): Record<string, string> {
  return {
    AWS_ACCESS_KEY_ID: id.accessKeyId,
    AWS_SECRET_ACCESS_KEY: id.secretAccessKey,
    // Empty rather than absent: nothing inherited from the test's own environment may sneak in.
    AWS_SESSION_TOKEN: id.sessionToken ?? "",
  };
}

/** `id`'s access key with a secret that is not its own: signatures STS must refuse. */
export function forgedEnv(id: LabIdentity): Record<string, string> {
  return { ...identityEnv(id), AWS_SECRET_ACCESS_KEY: `${id.secretAccessKey}-forged` };
}

/** The agent's environment with Parameter Store reads: instanceAwsEnv and the instance's role. */
export function agentEnv(lab: Lab): Record<string, string> {
  return {
    ...instanceAwsEnv(lab),
    ...identityEnv(AGENT_ROLE),
    AWS_CONFIG_FILE: "/nonexistent/aws-config",
    AWS_SHARED_CREDENTIALS_FILE: "/nonexistent/aws-credentials",
    AWS_PROFILE: "",
  };
}

/** Where identityAgentConfig's audit trail goes. */
export function auditFile(lab: Lab): string {
  return `${lab.dir}/audit.jsonl`;
}

export interface IdentityPolicyOptions {
  /** Refuse tunnels without a verified identity (default true). */
  requireIdentity?: boolean;
  /** Audit to auditFile(lab) (default true). */
  audit?: boolean;
  /** Read more rules from POLICY_PARAMETER_PATH every 10 s (default true). */
  parameters?: boolean;
}

/**
 * agent.yaml lines (stack.ts's startAgent `extraConfig`): alice (by her permission set) may
 * reach the vpc's HTTP :80/tcp and DNS :53, bob (by user name) UDP echo :7 and ping.
 */
export function identityAgentConfig(lab: Lab, o: IdentityPolicyOptions = {}): string {
  const svc = lab.serviceAddress;
  return [
    "policy:",
    `  requireIdentity: ${o.requireIdentity ?? true}`,
    "  rules:",
    "    - principals: { permissionSets: [Dev] }",
    `      allow: [${svc}:80/tcp, ${svc}:53]`,
    "    - principals: { users: [bob] }",
    `      allow: [${svc}:7/udp, ${svc}/icmp]`,
    ...(o.audit ?? true ? [`audit: ${auditFile(lab)}`] : []),
    ...(o.parameters ?? true
      ? [`policyParameterPath: ${POLICY_PARAMETER_PATH}`, "policyRefresh: 10s"]
      : []),
  ].join("\n");
}
