/**
 * The EKS bearer token, built the way `aws eks get-token` builds it: a presigned STS
 * GetCallerIdentity URL whose signature covers `x-k8s-aws-id: <cluster>`, valid 60 s, encoded
 * base64url without padding behind `k8s-aws-v1.`. The API server replays the URL to STS to learn
 * who we are, so the signature must be exact; tests pin it to an independently computed vector.
 */
import { presignCallerIdentity, type StaticCredentials } from "../aws/sts_presign.ts";

export type { StaticCredentials } from "../aws/sts_presign.ts";

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
  return await presignCallerIdentity({
    endpoint: new URL(`https://${stsHost(region)}/`),
    region,
    credentials,
    headers: { "x-k8s-aws-id": cluster },
    expiresIn: URL_EXPIRES_S,
    now,
  });
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

function base64url(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}
