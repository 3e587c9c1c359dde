/**
 * `identities:` in the fixtures: the access keys STS knows, each with its secret (what the
 * emulator checks SigV4 signatures against) and the principal GetCallerIdentity names.
 *
 *     identities:
 *       - accessKeyId: AKIAJANE000000000001
 *         secretAccessKey: jane-secret
 *         arn: arn:aws:iam::210987654321:user/jane          # userId AIDA… derived if absent
 *       - accessKeyId: ASIAOPS0000000000001
 *         secretAccessKey: ops-secret
 *         sessionToken: ops-session-token                   # temporary credentials: required
 *         arn: arn:aws:sts::210987654321:assumed-role/AWSReservedSSO_Admin_0123456789abcdef/jane
 *         userId: AROAOPS00000000000001:jane                # optional; AROA…:<session>
 *
 * Absent or empty, STS stays the open door it always was: any key gets the top-level
 * callerArn/userId, signature unchecked. Once any identity is declared, STS is strict: only
 * these keys, with real signatures (sigv4_verify.ts).
 */

import { createHash } from "node:crypto";
import type { Node } from "yaml";
import type { Validator } from "./fixtures_validate.ts";

export interface FixtureIdentity {
  accessKeyId: string;
  secretAccessKey: string;
  /** Temporary credentials: requests must carry this token, inside the signature. */
  sessionToken?: string;
  /** `arn:aws:iam::ACCOUNT:user/[PATH/]NAME` or `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`. */
  arn: string;
  account: string;
  /** As GetCallerIdentity reports it: `AIDA…` for a user, `AROA…:SESSION` for a role. */
  userId: string;
}

const NAME = String.raw`[\w+=,.@-]{1,64}`;
const PARTITION = "aws|aws-cn|aws-us-gov";
const USER_ARN = new RegExp(
  `^arn:(?:${PARTITION}):iam::(\\d{12}):user/(?:[\\w+=,.@/-]*/)?${NAME}$`,
);
const ROLE_ARN = new RegExp(
  `^arn:(?:${PARTITION}):sts::(\\d{12}):assumed-role/${NAME}/([\\w+=,.@-]{2,64})$`,
);

export function parseIdentity(v: Validator, node: Node, path: string): FixtureIdentity {
  const m = v.map(node, path, ["accessKeyId", "secretAccessKey", "sessionToken", "arn", "userId"]);
  const accessKeyId = v.reqStr(m, "accessKeyId", /^\w{1,128}$/, "an access key id");
  const secretAccessKey = v.reqStr(m, "secretAccessKey");
  const sessionToken = v.optStr(m, "sessionToken");
  const arn = v.reqStr(m, "arn");
  const user = USER_ARN.exec(arn);
  const role = ROLE_ARN.exec(arn);
  if (!user && !role) {
    v.fail(
      m.get("arn"),
      `${path}.arn`,
      `"${arn}" is not arn:aws:iam::ACCOUNT:user/NAME or ` +
        "arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION",
    );
  }
  if (role && sessionToken === undefined) {
    v.fail(
      m.node,
      `${path}.sessionToken`,
      "required: an assumed role's temporary credentials always carry a session token",
    );
  }
  const session = role?.[2];
  const userId = v.optStr(m, "userId") ?? derivedUserId(arn, session);
  const shape = session === undefined ? /^AIDA[A-Z0-9]{4,}$/ : /^AROA[A-Z0-9]{4,}:/;
  if (!shape.test(userId) || (session !== undefined && !userId.endsWith(`:${session}`))) {
    v.fail(
      m.get("userId"),
      `${path}.userId`,
      session === undefined
        ? `"${userId}" is not a user's unique id (AIDA…)`
        : `"${userId}" is not AROA…:${session} (the role's unique id, then the session name)`,
    );
  }
  return {
    accessKeyId,
    secretAccessKey,
    ...(sessionToken !== undefined ? { sessionToken } : {}),
    arn,
    account: (user ?? role)![1],
    userId,
  };
}

/** A stable made-up unique id, so fixtures need not invent one: AIDA/AROA + 17 characters. */
function derivedUserId(arn: string, session: string | undefined): string {
  const principal = session === undefined ? arn : arn.slice(0, arn.lastIndexOf("/"));
  const digest = createHash("sha256").update(principal).digest();
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  const id = Array.from(digest.subarray(0, 17), (b) => alphabet[b % 32]).join("");
  return session === undefined ? `AIDA${id}` : `AROA${id}:${session}`;
}
