/**
 * The emulator's SigV4 verifier on its own, against vectors it did not produce: the AWS
 * documentation's IAM ListUsers example (header-signed), botocore's presigned
 * GetCallerIdentity (pinned in tests/eks/token_test.ts), one presigned request worked out by
 * hand with openssl, and @smithy/signature-v4 (the client side's signer) on random input.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { Sha256 } from "@aws-crypto/sha256-js";
import { SignatureV4 } from "@smithy/signature-v4";
import {
  canonicalRequest,
  signatureOf,
  stringToSign,
} from "../../src/emulator/api/sigv4_canonical.ts";
import {
  type SigningCredentials,
  type Verdict,
  verifySigV4,
  type WireRequest,
} from "../../src/emulator/api/sigv4_verify.ts";

const SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

function wire(
  url: string,
  headers: Record<string, string>,
  method = "GET",
  body = "",
): WireRequest {
  return {
    method,
    url: new URL(url),
    headers: new Headers(headers),
    body: new TextEncoder().encode(body),
  };
}

function verify(
  req: WireRequest,
  now: number,
  keys: Record<string, SigningCredentials> = { AKIDEXAMPLE: { secretAccessKey: SECRET } },
  service = "sts",
): Promise<Verdict> {
  return verifySigV4(req, { service, now, credentialsFor: (k) => keys[k] });
}

function failed(v: Verdict): { code: string; message: string; status: number } {
  assert.ok(!v.ok, "expected a refusal");
  return v.failure;
}

// ---- the AWS documentation's worked example (header-signed) ----

const IAM_AT = Date.UTC(2015, 7, 30, 12, 36, 0);
const iamRequest = (signature: string, extra: Record<string, string> = {}) =>
  wire("https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08", {
    "content-type": "application/x-www-form-urlencoded; charset=utf-8",
    host: "iam.amazonaws.com",
    "x-amz-date": "20150830T123600Z",
    authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, " +
      `SignedHeaders=content-type;host;x-amz-date, Signature=${signature}`,
    ...extra,
  });
const IAM_SIGNATURE = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";

Deno.test("sigv4: the AWS docs' header-signed ListUsers example verifies", async () => {
  const v = await verify(iamRequest(IAM_SIGNATURE), IAM_AT, undefined, "iam");
  assert.deepEqual(v, {
    ok: true,
    accessKeyId: "AKIDEXAMPLE",
    region: "us-east-1",
    signedHeaders: ["content-type", "host", "x-amz-date"],
  });
  const bad = failed(
    await verify(iamRequest(IAM_SIGNATURE.replace("5d", "5e")), IAM_AT, undefined, "iam"),
  );
  assert.equal(bad.code, "SignatureDoesNotMatch");
  assert.equal(bad.status, 403);
  // A signed header whose value changed in transit.
  const moved = iamRequest(IAM_SIGNATURE, { "content-type": "application/json" });
  assert.equal(failed(await verify(moved, IAM_AT, undefined, "iam")).code, "SignatureDoesNotMatch");
  // Signed for IAM, presented to STS.
  assert.equal(
    failed(await verify(iamRequest(IAM_SIGNATURE), IAM_AT)).message,
    "Credential should be scoped to correct service: 'sts'. ",
  );
});

// ---- one presigned request worked out by hand ----

/**
 * Canonical request per the SigV4 docs; its SHA-256 and the signature were computed with
 * openssl alone:
 *   CH=$(openssl dgst -sha256 -hex < creq.txt)
 *   K1=$(printf 20250314 | openssl dgst -sha256 -mac HMAC -macopt "key:AWS4$SECRET" -hex)
 *   K2=…us-east-1 with hexkey:$K1, K3=…sts, K4=…aws4_request, then the string to sign with K4.
 */
const HAND_AT = Date.UTC(2025, 2, 14, 15, 9, 26);
const HAND_QUERY = "Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256" +
  "&X-Amz-Credential=AKIDEXAMPLE%2F20250314%2Fus-east-1%2Fsts%2Faws4_request" +
  "&X-Amz-Date=20250314T150926Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-ssm-proxy-nonce";
const HAND_CANONICAL = [
  "GET",
  "/",
  HAND_QUERY,
  "host:127.0.0.1:4566",
  "x-ssm-proxy-nonce:n0nce-4f1d",
  "",
  "host;x-ssm-proxy-nonce",
  EMPTY_SHA256,
].join("\n");
const HAND_STRING_TO_SIGN = "AWS4-HMAC-SHA256\n20250314T150926Z\n" +
  "20250314/us-east-1/sts/aws4_request\n" +
  "af7644ee80bf61ee2d5116587e45dbbbdd484d2684803166c3a37b2368711650";
const HAND_SIGNATURE = "dbca1318caa7cc2819b9cad213c40845d405edbdf021a93ae499f2f92c5311ac";
// The agent would get the parameters in any order; the canonical form sorts them.
const HAND_URL = `http://127.0.0.1:4566/?X-Amz-Signature=${HAND_SIGNATURE}&` +
  HAND_QUERY.split("&").reverse().join("&");
const handRequest = (headers: Record<string, string> = { "x-ssm-proxy-nonce": "n0nce-4f1d" }) =>
  wire(HAND_URL, { host: "127.0.0.1:4566", ...headers });

Deno.test("sigv4: a presigned request worked out by hand, step by step", async () => {
  const canonical = await canonicalRequest(handRequest(), ["host", "x-ssm-proxy-nonce"]);
  assert.equal(canonical, HAND_CANONICAL);
  const toSign = await stringToSign(
    "20250314T150926Z",
    "20250314/us-east-1/sts/aws4_request",
    canonical,
  );
  assert.equal(toSign, HAND_STRING_TO_SIGN);
  assert.equal(
    await signatureOf(SECRET, "20250314/us-east-1/sts/aws4_request", toSign),
    HAND_SIGNATURE,
  );
  assert.ok((await verify(handRequest(), HAND_AT + 60_000)).ok);
});

Deno.test("sigv4: the nonce bound into a presigned request cannot be swapped or dropped", async () => {
  const swapped = failed(await verify(handRequest({ "x-ssm-proxy-nonce": "n0nce-0000" }), HAND_AT));
  assert.equal(swapped.code, "SignatureDoesNotMatch");
  const dropped = failed(await verify(handRequest({}), HAND_AT));
  assert.deepEqual(dropped, {
    code: "IncompleteSignature",
    message: "'x-ssm-proxy-nonce' is named as a SignedHeader, but it does not exist in the HTTP " +
      "request.",
    status: 400,
  });
  // Another host than the one signed (the request replayed elsewhere).
  const elsewhere = wire(HAND_URL, { host: "127.0.0.1:4567", "x-ssm-proxy-nonce": "n0nce-4f1d" });
  assert.equal(failed(await verify(elsewhere, HAND_AT)).code, "SignatureDoesNotMatch");
});

Deno.test("sigv4: presigned expiry and clock skew, in STS's words", async () => {
  const late = failed(await verify(handRequest(), HAND_AT + 61_000));
  assert.deepEqual(late, {
    code: "SignatureDoesNotMatch",
    message: "Signature expired: 20250314T150926Z is now earlier than 20250314T150927Z " +
      "(20250314T151027Z - 60 sec.)",
    status: 403,
  });
  const early = failed(await verify(handRequest(), HAND_AT - 15 * 60_000 - 1000));
  assert.deepEqual(early, {
    code: "SignatureDoesNotMatch",
    message: "Signature not yet current: 20250314T150926Z is still later than " +
      "20250314T150925Z (20250314T145425Z + 15 min.)",
    status: 403,
  });
  assert.ok((await verify(handRequest(), HAND_AT - 15 * 60_000)).ok, "15 min ahead is fine");
  const longLived = wire(HAND_URL.replace("X-Amz-Expires=60", "X-Amz-Expires=3600"), {
    host: "127.0.0.1:4566",
    "x-ssm-proxy-nonce": "n0nce-4f1d",
  });
  assert.match(
    failed(await verify(longLived, HAND_AT + 16 * 60_000)).message,
    /^Signature expired: .* - 15 min\.\)$/,
    "STS never honours more than 15 minutes",
  );
});

Deno.test("sigv4: unknown keys, malformed claims and unsigned Host are refused", async () => {
  const unknown = failed(await verify(handRequest(), HAND_AT, {}));
  assert.deepEqual(unknown, {
    code: "InvalidClientTokenId",
    message: "The security token included in the request is invalid.",
    status: 403,
  });
  const noHost = wire(HAND_URL.replace("host%3Bx-ssm-proxy-nonce", "x-ssm-proxy-nonce"), {
    "x-ssm-proxy-nonce": "n0nce-4f1d",
  });
  assert.deepEqual(failed(await verify(noHost, HAND_AT)), {
    code: "IncompleteSignature",
    message: "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
    status: 400,
  });
  const noSignature = wire(HAND_URL.replace(/X-Amz-Signature=\w+&/, ""), {});
  assert.equal(
    failed(await verify(noSignature, HAND_AT)).message,
    "AWS query-string parameters must include 'X-Amz-Signature'. " +
      "Re-examine the query-string parameters.",
  );
  const both = handRequest({ authorization: "AWS4-HMAC-SHA256 Credential=x" });
  assert.equal(failed(await verify(both, HAND_AT)).code, "IncompleteSignature");
  const cases: [string, string, RegExp][] = [
    ["X-Amz-Expires=60", "X-Amz-Expires=soon", /^X-Amz-Expires must be a whole number/],
    ["X-Amz-Expires=60", "X-Amz-Expires=604801", /^X-Amz-Expires must be a whole number/],
    ["X-Amz-Date=20250314T150926Z", "X-Amz-Date=2025-03-14", /^Date must be in ISO-8601/],
    ["%2Fus-east-1%2F", "%2F", /^Credential must have exactly 5 slash-delimited elements/],
    ["AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512", /^Unsupported AWS 'algorithm'/],
    ["&Version", "&X-Amz-Date=20250314T150926Z&Version", /'X-Amz-Date' appears more than once/],
  ];
  for (const [from, to, re] of cases) {
    const f = failed(await verify(wire(HAND_URL.replace(from, to), {}), HAND_AT));
    assert.equal(f.code, "IncompleteSignature", to);
    assert.match(f.message, re);
  }
  const otherDay = wire(HAND_URL.replace("%2F20250314%2F", "%2F20250313%2F"), {});
  assert.equal(
    failed(await verify(otherDay, HAND_AT)).message,
    "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: " +
      "'20250313' != '20250314', from 'X-Amz-Date'.",
  );
});

Deno.test("sigv4: header form requires its parts and a date within 15 minutes", async () => {
  const parts = failed(
    await verify(
      wire("https://sts.amazonaws.com/", {
        authorization:
          "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250314/us-east-1/sts/aws4_request",
      }),
      HAND_AT,
    ),
  );
  assert.equal(
    parts.message,
    "Authorization header requires 'Signature' parameter. Authorization header requires " +
      "'SignedHeaders' parameter. Authorization header requires existence of either a " +
      "'X-Amz-Date' or a 'Date' header. Authorization=AWS4-HMAC-SHA256 " +
      "Credential=AKIDEXAMPLE/20250314/us-east-1/sts/aws4_request",
  );
  const old = failed(
    await verify(iamRequest(IAM_SIGNATURE), IAM_AT + 16 * 60_000, undefined, "iam"),
  );
  assert.equal(
    old.message,
    "Signature expired: 20150830T123600Z is now earlier than 20150830T123700Z " +
      "(20150830T125200Z - 15 min.)",
  );
});

// ---- botocore's presigned GetCallerIdentity, with and without a session token ----

const BOTO_AT = Date.UTC(2025, 0, 2, 3, 4, 5);
const BOTO_BASE = "https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity" +
  "&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256" +
  "&X-Amz-Credential=AKIDEXAMPLE%2F20250102%2Feu-west-1%2Fsts%2Faws4_request" +
  "&X-Amz-Date=20250102T030405Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id";
const BOTO_SESSION = `${BOTO_BASE}&X-Amz-Security-Token=FQoGZXIvYXdzE%2Fsession%2Btoken%3D` +
  "&X-Amz-Signature=e91c6b65c147b98a1cd7c672a99a561973a549e5e7e3e9d9ff59ab862be43783";
const BOTO_PLAIN = `${BOTO_BASE}` +
  "&X-Amz-Signature=0e60aea7faf14bb3f6700772f8fc9479aebba746a1e4aaf63ea762bdd40d7eb9";
const TOKEN = "FQoGZXIvYXdzE/session+token=";
const cluster = (url: string, name = "my-cluster") =>
  wire(url, { host: "sts.eu-west-1.amazonaws.com", "x-k8s-aws-id": name });

Deno.test("sigv4: botocore's presigned URLs verify; session tokens must match", async () => {
  const temp = { AKIDEXAMPLE: { secretAccessKey: SECRET, sessionToken: TOKEN } };
  assert.ok((await verify(cluster(BOTO_SESSION), BOTO_AT, temp)).ok);
  assert.ok((await verify(cluster(BOTO_PLAIN), BOTO_AT)).ok);
  assert.equal(
    failed(await verify(cluster(BOTO_PLAIN, "other"), BOTO_AT)).code,
    "SignatureDoesNotMatch",
  );
  const invalid = "InvalidClientTokenId";
  // Temporary credentials without their token, with another token, and a token on a key
  // that has none.
  assert.equal(failed(await verify(cluster(BOTO_PLAIN), BOTO_AT, temp)).code, invalid);
  const otherToken = { AKIDEXAMPLE: { secretAccessKey: SECRET, sessionToken: `${TOKEN}x` } };
  assert.equal(failed(await verify(cluster(BOTO_SESSION), BOTO_AT, otherToken)).code, invalid);
  assert.equal(failed(await verify(cluster(BOTO_SESSION), BOTO_AT)).code, invalid);
  // A token header the signature does not cover is refused even when it is right.
  const loose = wire(BOTO_PLAIN, {
    host: "sts.eu-west-1.amazonaws.com",
    "x-k8s-aws-id": "my-cluster",
    "x-amz-security-token": TOKEN,
  });
  assert.equal(
    failed(await verify(loose, BOTO_AT, temp)).message,
    "'x-amz-security-token' must be a 'SignedHeader' in the AWS Authorization.",
  );
});

// ---- the client's signer, on random input ----

function rfc3986(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16)}`);
}

Deno.test("sigv4: whatever @smithy/signature-v4 presigns verifies, and any change breaks it", async () => {
  const headerValue = fc.stringMatching(/^[!-~]([ -~]{0,30}[!-~])?$/);
  await fc.assert(
    fc.asyncProperty(
      headerValue,
      fc.string({ unit: "grapheme", maxLength: 20 }),
      fc.constantFrom("GET", "POST"),
      fc.integer({ min: 1, max: 900 }),
      fc.option(fc.string({ minLength: 1, maxLength: 40 }), { nil: undefined }),
      async (nonce, extra, method, expiresIn, sessionToken) => {
        const credentials = { accessKeyId: "AKIDEXAMPLE", secretAccessKey: SECRET, sessionToken };
        const signer = new SignatureV4({
          service: "sts",
          region: "eu-central-1",
          credentials,
          sha256: Sha256,
        });
        const body = method === "POST" ? "Action=GetCallerIdentity&Version=2011-06-15" : "";
        const headers: Record<string, string> = {
          host: "127.0.0.1:4566",
          "x-ssm-proxy-nonce": nonce,
        };
        if (method === "POST") headers["content-type"] = "application/x-www-form-urlencoded";
        const signed = await signer.presign({
          method,
          protocol: "http:",
          hostname: "127.0.0.1",
          port: 4566,
          path: "/",
          query: method === "GET"
            ? { Action: "GetCallerIdentity", Version: "2011-06-15", Extra: extra }
            : { Extra: extra },
          headers,
          ...(body ? { body } : {}),
        }, { expiresIn, signingDate: new Date(BOTO_AT) });
        const qs = Object.entries(signed.query ?? {})
          .map(([k, v]) => `${rfc3986(k)}=${rfc3986(String(v))}`).join("&");
        const url = `http://127.0.0.1:4566/?${qs}`;
        const keys = { AKIDEXAMPLE: { secretAccessKey: SECRET, sessionToken } };
        const good = await verify(wire(url, headers, method, body), BOTO_AT + 1000, keys);
        assert.ok(good.ok, JSON.stringify(good));
        const tampered = [
          wire(url, { ...headers, "x-ssm-proxy-nonce": `${nonce}0` }, method, body),
          wire(url.replace(/Extra=[^&]*/, `Extra=${rfc3986(extra)}0`), headers, method, body),
          wire(url, headers, method, `${body}&Action=AssumeRole`),
        ];
        for (const t of tampered) {
          assert.equal(failed(await verify(t, BOTO_AT + 1000, keys)).code, "SignatureDoesNotMatch");
        }
      },
    ),
    { numRuns: 60 },
  );
});
