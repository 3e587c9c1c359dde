/**
 * The EKS bearer token, built the way `aws eks get-token` builds it: a presigned STS
 * GetCallerIdentity URL whose signature covers `x-k8s-aws-id: <cluster>`, valid 60 s, encoded
 * base64url without padding behind `k8s-aws-v1.`. The API server replays the URL to STS to learn
 * who we are, so the signature must be exact; tests pin it to an independently computed vector.
 */
import { Sha256 } from "@aws-crypto/sha256-js";
import { SignatureV4 } from "@smithy/signature-v4";

export interface StaticCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export const TOKEN_PREFIX = "k8s-aws-v1.";
/** What aws-cli presigns for; the API server rejects longer-lived URLs. */
const URL_EXPIRES_S = 60;
/** aws-cli reports 14 minutes, one short of the 15 the server allows, to refresh in time. */
const EXPIRATION_MS = 14 * 60_000;

export function stsHost(region: string): string {
  return `sts.${region}.amazonaws.com`;
}

/**
 * The presigned URL, its parameters in botocore's order so that the token is byte-for-byte the
 * one `aws eks get-token` prints for the same clock and credentials (the server does not care).
 */
export async function presignedUrl(
  cluster: string,
  region: string,
  credentials: StaticCredentials,
  now: Date,
): Promise<string> {
  const signer = new SignatureV4({ service: "sts", region, credentials, sha256: Sha256 });
  const host = stsHost(region);
  const signed = await signer.presign({
    method: "GET",
    protocol: "https:",
    hostname: host,
    path: "/",
    query: { Action: "GetCallerIdentity", Version: "2011-06-15" },
    headers: { host, "x-k8s-aws-id": cluster },
  }, { expiresIn: URL_EXPIRES_S, signingDate: now });
  const q = signed.query ?? {};
  const query = [...Object.keys(q)].sort((a, b) => rank(a) - rank(b)).map((k) =>
    `${rfc3986(k)}=${rfc3986(String(q[k]))}`
  );
  return `https://${host}/?${query.join("&")}`;
}

export async function buildToken(
  cluster: string,
  region: string,
  credentials: StaticCredentials,
  now: Date,
): Promise<string> {
  const url = await presignedUrl(cluster, region, credentials, now);
  return TOKEN_PREFIX + base64url(new TextEncoder().encode(url));
}

export interface ExecCredential {
  kind: "ExecCredential";
  apiVersion: "client.authentication.k8s.io/v1beta1";
  spec: Record<string, never>;
  status: { expirationTimestamp: string; token: string };
}

export function execCredential(token: string, now: Date): ExecCredential {
  const expires = new Date(now.getTime() + EXPIRATION_MS).toISOString().replace(/\.\d{3}Z$/, "Z");
  return {
    kind: "ExecCredential",
    apiVersion: "client.authentication.k8s.io/v1beta1",
    spec: {},
    status: { expirationTimestamp: expires, token },
  };
}

/** The URL inside a token, for checks; undefined when it is not one of ours. */
export function decodeToken(token: string): string | undefined {
  if (!token.startsWith(TOKEN_PREFIX)) return undefined;
  const b64 = token.slice(TOKEN_PREFIX.length).replaceAll("-", "+").replaceAll("_", "/");
  try {
    const bin = atob(b64 + "=".repeat((4 - b64.length % 4) % 4));
    return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
  } catch {
    return undefined;
  }
}

const BOTOCORE_ORDER = [
  "Action",
  "Version",
  "X-Amz-Algorithm",
  "X-Amz-Credential",
  "X-Amz-Date",
  "X-Amz-Expires",
  "X-Amz-SignedHeaders",
  "X-Amz-Security-Token",
  "X-Amz-Signature",
];

function rank(key: string): number {
  const i = BOTOCORE_ORDER.indexOf(key);
  return i < 0 ? BOTOCORE_ORDER.length : i;
}

function base64url(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function rfc3986(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16)}`);
}
