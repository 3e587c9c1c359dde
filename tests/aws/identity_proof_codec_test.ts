/**
 * The identity proof's hello form and the agent's reading of STS's answers, without the
 * emulator: decoding any text yields a well-formed proof or one line, and STS's failures (which
 * only a real endpoint produces: the emulator does not break) come back as one line each.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  buildProof,
  decodeProof,
  encodeProof,
  executeProof,
  type IdentityProof,
  MAX_PROOF_BYTES,
  NONCE_HEADER,
} from "../../src/aws/identity_proof.ts";
import { ExitCode, UserError } from "../../src/errors.ts";
import { awsEnv, withEnv } from "../support/aws_env.ts";
import { NONCE, refusal } from "./identity_proof_support.ts";

const EMULATOR = "127.0.0.1:4566";

/** A real proof for temporary credentials, to a plain-http endpoint; signing needs no network. */
function sample(): Promise<IdentityProof> {
  const credentials = {
    accessKeyId: "ASIAOPS0000000000001",
    secretAccessKey: "ops-secret",
    sessionToken: "ops/session+token=",
  };
  return withEnv(
    { ...awsEnv(`http://${EMULATOR}`), AWS_REGION: "eu-west-1" },
    () => buildProof({ aws: {}, nonce: NONCE, credentials }),
  );
}

Deno.test("identity proof: STS's own answers and failures each come back as one line", async () => {
  const p: IdentityProof = {
    method: "GET",
    url: "https://sts.eu-west-1.amazonaws.com/?" + new URLSearchParams({
      Action: "GetCallerIdentity",
      Version: "2011-06-15",
      "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
      "X-Amz-Credential": "AKIAJANE000000000001/20250102/eu-west-1/sts/aws4_request",
      "X-Amz-Date": "20250102T030405Z",
      "X-Amz-Expires": "60",
      "X-Amz-SignedHeaders": "host;x-ssm-proxy-nonce",
      "X-Amz-Signature": "0".repeat(64),
    }),
    headers: { [NONCE_HEADER]: NONCE },
  };
  const now = new Date("2025-01-02T03:04:10Z");
  // What only a real STS endpoint could say; the emulator does not produce broken answers.
  const answering = (status: number, body: string): typeof fetch => () =>
    Promise.resolve(new Response(body, { status }));
  const run = (f: typeof fetch) => executeProof(p, { nonce: NONCE, now, fetch: f });
  // What reaches fetch: a GET of the signed URL with its one header, no body, no redirects.
  const sent: [string, RequestInit][] = [];
  await run((input, init) => {
    sent.push([String(input), init ?? {}]);
    return answering(503, "")(input, init);
  }).catch(() => {});
  assert.equal(sent.length, 1);
  const [url, { signal, ...init }] = sent[0];
  assert.equal(url, p.url);
  assert.deepEqual(init, { method: "GET", headers: p.headers, redirect: "manual" });
  assert.ok(signal instanceof AbortSignal);
  await refusal(
    run(answering(503, "<html>Service Unavailable\n</html>")),
    /^STS at sts\.eu-west-1\.amazonaws\.com answered HTTP 503 to an identity proof, without an error document$/,
  );
  await refusal(
    run(
      answering(
        403,
        "<ErrorResponse><Error><Code>ExpiredToken</Code><Message>The security\ntoken &amp; all</Message></Error></ErrorResponse>",
      ),
    ),
    /^identity proof refused: STS says ExpiredToken: The security token & all$/,
  );
  await refusal(
    run(
      answering(
        200,
        "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:iam::210987654321:user/x</Arn><UserId>AIDAX</UserId><Account>999999999999</Account></GetCallerIdentityResult></GetCallerIdentityResponse>",
      ),
    ),
    /no usable identity \(Account "999999999999"/,
  );
  await refusal(
    run(() => Promise.reject(new TypeError("dns error: no such host"))),
    /^could not reach STS at sts\.eu-west-1\.amazonaws\.com to check an identity proof: dns error: no such host$/,
  );
  const throttled = await refusal(
    run(
      answering(
        400,
        "<ErrorResponse><Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>",
      ),
    ),
    /^STS at sts\.eu-west-1\.amazonaws\.com could not check an identity proof: Throttling: Rate exceeded$/,
  );
  assert.equal(throttled.exitCode, ExitCode.Remote);
  const redirect = await refusal(
    run(answering(302, "")),
    /answered HTTP 302/,
  );
  assert.equal(redirect.exitCode, ExitCode.Remote);
  assert.deepEqual(
    await run(
      answering(
        200,
        "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:sts::210987654321:assumed-role/r/jane&#64;example.com</Arn><UserId>AROAX:jane&#x40;example.com</UserId><Account>210987654321</Account></GetCallerIdentityResult></GetCallerIdentityResponse>",
      ),
    ),
    {
      account: "210987654321",
      arn: "arn:aws:sts::210987654321:assumed-role/r/jane@example.com",
      userId: "AROAX:jane@example.com",
    },
  );
});

// ---- the hello's encoding ----

const arbProof: fc.Arbitrary<IdentityProof> = fc.record({
  https: fc.boolean(),
  region: fc.constantFrom("us-east-1", "eu-west-1", "ap-southeast-2", "cn-north-1"),
  key: fc.stringMatching(/^A[SK]IA[A-Z0-9]{16}$/),
  date: fc.date({ min: new Date("2020-01-01"), max: new Date("2035-01-01"), noInvalidDate: true }),
  expires: fc.integer({ min: 1, max: 900 }),
  token: fc.option(fc.stringMatching(/^[A-Za-z0-9+/=]{1,600}$/), { nil: undefined }),
  signature: fc.stringMatching(/^[0-9a-f]{64}$/),
  nonce: fc.stringMatching(/^[A-Za-z0-9_-]{16,64}$/),
}).map((r) => {
  const amz = r.date.toISOString().replace(/\.\d{3}Z$/, "Z").replace(/[-:]/g, "");
  const q = new URLSearchParams({
    Action: "GetCallerIdentity",
    Version: "2011-06-15",
    ...(r.token !== undefined ? { "X-Amz-Security-Token": r.token } : {}),
    "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
    "X-Amz-Credential": `${r.key}/${amz.slice(0, 8)}/${r.region}/sts/aws4_request`,
    "X-Amz-Date": amz,
    "X-Amz-Expires": String(r.expires),
    "X-Amz-SignedHeaders": "host;x-ssm-proxy-nonce",
    "X-Amz-Signature": r.signature,
  });
  const origin = r.https ? `https://sts.${r.region}.amazonaws.com` : "http://127.0.0.1:4566";
  return { method: "GET" as const, url: `${origin}/?${q}`, headers: { [NONCE_HEADER]: r.nonce } };
});

Deno.test("identity proof: encode then decode gives the proof back", () => {
  fc.assert(
    fc.property(arbProof, (p) => {
      const text = encodeProof(p);
      assert.ok(new TextEncoder().encode(text).length <= MAX_PROOF_BYTES);
      assert.deepEqual(decodeProof(text, { allowedHosts: [EMULATOR] }), p);
    }),
    { numRuns: 300 },
  );
});

Deno.test("identity proof: decoding any text gives a proof or one line, never a crash", () => {
  const mutated = fc.tuple(arbProof, fc.nat(), fc.string({ maxLength: 3 })).map(([p, at, s]) => {
    const t = encodeProof(p);
    const i = at % t.length;
    return t.slice(0, i) + s + t.slice(i + 1);
  });
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.json(), mutated), (text) => {
      try {
        decodeProof(text, { allowedHosts: [EMULATOR] });
      } catch (e) {
        assert.ok(e instanceof UserError, String(e));
        assert.match(e.message, /^identity proof refused: [^\n]+$/);
      }
    }),
    { numRuns: 1000 },
  );
});

Deno.test("identity proof: an oversized or malformed encoded proof is refused", async () => {
  {
    const p = await sample();
    const o = { allowedHosts: [EMULATOR] };
    const good = JSON.parse(encodeProof(p));
    const enc = (patch: Record<string, unknown>) => JSON.stringify({ ...good, ...patch });
    const withQuery = (edit: (q: URLSearchParams) => void) => {
      const u = new URL(p.url);
      edit(u.searchParams);
      return enc({ u: u.toString() });
    };
    // The form before proofs were GETs: a POST whose body named the action.
    const oldPost = enc({
      m: "POST",
      h: { "content-type": "application/x-www-form-urlencoded", [NONCE_HEADER]: NONCE },
      b: "Action=GetCallerIdentity&Version=2011-06-15",
    });
    const cases: [string, RegExp][] = [
      [enc({ x: "x".repeat(MAX_PROOF_BYTES) }), /it is over 4096 bytes$/],
      ["{", /it is not JSON$/],
      ["[]", /not an object of exactly m, u and h$/],
      [enc({ x: 1 }), /not an object of exactly m, u and h$/],
      [enc({ b: "" }), /not an object of exactly m, u and h$/],
      [oldPost, /not an object of exactly m, u and h$/],
      [enc({ m: "POST" }), /its method is not GET$/],
      [enc({ m: "get" }), /its method is not GET$/],
      [enc({ h: { ...good.h, authorization: "AWS4-HMAC-SHA256 x" } }), /headers are not exactly/],
      [enc({ h: { ...good.h, host: "evil" } }), /headers are not exactly/],
      [enc({ h: { ...good.h, "content-type": "text/plain" } }), /headers are not exactly/],
      [enc({ h: {} }), /headers are not exactly x-ssm-proxy-nonce$/],
      [enc({ h: [NONCE] }), /headers are not exactly/],
      [enc({ h: { ...good.h, [NONCE_HEADER]: "short" } }), /x-ssm-proxy-nonce header is not 16-64/],
      [enc({ u: 42 }), /its url is not a string$/],
      [enc({ u: "not a url" }), /its url is not a URL$/],
      [enc({ u: p.url.replace("http:", "ftp:") }), /its url is not https/],
      [enc({ u: p.url.replace("http://", "http://u:pw@") }), /has credentials/],
      [enc({ u: `${p.url}#x` }), /a fragment/],
      [
        withQuery((q) => q.delete("Action")),
        /has no Action: it is not a GetCallerIdentity call$/,
      ],
      [
        withQuery((q) => q.delete("Version")),
        /has no Version: it is not a GetCallerIdentity call$/,
      ],
      [
        withQuery((q) => q.set("Action", "AssumeRole")),
        /its Action is "AssumeRole", not GetCallerIdentity$/,
      ],
      [withQuery((q) => q.append("Action", "GetCallerIdentity")), /has Action twice$/],
      [withQuery((q) => q.append("Version", "2011-06-15")), /has Version twice$/],
      [withQuery((q) => q.set("Version", "2011-06-16")), /its Version is "2011-06-16", not/],
      [withQuery((q) => q.append("RoleArn", "x")), /has a parameter "RoleArn"$/],
      [withQuery((q) => q.append("toString", "")), /has a parameter "toString"$/],
      [
        withQuery((q) => q.delete("X-Amz-Signature")),
        /has no X-Amz-Signature: it is not presigned$/,
      ],
      [withQuery((q) => q.append("X-Amz-Date", q.get("X-Amz-Date")!)), /has X-Amz-Date twice$/],
      [
        withQuery((q) => q.set("X-Amz-SignedHeaders", "content-type;host;x-ssm-proxy-nonce")),
        /X-Amz-SignedHeaders is malformed$/,
      ],
      [withQuery((q) => q.set("X-Amz-SignedHeaders", "host")), /X-Amz-SignedHeaders is malformed$/],
      [
        withQuery((q) => q.set("X-Amz-Credential", "AKIA/20250101/eu-west-1/ssm/aws4_request")),
        /X-Amz-Credential is malformed$/,
      ],
      [withQuery((q) => q.set("X-Amz-Date", "20251301T000000Z")), /X-Amz-Date is not a date$/],
      [
        withQuery((q) => q.set("X-Amz-Security-Token", "a b")),
        /X-Amz-Security-Token is malformed$/,
      ],
    ];
    // Unedited, it decodes: each case fails for its edit alone.
    assert.deepEqual(decodeProof(encodeProof(p), o), p);
    for (const [text, re] of cases) {
      const e = await refusal(() => decodeProof(text, o), re);
      assert.match(e.message, /^identity proof refused: /);
      assert.equal(e.exitCode, ExitCode.Auth);
    }
    // Plain http is for a configured endpoint only.
    await refusal(() => decodeProof(encodeProof(p)), /its url is not https/);
    assert.throws(
      () => encodeProof({ ...p, url: `${p.url}${"x".repeat(MAX_PROOF_BYTES)}` }),
      /^UserError: the identity proof is \d+ bytes, over the 4096 the agent accepts/,
    );
  }
});
