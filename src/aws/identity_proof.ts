/**
 * The client's proof of identity for ssm-proxy-agent: an STS GetCallerIdentity request signed
 * with the client's credentials and bound to the agent's nonce, which the agent sends to STS
 * itself to learn who the client is. The proof carries the signed request, never the secret key:
 * whoever captures it can only replay it, and only to STS, only with the same nonce, and only for
 * as long as the agent accepts its X-Amz-Date.
 *
 * A presigned GET (query-string auth), the very request an EKS token is (src/eks/token.ts, the
 * `x-k8s-aws-id` header of aws-iam-authenticator): a path every EKS cluster proves against real
 * STS, which a presigned POST with a hashed body is not (nothing in production relies on one).
 * The action and version are query parameters, so the signature covers them as part of the
 * canonical query string, as it covers a session token (X-Amz-Security-Token). The nonce
 * travels as the one extra header, signed beside Host: the rule "nothing but signed headers"
 * holds exactly (a header-signed request would need an unsigned Authorization header), and the
 * agent replays the request verbatim with fetch: the URL, one header, no body.
 */

import { type AwsOptions, endpointFor, missingRegion } from "./config.ts";
import { resolvedRegion } from "./region.ts";
import { type CallerIdentity, resolveCredentials } from "./sts.ts";
import { presignCallerIdentity, type StaticCredentials } from "./sts_presign.ts";
import { ExitCode, UserError } from "../errors.ts";
import {
  checkProof,
  type IdentityProof,
  isNonce,
  NONCE_HEADER,
  parseAmzDate,
  refused,
} from "./identity_proof_shape.ts";

export {
  type DecodeOptions,
  decodeProof,
  encodeProof,
  type IdentityProof,
  isNonce,
  MAX_PROOF_BYTES,
  NONCE_HEADER,
  PROOF_ACTION,
} from "./identity_proof_shape.ts";

/** STS's limit for a presigned request, whatever X-Amz-Expires says. */
const MAX_EXPIRES_S = 900;

// ---- the client side ----

export interface BuildOptions {
  aws: AwsOptions;
  nonce: string;
  now?: Date;
  /** X-Amz-Expires; default 60 s, as `aws eks get-token` uses. */
  expiresSeconds?: number;
  /** Credentials already in hand; absent = the SDK's chain for `aws`. */
  credentials?: StaticCredentials;
}

export async function buildProof(o: BuildOptions): Promise<IdentityProof> {
  // The nonce comes from the agent's hello and is checked there: a bad one here is our bug.
  if (!isNonce(o.nonce)) {
    throw new Error(`identity proof: the nonce must be 16-64 of [A-Za-z0-9_-], got ${o.nonce}`);
  }
  const expiresIn = o.expiresSeconds ?? 60;
  if (!Number.isInteger(expiresIn) || expiresIn < 1 || expiresIn > MAX_EXPIRES_S) {
    throw new Error(`identity proof: expiresSeconds must be 1-${MAX_EXPIRES_S}, got ${expiresIn}`);
  }
  const region = (await resolvedRegion(o.aws))?.region;
  if (!region) throw missingRegion(o.aws);
  const endpoint = stsEndpoint(region);
  const credentials = o.credentials ?? await resolveCredentials(o.aws);
  const headers = { [NONCE_HEADER]: o.nonce };
  const url = await presignCallerIdentity({
    endpoint,
    region,
    credentials,
    headers,
    expiresIn,
    now: o.now ?? new Date(),
  });
  return { method: "GET", url, headers };
}

/** Where the SDK would send an STS call: AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL, or regional. */
function stsEndpoint(region: string): URL {
  const raw = endpointFor("sts", region);
  try {
    return new URL(raw);
  } catch {
    throw new UserError(
      `the STS endpoint "${raw}" (AWS_ENDPOINT_URL_STS or AWS_ENDPOINT_URL) is not a URL: fix it`,
    );
  }
}

/**
 * The hosts an endpoint override names (AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL), which the agent
 * also accepts as STS, over plain http too: the emulator, or a private STS endpoint.
 */
export function configuredStsHosts(env: Record<string, string | undefined>): string[] {
  const out: string[] = [];
  for (const v of [env.AWS_ENDPOINT_URL_STS, env.AWS_ENDPOINT_URL]) {
    try {
      if (v) out.push(new URL(v).host);
    } catch {
      // Not a URL: names no host.
    }
  }
  return out;
}

// ---- the agent side ----

/** STS's answer to a proof: status and body. */
export interface StsAnswer {
  status: number;
  text: string;
}

/**
 * Sends a checked proof to STS. The default sends it to the proof's own URL with fetch; the agent
 * passes one that reaches a configured endpoint (a VPC endpoint) under the Host the client
 * signed, which fetch cannot do. It must not follow redirects.
 */
export type ProofSender = (p: IdentityProof, signal: AbortSignal) => Promise<StsAnswer>;

export interface ExecuteOptions {
  /** The nonce this agent issued for this hello. */
  nonce: string;
  fetch?: typeof fetch;
  /** Overrides `fetch`: how the proof reaches STS. */
  send?: ProofSender;
  /** Where `send` really sends it (a configured endpoint), for messages; default the URL's host. */
  sentTo?: string;
  now?: Date;
  /** How old (or how far ahead, for a fast client clock) X-Amz-Date may be; default 300 s. */
  maxAgeSeconds?: number;
  allowedHosts?: string[];
  /** How long STS may take to answer; default 10 s. */
  timeoutMs?: number;
}

/**
 * What the agent can check without STS: the shape, the nonce, the age and the host. The proof,
 * or a refusal (UserError). Its signature is STS's to check: a proof passing this proves nothing
 * yet, beyond which access key id it claims (proofKeyId).
 */
export function checkLocally(
  p: IdentityProof,
  o: Pick<ExecuteOptions, "nonce" | "now" | "maxAgeSeconds" | "allowedHosts">,
): IdentityProof {
  const allowed = o.allowedHosts ?? [];
  const proof = checkProof(p, allowed);
  if (proof.headers[NONCE_HEADER] !== o.nonce) {
    throw refused("it answers another nonce than the one this agent sent (a replayed proof?)");
  }
  const url = new URL(proof.url);
  const amzDate = url.searchParams.get("X-Amz-Date")!;
  const ageS = ((o.now ?? new Date()).getTime() - parseAmzDate(amzDate)) / 1000;
  const maxAge = o.maxAgeSeconds ?? 300;
  if (Math.abs(ageS) > maxAge) {
    const when = ageS > 0 ? `${Math.round(ageS)} s old` : `${Math.round(-ageS)} s in the future`;
    throw refused(
      `it was signed at ${amzDate}, ${when}, beyond the ${maxAge} s allowed ` +
        "(check the client's clock)",
    );
  }
  const overridden = allowed.some((h) => h.toLowerCase() === url.host);
  if (!overridden && !(url.protocol === "https:" && url.port === "" && isStsHost(url.hostname))) {
    throw refused(`${url.host} is not an STS endpoint`);
  }
  return proof;
}

/** The access key id a (shape-checked) proof says it was signed with: X-Amz-Credential's first part. */
export function proofKeyId(p: IdentityProof): string {
  return (new URL(p.url).searchParams.get("X-Amz-Credential") ?? "").split("/")[0];
}

/**
 * Checks what the agent can check itself (checkLocally), then lets STS check the signature
 * and say whose it is. Real STS accepts a presigned request for 15 minutes whatever X-Amz-Expires
 * says, so the age bound here is what limits a replay.
 */
export async function executeProof(
  p: IdentityProof,
  o: ExecuteOptions,
): Promise<CallerIdentity> {
  const proof = checkLocally(p, o);
  const url = new URL(proof.url);
  let answer: StsAnswer;
  try {
    const send = o.send ?? fetchSender(o.fetch ?? fetch);
    answer = await send(proof, AbortSignal.timeout(o.timeoutMs ?? 10_000));
  } catch (e) {
    throw new UserError(
      `could not reach STS at ${o.sentTo ?? url.host} to check an identity proof: ${oneLine(e)}`,
      ExitCode.Remote,
    );
  }
  return parseAnswer(answer.status, answer.text, o.sentTo ?? url.host);
}

function fetchSender(f: typeof fetch): ProofSender {
  return async (p, signal) => {
    const res = await f(p.url, {
      method: p.method,
      headers: p.headers,
      // STS never redirects; following one would send the proof somewhere unchecked.
      redirect: "manual",
      signal,
    });
    return { status: res.status, text: await res.text() };
  };
}

const REGION = String.raw`[a-z]{2}(?:-[a-z]+)+-\d{1,2}`;
const STS_DOMAINS = [
  String.raw`amazonaws\.com`,
  String.raw`(?:dualstack\.)?${REGION}\.amazonaws\.com(?:\.cn)?`,
  String.raw`${REGION}\.api\.aws`,
  String.raw`${REGION}\.api\.amazonwebservices\.com\.cn`,
];
const STS_HOST = new RegExp(String.raw`^sts(?:-fips)?\.(?:${STS_DOMAINS.join("|")})$`);

/** STS's global, regional, China, FIPS and dual-stack names; nothing else AWS or otherwise. */
export function isStsHost(hostname: string): boolean {
  return STS_HOST.test(hostname);
}

function parseAnswer(status: number, text: string, host: string): CallerIdentity {
  if (status !== 200) {
    const code = xmlText(text, "Code");
    if (code === undefined) {
      throw new UserError(
        `STS at ${host} answered HTTP ${status} to an identity proof, without an error document`,
        ExitCode.Remote,
      );
    }
    const said = `${code}${xmlText(text, "Message") ? `: ${xmlText(text, "Message")}` : ""}`;
    // STS failing is the agent's trouble, not the client's.
    if (status >= 500 || /^Throttling|^ServiceUnavailable|^InternalFailure/.test(code)) {
      throw new UserError(
        `STS at ${host} could not check an identity proof: ${said}`,
        ExitCode.Remote,
      );
    }
    throw refused(`STS says ${said}`);
  }
  const result = xmlText(text, "GetCallerIdentityResult", true) ?? "";
  const account = xmlText(result, "Account") ?? "";
  const arn = xmlText(result, "Arn") ?? "";
  const userId = xmlText(result, "UserId") ?? "";
  const arnAccount = /^arn:aws[a-z-]*:(?:iam|sts)::(\d{12}):\S+$/.exec(arn)?.[1];
  if (arnAccount === undefined || arnAccount !== account || !/^[\w:@.+=,-]+$/.test(userId)) {
    throw new UserError(
      `STS at ${host} answered an identity proof with no usable identity ` +
        `(Account "${account}", Arn "${arn}", UserId "${userId}")`,
      ExitCode.Remote,
    );
  }
  return { account, arn, userId };
}

/** The first `<tag>…</tag>`'s content, entities decoded unless `raw` (for an inner document). */
function xmlText(xml: string, tag: string, raw = false): string | undefined {
  const m = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(xml);
  if (!m) return undefined;
  return raw ? m[1] : oneLine(unescapeXml(m[1]));
}

function unescapeXml(s: string): string {
  const named: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (all, e: string) => {
    if (!e.startsWith("#")) return named[e];
    const code = e[1] === "x" ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
    return code <= 0x10ffff ? String.fromCodePoint(code) : all;
  });
}

function oneLine(e: unknown): string {
  return String(e instanceof Error ? e.message : e).replace(/\s+/g, " ").trim();
}
