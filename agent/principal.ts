/**
 * Who is on the other end of a tunnel: the IAM principal STS vouched for (issue 15), and the
 * selectors of the policy language that pick principals out by name. Pure.
 *
 * The agent learns a principal from a verified GetCallerIdentity answer (Arn, UserId, Account);
 * nothing here checks signatures, it only reads the ARN STS returned.
 */

export type PrincipalType = "user" | "assumed-role" | "root" | "federated";

export interface Principal {
  /** 12-digit account ID. */
  account: string;
  /** The ARN exactly as STS returned it. */
  arn: string;
  type: PrincipalType;
  /** aws, aws-cn, aws-us-gov, … */
  partition: string;
  /** IAM user name (type user), without its path. */
  userName?: string;
  /** Role name (type assumed-role); STS ARNs never carry the role's path. */
  roleName?: string;
  /**
   * Session name of an assumed role, or the name a federated user was given. Whoever assumes a
   * role or calls GetFederationToken chooses it, so it identifies a person only together with a
   * role whose trust policy sets it (IAM Identity Center sets it to the user name).
   */
  sessionName?: string;
  /** IAM Identity Center permission set, from a role named AWSReservedSSO_<set>_<16 hex>. */
  permissionSet?: string;
  /** GetCallerIdentity's UserId (AIDA…, AROA…:session, the account for root), when known. */
  userId?: string;
}

/** IAM names: users, roles, sessions, permission sets. */
const NAME = /^[\w+=,.@-]+$/;
const ARN = /^arn:(aws(?:-[a-z]+)*):(iam|sts)::(\d{12}):(.+)$/;
/** Identity Center's roles: the permission set's name, then a 16-hex-digit suffix. */
const SSO_ROLE = /^AWSReservedSSO_(.+)_[0-9a-f]{16}$/;

/**
 * The principal behind a caller ARN from GetCallerIdentity, or undefined when the ARN is not one
 * STS returns for a caller (an IAM role ARN, a typo). With `userId`, an identity whose UserId
 * disagrees with its ARN is refused too: it cannot have come from STS as is.
 */
export function parsePrincipalArn(arn: string, userId?: string): Principal | undefined {
  const m = ARN.exec(arn);
  if (!m) return undefined;
  const [, partition, service, account, resource] = m;
  const base = { account, arn, partition, ...(userId === undefined ? {} : { userId }) };
  const parts = resource.split("/");
  if (service === "iam" && resource === "root") {
    return userId === undefined || userId === account ? { ...base, type: "root" } : undefined;
  }
  if (service === "iam" && parts[0] === "user" && parts.length >= 2) {
    // user/division/alice: the path is organisational, the last part is the name.
    const userName = parts.at(-1)!;
    if (!NAME.test(userName) || parts.slice(1, -1).some((p) => !NAME.test(p))) return undefined;
    if (userId !== undefined && userId.includes(":")) return undefined;
    return { ...base, type: "user", userName };
  }
  if (service === "sts" && parts[0] === "assumed-role" && parts.length === 3) {
    const [, roleName, sessionName] = parts;
    if (!NAME.test(roleName) || !NAME.test(sessionName)) return undefined;
    if (userId !== undefined && !userId.endsWith(`:${sessionName}`)) return undefined;
    const sso = SSO_ROLE.exec(roleName);
    return {
      ...base,
      type: "assumed-role",
      roleName,
      sessionName,
      ...(sso ? { permissionSet: sso[1] } : {}),
    };
  }
  if (service === "sts" && parts[0] === "federated-user" && parts.length === 2) {
    if (!NAME.test(parts[1])) return undefined;
    if (userId !== undefined && userId !== `${account}:${parts[1]}`) return undefined;
    return { ...base, type: "federated", sessionName: parts[1] };
  }
  return undefined;
}

/**
 * Which principals a rule is for. Each list holds glob patterns (`*` any run of characters, `?`
 * one character), matched ignoring case: IAM names are unique regardless of case, so a deny
 * cannot be dodged by spelling a name differently. A principal is selected when, for every list
 * given, one of its patterns matches; a principal without the field a list asks about (a user
 * for `roles`) is not selected.
 */
export interface PrincipalSelector {
  accounts?: string[];
  /** Matched against the caller ARN as STS returns it (arn:aws:sts::…:assumed-role/Role/session). */
  arns?: string[];
  users?: string[];
  roles?: string[];
  /**
   * Identity Center permission sets, by the set's own name: safer than a roles pattern, as
   * AWSReservedSSO_Admin_* also matches the roles of a set named Admin_ReadOnly.
   */
  permissionSets?: string[];
  sessions?: string[];
}

export const SELECTOR_KEYS = [
  "accounts",
  "arns",
  "users",
  "roles",
  "permissionSets",
  "sessions",
] as const;

const FIELD: Record<keyof PrincipalSelector, keyof Principal> = {
  accounts: "account",
  arns: "arn",
  users: "userName",
  roles: "roleName",
  permissionSets: "permissionSet",
  sessions: "sessionName",
};

/** A glob as an anchored, case-insensitive RegExp. */
export function globToRegExp(pattern: string): RegExp {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(
    /\?/g,
    ".",
  );
  return new RegExp(`^${body}$`, "is");
}

export function globMatches(pattern: string, text: string): boolean {
  return globToRegExp(pattern).test(text);
}

/** Does `selector` pick `principal`? Never for an unverified tunnel (no principal). */
export function selects(selector: PrincipalSelector, principal: Principal | undefined): boolean {
  if (!principal) return false;
  for (const key of SELECTOR_KEYS) {
    const patterns = selector[key];
    if (!patterns) continue;
    const value = principal[FIELD[key]];
    if (typeof value !== "string" || !patterns.some((p) => globMatches(p, value))) return false;
  }
  return true;
}
