/**
 * The SigV4 signature of a request as received, computed step by step as the Signature Version
 * 4 documentation lays it out (canonical request, string to sign, signing key). Written from
 * the documentation, not from the SDK's signer: a verifier that shared the signer's code would
 * share its mistakes.
 */

export interface WireRequest {
  method: string;
  /** As received: the path and query string exactly as the client sent them. */
  url: URL;
  headers: Headers;
  body: Uint8Array;
}

export const ALGORITHM = "AWS4-HMAC-SHA256";

/**
 * Method, canonical URI, canonical query string (every parameter but X-Amz-Signature), the
 * signed headers with their values, the signed header names, the hex SHA-256 of the body.
 */
export async function canonicalRequest(req: WireRequest, signedHeaders: string[]): Promise<string> {
  const pairs = queryPairs(req.url);
  if (!pairs) throw new Error("malformed query string");
  const query = pairs
    .filter(([k]) => k !== "X-Amz-Signature")
    .map(([k, v]) => [uriEncode(k), uriEncode(v)])
    .sort(([ak, av], [bk, bv]) => ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0)
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
  const headers = signedHeaders
    .map((h) => `${h}:${(headerValue(req, h) ?? "").trim().replace(/\s+/g, " ")}\n`)
    .join("");
  return [
    req.method.toUpperCase(),
    canonicalUri(req.url.pathname),
    query,
    headers,
    signedHeaders.join(";"),
    hex(await sha256(req.body)),
  ].join("\n");
}

export async function stringToSign(
  amzDate: string,
  scope: string,
  canonical: string,
): Promise<string> {
  return [ALGORITHM, amzDate, scope, hex(await sha256(utf8(canonical)))].join("\n");
}

/** kDate = HMAC("AWS4" + secret, date), then region, service and "aws4_request" in turn. */
export async function signatureOf(secret: string, scope: string, toSign: string): Promise<string> {
  let key = utf8(`AWS4${secret}`);
  for (const part of scope.split("/")) key = await hmac(key, utf8(part));
  return hex(await hmac(key, utf8(toSign)));
}

/**
 * The path as sent, normalized (no empty, `.` or `..` segments) and each segment URI-encoded
 * once more: services other than S3 sign the path encoded twice.
 */
function canonicalUri(path: string): string {
  const out: string[] = [];
  for (const seg of path.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") out.pop();
    else out.push(uriEncode(seg));
  }
  const trailing = out.length > 0 && path.endsWith("/") ? "/" : "";
  return `/${out.join("/")}${trailing}`;
}

/** RFC 3986: only A-Z a-z 0-9 - _ . ~ stay as they are. */
function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/**
 * The query string's parameters, decoded as URLSearchParams decodes them (`+` is a space), so
 * that what is verified is what the handler acts on. Undefined when a `%` escape is broken.
 */
export function queryPairs(url: URL): [string, string][] | undefined {
  const out: [string, string][] = [];
  for (const part of url.search.replace(/^\?/, "").split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const [k, v] = eq < 0 ? [part, ""] : [part.slice(0, eq), part.slice(eq + 1)];
    try {
      out.push([decode(k), decode(v)]);
    } catch {
      return undefined;
    }
  }
  return out;
}

function decode(s: string): string {
  return decodeURIComponent(s.replaceAll("+", " "));
}

/** `host` falls back to the URL's: a Request built in-process has no Host header. */
export function headerValue(req: WireRequest, name: string): string | undefined {
  const v = req.headers.get(name);
  if (v !== null) return v;
  return name.toLowerCase() === "host" ? req.url.host : undefined;
}

/** Compares without stopping at the first difference, so timing says nothing about a secret. */
export function sameText(a: string, b: string): boolean {
  const x = utf8(a);
  const y = utf8(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

function utf8(s: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(s);
}

async function sha256(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>));
}

async function hmac(key: Uint8Array, data: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  const k = await crypto.subtle.importKey(
    "raw",
    key as Uint8Array<ArrayBuffer>,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, data as Uint8Array<ArrayBuffer>));
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
