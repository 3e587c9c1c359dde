/**
 * SigV4 checked the way an AWS service checks it: header-signed (`Authorization:
 * AWS4-HMAC-SHA256 …`) and presigned (`X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`,
 * `X-Amz-Expires`, `X-Amz-SignedHeaders`, `X-Amz-Signature` in the query string). This module
 * reads what the request claims and checks scope, clock, headers and token; sigv4_canonical.ts
 * computes the signature. A failure carries the code, HTTP status and wording of the
 * Query-protocol services (STS, IAM).
 *
 * Deliberately stricter than AWS in two places, both so that nothing outside the signature can
 * change what was signed: a session token must be inside the signature (query parameter, or a
 * signed `x-amz-security-token` header), and the payload hash is always that of the body
 * received (never `UNSIGNED-PAYLOAD`). A presigned request also honours its X-Amz-Expires
 * (capped at the 15 minutes STS allows), where real STS applies 15 minutes whatever it says.
 */

import {
  ALGORITHM,
  canonicalRequest,
  headerValue,
  queryPairs,
  sameText,
  signatureOf,
  stringToSign,
  type WireRequest,
} from "./sigv4_canonical.ts";

export type { WireRequest } from "./sigv4_canonical.ts";

export interface SigningCredentials {
  secretAccessKey: string;
  /** Set for temporary credentials, whose requests must carry it. */
  sessionToken?: string;
}

export interface VerifyOptions {
  /** The service the credential scope must name, e.g. `sts`. */
  service: string;
  /** Epoch ms. */
  now: number;
  credentialsFor(accessKeyId: string): SigningCredentials | undefined;
}

export interface AuthFailure {
  code: string;
  message: string;
  status: number;
}

export type Verdict =
  | { ok: true; accessKeyId: string; region: string; signedHeaders: string[] }
  | { ok: false; failure: AuthFailure };

/** How far X-Amz-Date may be from the service's clock, either way. */
const SKEW_S = 15 * 60;
/** The longest X-Amz-Expires SigV4 allows (a signing key is good for seven days). */
const MAX_EXPIRES_S = 7 * 24 * 3600;
const QUERY_AUTH = [
  "X-Amz-Algorithm",
  "X-Amz-Credential",
  "X-Amz-Signature",
  "X-Amz-SignedHeaders",
  "X-Amz-Date",
  "X-Amz-Expires",
];
const TOKEN_HEADER = "x-amz-security-token";
const TOKEN_PARAM = "X-Amz-Security-Token";

/** What the request says about its own signature. */
interface Claim {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
  terminator: string;
  amzDate: string;
  /** Seconds after X-Amz-Date that the signature stays good. */
  validS: number;
  signedHeaders: string[];
  signature: string;
}

export async function verifySigV4(req: WireRequest, o: VerifyOptions): Promise<Verdict> {
  const pairs = queryPairs(req.url);
  if (!pairs) return refuse(failure("MalformedQueryString", "The query string is malformed", 400));
  const claim = readClaim(req, pairs);
  if ("code" in claim) return refuse(claim);
  const early = checkScope(claim, o.service) ?? checkTime(claim, o.now) ?? checkHeaders(req, claim);
  if (early) return refuse(early);
  const creds = o.credentialsFor(claim.accessKeyId);
  if (!creds) return refuse(invalidToken());
  const token = checkToken(req, pairs, claim, creds);
  if (token) return refuse(token);
  const canonical = await canonicalRequest(req, claim.signedHeaders);
  const scope = `${claim.date}/${claim.region}/${claim.service}/${claim.terminator}`;
  const toSign = await stringToSign(claim.amzDate, scope, canonical);
  const expected = await signatureOf(creds.secretAccessKey, scope, toSign);
  if (!sameText(expected, claim.signature)) {
    return refuse(failure(
      "SignatureDoesNotMatch",
      "The request signature we calculated does not match the signature you provided. " +
        "Check your AWS Secret Access Key and signing method. " +
        "Consult the service documentation for details.",
      403,
    ));
  }
  return {
    ok: true,
    accessKeyId: claim.accessKeyId,
    region: claim.region,
    signedHeaders: claim.signedHeaders,
  };
}

// ---- reading the claim ----

function readClaim(req: WireRequest, pairs: [string, string][]): Claim | AuthFailure {
  const auth = req.headers.get("authorization");
  const q = new Map<string, string[]>();
  for (const [k, v] of pairs) q.set(k, [...q.get(k) ?? [], v]);
  const presigned = QUERY_AUTH.some((k) => q.has(k));
  if (auth !== null && presigned) {
    return incomplete(
      "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the " +
        "Authorization header should be specified",
    );
  }
  if (auth !== null) return headerClaim(auth, req.headers);
  if (presigned) return queryClaim(q);
  return failure("MissingAuthenticationToken", "Missing Authentication Token", 403);
}

function headerClaim(auth: string, headers: Headers): Claim | AuthFailure {
  const sp = auth.indexOf(" ");
  const algorithm = sp < 0 ? auth : auth.slice(0, sp);
  if (algorithm !== ALGORITHM) return incomplete(`Unsupported AWS 'algorithm': '${algorithm}'`);
  const fields = new Map<string, string>();
  for (const raw of auth.slice(sp + 1).split(",")) {
    const part = raw.trim();
    if (part === "") continue;
    const eq = part.indexOf("=");
    if (eq < 0) {
      return incomplete(
        `'${part}' not a valid key=value pair (missing equal-sign) in Authorization header: ` +
          `'${auth}'.`,
      );
    }
    fields.set(part.slice(0, eq), part.slice(eq + 1));
  }
  const missing = ["Credential", "Signature", "SignedHeaders"]
    .filter((k) => !fields.has(k))
    .map((k) => `Authorization header requires '${k}' parameter.`);
  const amzDate = headers.get("x-amz-date");
  if (amzDate === null) {
    missing.push(
      "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
    );
  }
  if (missing.length > 0) return incomplete(`${missing.join(" ")} Authorization=${auth}`);
  return claimOf(
    fields.get("Credential")!,
    amzDate!,
    SKEW_S,
    fields.get("SignedHeaders")!,
    fields.get("Signature")!,
  );
}

function queryClaim(q: Map<string, string[]>): Claim | AuthFailure {
  const missing = QUERY_AUTH.filter((k) => !q.has(k));
  if (missing.length > 0) {
    return incomplete(
      `${missing.map((k) => `AWS query-string parameters must include '${k}'.`).join(" ")} ` +
        "Re-examine the query-string parameters.",
    );
  }
  const twice = [...QUERY_AUTH, TOKEN_PARAM].find((k) => (q.get(k)?.length ?? 0) > 1);
  if (twice) return incomplete(`'${twice}' appears more than once in the query string.`);
  const one = (k: string) => q.get(k)![0];
  if (one("X-Amz-Algorithm") !== ALGORITHM) {
    return incomplete(`Unsupported AWS 'algorithm': '${one("X-Amz-Algorithm")}'`);
  }
  const expires = one("X-Amz-Expires");
  if (!/^\d{1,9}$/.test(expires) || Number(expires) < 1 || Number(expires) > MAX_EXPIRES_S) {
    return incomplete(
      `X-Amz-Expires must be a whole number of seconds from 1 to ${MAX_EXPIRES_S}, ` +
        `not '${expires}'.`,
    );
  }
  return claimOf(
    one("X-Amz-Credential"),
    one("X-Amz-Date"),
    Math.min(Number(expires), SKEW_S),
    one("X-Amz-SignedHeaders"),
    one("X-Amz-Signature"),
  );
}

function claimOf(
  credential: string,
  amzDate: string,
  validS: number,
  signedHeaders: string,
  signature: string,
): Claim | AuthFailure {
  const parts = credential.split("/");
  if (parts.length !== 5) {
    return incomplete(
      "Credential must have exactly 5 slash-delimited elements, " +
        `e.g. keyid/date/region/service/term, got '${credential}'`,
    );
  }
  if (parseAmzDate(amzDate) === undefined) {
    return incomplete(
      `Date must be in ISO-8601 'basic format'. Got '${amzDate}'. ` +
        "See http://en.wikipedia.org/wiki/ISO_8601",
    );
  }
  const [accessKeyId, date, region, service, terminator] = parts;
  return {
    accessKeyId,
    date,
    region,
    service,
    terminator,
    amzDate,
    validS,
    signedHeaders: signedHeaders.split(";"),
    signature,
  };
}

// ---- the checks ----

function checkScope(c: Claim, service: string): AuthFailure | undefined {
  const problem = c.terminator !== "aws4_request"
    ? `Credential should be scoped with a valid terminator: 'aws4_request', not '${c.terminator}'.`
    : c.service !== service
    ? `Credential should be scoped to correct service: '${service}'. `
    : !/^[a-z0-9-]+$/.test(c.region)
    ? "Credential should be scoped to a valid region. "
    : c.date !== c.amzDate.slice(0, 8)
    ? "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from " +
      `HTTP: '${c.date}' != '${c.amzDate.slice(0, 8)}', from 'X-Amz-Date'.`
    : undefined;
  return problem === undefined ? undefined : failure("SignatureDoesNotMatch", problem, 403);
}

/** AWS's own wording: "Signature expired: <date> is now earlier than <limit> (<now> - 15 min.)". */
function checkTime(c: Claim, now: number): AuthFailure | undefined {
  const signed = parseAmzDate(c.amzDate)!;
  if (signed - now > SKEW_S * 1000) {
    return failure(
      "SignatureDoesNotMatch",
      `Signature not yet current: ${c.amzDate} is still later than ` +
        `${amzDate(now + SKEW_S * 1000)} (${amzDate(now)} + 15 min.)`,
      403,
    );
  }
  if (now - signed > c.validS * 1000) {
    const window = c.validS === SKEW_S ? "15 min." : `${c.validS} sec.`;
    return failure(
      "SignatureDoesNotMatch",
      `Signature expired: ${c.amzDate} is now earlier than ` +
        `${amzDate(now - c.validS * 1000)} (${amzDate(now)} - ${window})`,
      403,
    );
  }
  return undefined;
}

function checkHeaders(req: WireRequest, c: Claim): AuthFailure | undefined {
  if (!c.signedHeaders.includes("host")) {
    return incomplete("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
  }
  const absent = c.signedHeaders.find((h) => headerValue(req, h) === undefined);
  if (absent !== undefined) {
    return incomplete(
      `'${absent}' is named as a SignedHeader, but it does not exist in the HTTP request.`,
    );
  }
  return undefined;
}

/**
 * Temporary credentials need their token; permanent ones must not bring one. A token in the
 * query string is always signed (it is part of the canonical query); one in a header must be
 * among the signed headers.
 */
function checkToken(
  req: WireRequest,
  pairs: [string, string][],
  c: Claim,
  creds: SigningCredentials,
): AuthFailure | undefined {
  const header = req.headers.get(TOKEN_HEADER);
  if (header !== null && !c.signedHeaders.includes(TOKEN_HEADER)) {
    return incomplete(`'${TOKEN_HEADER}' must be a 'SignedHeader' in the AWS Authorization.`);
  }
  const presented = pairs.filter(([k]) => k === TOKEN_PARAM).map(([, v]) => v);
  if (header !== null) presented.push(header);
  const expected = creds.sessionToken;
  const good = expected === undefined
    ? presented.length === 0
    : presented.length > 0 && presented.every((t) => sameText(t, expected));
  return good ? undefined : invalidToken();
}

// ---- small helpers ----

function invalidToken(): AuthFailure {
  return failure(
    "InvalidClientTokenId",
    "The security token included in the request is invalid.",
    403,
  );
}

function incomplete(message: string): AuthFailure {
  return failure("IncompleteSignature", message, 400);
}

function failure(code: string, message: string, status: number): AuthFailure {
  return { code, message, status };
}

function refuse(f: AuthFailure): Verdict {
  return { ok: false, failure: f };
}

/** `20250102T030405Z` → epoch ms; undefined unless exactly that shape and a real instant. */
function parseAmzDate(s: string): number | undefined {
  const m = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/.exec(s);
  if (!m) return undefined;
  const [y, mo, d, h, mi, se] = m.slice(1).map(Number);
  const t = Date.UTC(y, mo - 1, d, h, mi, se);
  return amzDate(t) === s ? t : undefined;
}

function amzDate(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z").replace(/[-:]/g, "");
}
