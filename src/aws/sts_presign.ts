/**
 * A presigned STS GetCallerIdentity GET whose signature also covers one extra header: the shape
 * both the EKS bearer token (`x-k8s-aws-id`, eks/token.ts) and ssm-proxy's identity proof
 * (`x-ssm-proxy-nonce`, identity_proof.ts) take. Whoever holds the URL can replay it to STS,
 * with that header, to learn who signed it. The signer is imported on first use (cold start).
 */

export interface StaticCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** The call, in the signed query. */
export const CALLER_IDENTITY = { Action: "GetCallerIdentity", Version: "2011-06-15" } as const;

/** The query's parameters in botocore's order (`aws eks get-token` prints them so). */
export const PRESIGNED_QUERY_ORDER = [
  "Action",
  "Version",
  "X-Amz-Algorithm",
  "X-Amz-Credential",
  "X-Amz-Date",
  "X-Amz-Expires",
  "X-Amz-SignedHeaders",
  "X-Amz-Security-Token",
  "X-Amz-Signature",
] as const;

export interface PresignOptions {
  /** STS's origin (and path), e.g. https://sts.eu-west-1.amazonaws.com/. */
  endpoint: URL;
  region: string;
  credentials: StaticCredentials;
  /** The extra signed headers (host is added from the endpoint). */
  headers: Record<string, string>;
  expiresIn: number;
  now: Date;
}

/** The presigned URL, its parameters in PRESIGNED_QUERY_ORDER. */
export async function presignCallerIdentity(o: PresignOptions): Promise<string> {
  const [{ SignatureV4 }, { Sha256 }] = await Promise.all([
    import("@smithy/signature-v4"),
    import("@aws-crypto/sha256-js"),
  ]);
  const signer = new SignatureV4({
    service: "sts",
    region: o.region,
    credentials: o.credentials,
    sha256: Sha256,
  });
  const e = o.endpoint;
  const signed = await signer.presign({
    method: "GET",
    protocol: e.protocol,
    hostname: e.hostname,
    ...(e.port ? { port: Number(e.port) } : {}),
    path: e.pathname,
    query: { ...CALLER_IDENTITY },
    headers: { ...o.headers, host: e.host },
  }, { expiresIn: o.expiresIn, signingDate: o.now });
  const q = signed.query ?? {};
  const query = Object.keys(q).sort((a, b) => rank(a) - rank(b)).map((k) =>
    `${rfc3986(k)}=${rfc3986(String(q[k]))}`
  );
  return `${e.origin}${e.pathname}?${query.join("&")}`;
}

function rank(key: string): number {
  const i = (PRESIGNED_QUERY_ORDER as readonly string[]).indexOf(key);
  return i < 0 ? PRESIGNED_QUERY_ORDER.length : i;
}

function rfc3986(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16)}`);
}
