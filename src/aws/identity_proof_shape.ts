/**
 * What an identity proof must look like, and its form in the hello: pure checks, no I/O. Both
 * the agent's decoder and its executor hold a proof to this shape before anything is sent, so a
 * client can make the agent send nothing but a presigned GET of GetCallerIdentity: the action in
 * the query, which the signature covers, one signed header besides Host, and no body.
 */

import { CALLER_IDENTITY, PRESIGNED_QUERY_ORDER } from "./sts_presign.ts";
import { ExitCode, UserError } from "../errors.ts";

export interface IdentityProof {
  method: "GET";
  /** STS's URL: Action, Version and the X-Amz-* presigning parameters, nothing else. */
  url: string;
  /** Exactly the nonce header; Host comes from the URL when the agent sends it. */
  headers: Record<string, string>;
}

export const NONCE_HEADER = "x-ssm-proxy-nonce";
/** The query parameters that name the call, as `aws eks get-token` puts them in its URL. */
export const PROOF_ACTION = CALLER_IDENTITY;
/** The most an encoded proof may weigh; a long role session token still fits. */
export const MAX_PROOF_BYTES = 4096;
/** Sorted as SigV4 lists them. */
const SIGNED_HEADERS = `host;${NONCE_HEADER}`;
const NONCE = /^[A-Za-z0-9_-]{16,64}$/;

export function isNonce(s: string): boolean {
  return NONCE.test(s);
}

// ---- the hello's form ----

export function encodeProof(p: IdentityProof): string {
  const text = JSON.stringify({ m: p.method, u: p.url, h: p.headers });
  const bytes = new TextEncoder().encode(text).length;
  if (bytes > MAX_PROOF_BYTES) {
    throw new UserError(
      `the identity proof is ${bytes} bytes, over the ${MAX_PROOF_BYTES} the agent accepts ` +
        "(an unusually long session token?): use credentials with a shorter token",
      ExitCode.Auth,
    );
  }
  return text;
}

export interface DecodeOptions {
  /** Hosts accepted besides the STS endpoints, over http too (configuredStsHosts). */
  allowedHosts?: string[];
}

/** Whatever the text is, the result is a well-formed proof or a one-line UserError. */
export function decodeProof(text: string, o: DecodeOptions = {}): IdentityProof {
  if (text.length > MAX_PROOF_BYTES || new TextEncoder().encode(text).length > MAX_PROOF_BYTES) {
    throw refused(`it is over ${MAX_PROOF_BYTES} bytes`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw refused("it is not JSON");
  }
  if (!isRecord(raw) || !sameKeys(raw, ["h", "m", "u"])) {
    throw refused("it is not an object of exactly m, u and h");
  }
  return checkProof({ method: raw.m, url: raw.u, headers: raw.h }, o.allowedHosts);
}

// ---- the shape every proof must have ----

/** Every parameter a proof's URL must have: all of a presigned URL's but the session token. */
const QUERY = PRESIGNED_QUERY_ORDER.filter((k) => k !== "X-Amz-Security-Token");
const QUERY_SHAPE: Record<string, RegExp> = {
  Action: new RegExp(`^${PROOF_ACTION.Action}$`),
  Version: new RegExp(`^${PROOF_ACTION.Version}$`),
  "X-Amz-Algorithm": /^AWS4-HMAC-SHA256$/,
  "X-Amz-Credential": /^\w{1,128}\/\d{8}\/[a-z0-9-]{1,32}\/sts\/aws4_request$/,
  "X-Amz-Date": /^\d{8}T\d{6}Z$/,
  "X-Amz-Expires": /^[1-9]\d{0,5}$/,
  "X-Amz-SignedHeaders": new RegExp(`^${SIGNED_HEADERS}$`),
  "X-Amz-Signature": /^[0-9a-f]{64}$/,
  "X-Amz-Security-Token": /^[A-Za-z0-9+/=_-]+$/,
};

/**
 * The proof as the agent will send it: GET, exactly the nonce header (host aside, which fetch
 * takes from the URL), a presigned GetCallerIdentity URL with nothing else in it, https unless
 * to an allowed host.
 */
export function checkProof(
  p: { [K in keyof IdentityProof]: unknown },
  allowedHosts: string[] = [],
): IdentityProof {
  if (p.method !== "GET") throw refused("its method is not GET");
  const h = p.headers;
  if (!isRecord(h) || !sameKeys(h, [NONCE_HEADER])) {
    throw refused(`its headers are not exactly ${NONCE_HEADER}`);
  }
  if (typeof h[NONCE_HEADER] !== "string" || !isNonce(h[NONCE_HEADER])) {
    throw refused(`its ${NONCE_HEADER} header is not 16-64 of [A-Za-z0-9_-]`);
  }
  if (typeof p.url !== "string") throw refused("its url is not a string");
  let url: URL;
  try {
    url = new URL(p.url);
  } catch {
    throw refused("its url is not a URL");
  }
  const allowed = allowedHosts.some((a) => a.toLowerCase() === url.host);
  if (url.protocol !== "https:" && !(url.protocol === "http:" && allowed)) {
    throw refused(`its url is not https (plain http only to a configured STS endpoint)`);
  }
  if (url.username || url.password || url.hash || !/^\/[\w.~/-]*$/.test(url.pathname)) {
    throw refused("its url has credentials, a fragment or an odd path");
  }
  checkQuery(url);
  return { method: "GET", url: p.url, headers: { [NONCE_HEADER]: h[NONCE_HEADER] as string } };
}

function checkQuery(url: URL): void {
  const q = url.searchParams;
  const names = [...new Set(q.keys())];
  const stray = names.find((k) => !Object.hasOwn(QUERY_SHAPE, k));
  if (stray !== undefined) throw refused(`its url has a parameter ${clip(stray)}`);
  const missing = QUERY.find((k) => !q.has(k));
  if (missing !== undefined) {
    const what = Object.hasOwn(PROOF_ACTION, missing) ? "a GetCallerIdentity call" : "presigned";
    throw refused(`its url has no ${missing}: it is not ${what}`);
  }
  for (const k of names) {
    const all = q.getAll(k);
    if (all.length > 1) throw refused(`its url has ${k} twice`);
    if (!QUERY_SHAPE[k].test(all[0])) {
      throw refused(
        Object.hasOwn(PROOF_ACTION, k)
          ? `its ${k} is ${clip(all[0])}, not ${PROOF_ACTION[k as keyof typeof PROOF_ACTION]}`
          : `its ${k} is malformed`,
      );
    }
  }
  if (Number.isNaN(parseAmzDate(q.get("X-Amz-Date")!))) {
    throw refused("its X-Amz-Date is not a date");
  }
}

// ---- small helpers ----

export function refused(why: string): UserError {
  return new UserError(`identity proof refused: ${why}`, ExitCode.Auth);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function sameKeys(o: Record<string, unknown>, keys: string[]): boolean {
  const have = Object.keys(o).sort();
  return have.length === keys.length && have.every((k, i) => k === keys[i]);
}

/** `20250102T030405Z` → epoch ms; NaN unless a real instant in that exact shape. */
export function parseAmzDate(s: string): number {
  const m = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/.exec(s);
  if (!m) return NaN;
  const [y, mo, d, h, mi, se] = m.slice(1).map(Number);
  const t = Date.UTC(y, mo - 1, d, h, mi, se);
  const back = new Date(t).toISOString().replace(/\.\d{3}Z$/, "Z").replace(/[-:]/g, "");
  return back === s ? t : NaN;
}

function clip(s: string): string {
  return JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);
}
