/**
 * The identity proof end to end against the emulator's STS, which checks SigV4 for real: the
 * client builds the proof through the SDK's credential chain (environment credentials, the
 * emulator as AWS_ENDPOINT_URL_STS), the agent side executes it with fetch.
 */

import assert from "node:assert/strict";
import {
  buildProof,
  configuredStsHosts,
  decodeProof,
  encodeProof,
  executeProof,
  type IdentityProof,
  isStsHost,
  NONCE_HEADER,
} from "../../src/aws/identity_proof.ts";
import { type Emulator, startEmulator } from "../../src/emulator/server.ts";
import { parseFixtures } from "../../src/emulator/fixtures.ts";
import { ExitCode, UserError } from "../../src/errors.ts";
import { awsEnv, withEnv } from "../support/aws_env.ts";
import { neverCalled, NONCE, OTHER, refusal } from "./identity_proof_support.ts";

const ROLE_ARN = "arn:aws:sts::111122223333:assumed-role/ops-admin/deploy";
const WORLD = `
identities:
  - accessKeyId: AKIAJANE000000000001
    secretAccessKey: jane-secret
    arn: arn:aws:iam::210987654321:user/jane
    userId: AIDAJANE0000000000001
  - accessKeyId: ASIAOPS0000000000001
    secretAccessKey: ops-secret
    sessionToken: ops/session+token=
    arn: ${ROLE_ARN}
    userId: AROAOPSADMIN000000001:deploy
`;

const JANE = { AWS_ACCESS_KEY_ID: "AKIAJANE000000000001", AWS_SECRET_ACCESS_KEY: "jane-secret" };
const OPS = {
  AWS_ACCESS_KEY_ID: "ASIAOPS0000000000001",
  AWS_SECRET_ACCESS_KEY: "ops-secret",
  AWS_SESSION_TOKEN: "ops/session+token=",
};

/** The emulator, and the environment a client uses to reach its STS with these credentials. */
async function withWorld(
  fn: (
    emu: Emulator,
    host: string,
    as: (creds: Record<string, string>) => Promise<IdentityProof>,
  ) => Promise<void>,
): Promise<void> {
  const emu = await startEmulator({ port: 0, pacing: false, fixtures: parseFixtures(WORLD) });
  const { AWS_ENDPOINT_URL: _, ...base } = awsEnv(emu.url);
  const as = (creds: Record<string, string>, nonce = NONCE) =>
    withEnv(
      { ...base, AWS_REGION: "eu-west-1", AWS_ENDPOINT_URL_STS: emu.url, ...creds },
      () => buildProof({ aws: {}, nonce }),
    );
  try {
    await fn(emu, new URL(emu.url).host, as);
  } finally {
    await emu.close();
  }
}

Deno.test("identity proof: a user's and an assumed role's proofs name them", async () => {
  await withWorld(async (_emu, host, as) => {
    const jane = await as(JANE);
    assert.deepEqual(await executeProof(jane, { nonce: NONCE, allowedHosts: [host] }), {
      account: "210987654321",
      arn: "arn:aws:iam::210987654321:user/jane",
      userId: "AIDAJANE0000000000001",
    });
    const ops = await as(OPS);
    assert.deepEqual(await executeProof(ops, { nonce: NONCE, allowedHosts: [host] }), {
      account: "111122223333",
      arn: ROLE_ARN,
      userId: "AROAOPSADMIN000000001:deploy",
    });
    // Through the hello's encoding too.
    const decoded = decodeProof(encodeProof(ops), { allowedHosts: [host] });
    assert.equal(
      (await executeProof(decoded, { nonce: NONCE, allowedHosts: [host] })).arn,
      ROLE_ARN,
    );
  });
});

Deno.test("identity proof: its shape: presigned GET, the nonce header signed, token inside, no secret", async () => {
  await withWorld(async (emu, _host, as) => {
    const ops = await as(OPS);
    assert.equal(ops.method, "GET");
    assert.deepEqual(Object.keys(ops).sort(), ["headers", "method", "url"], "no body");
    assert.deepEqual(ops.headers, { [NONCE_HEADER]: NONCE });
    assert.deepEqual(Object.keys(JSON.parse(encodeProof(ops))).sort(), ["h", "m", "u"]);
    const url = new URL(ops.url);
    assert.equal(url.origin, emu.url);
    assert.equal(url.pathname, "/");
    const q = url.searchParams;
    assert.deepEqual(q.getAll("Action"), ["GetCallerIdentity"]);
    assert.deepEqual(q.getAll("Version"), ["2011-06-15"]);
    assert.equal(q.get("X-Amz-SignedHeaders"), "host;x-ssm-proxy-nonce");
    assert.equal(q.get("X-Amz-Security-Token"), "ops/session+token=");
    assert.equal(q.get("X-Amz-Expires"), "60");
    assert.match(
      q.get("X-Amz-Credential")!,
      /^ASIAOPS0000000000001\/\d{8}\/eu-west-1\/sts\/aws4_request$/,
    );
    assert.deepEqual(
      [...new Set(q.keys())].sort(),
      [
        "Action",
        "Version",
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-Security-Token",
        "X-Amz-Signature",
        "X-Amz-SignedHeaders",
      ],
    );
    assert.ok(!encodeProof(ops).includes("ops-secret"));
    const jane = new URL((await as(JANE)).url).searchParams;
    assert.equal(jane.has("X-Amz-Security-Token"), false);
    // Replayed as it is, by a plain GET with its one header, STS names the signer.
    const res = await fetch(ops.url, { headers: ops.headers });
    assert.equal(res.status, 200);
    assert.match(
      await res.text(),
      /<Arn>arn:aws:sts::111122223333:assumed-role\/ops-admin\/deploy<\/Arn>/,
    );
  });
});

Deno.test("identity proof: built for the SDK's STS endpoint: override, then regional", async () => {
  const creds = { accessKeyId: "AKIAJANE000000000001", secretAccessKey: "jane-secret" };
  const env: Record<string, string> = {
    ...awsEnv("http://127.0.0.1:1"),
    AWS_REGION: "ap-southeast-2",
  };
  const url = (vars: Record<string, string>) =>
    withEnv(vars, () => buildProof({ aws: {}, nonce: NONCE, credentials: creds })).then((p) =>
      new URL(p.url)
    );
  assert.equal((await url(env)).origin, "http://127.0.0.1:1");
  assert.equal(
    (await url({ ...env, AWS_ENDPOINT_URL_STS: "http://sts.local:9" })).host,
    "sts.local:9",
  );
  const { AWS_ENDPOINT_URL: _, ...plain } = env;
  const saved = Deno.env.get("AWS_ENDPOINT_URL");
  Deno.env.delete("AWS_ENDPOINT_URL");
  try {
    const regional = await url(plain);
    assert.equal(regional.origin, "https://sts.ap-southeast-2.amazonaws.com");
    assert.match(regional.searchParams.get("X-Amz-Credential")!, /\/ap-southeast-2\/sts\//);
    const flag = await withEnv(
      plain,
      () => buildProof({ aws: { region: "ca-central-1" }, nonce: NONCE, credentials: creds }),
    );
    assert.ok(flag.url.startsWith("https://sts.ca-central-1.amazonaws.com/?"));
  } finally {
    if (saved !== undefined) Deno.env.set("AWS_ENDPOINT_URL", saved);
  }
  assert.deepEqual(
    configuredStsHosts({ AWS_ENDPOINT_URL_STS: "http://a:1", AWS_ENDPOINT_URL: "https://b" }),
    ["a:1", "b"],
  );
});

Deno.test("identity proof: a nonce that is not 16-64 of [A-Za-z0-9_-] is a bug", async () => {
  const creds = { accessKeyId: "AKIAJANE000000000001", secretAccessKey: "jane-secret" };
  for (const nonce of ["short", "x".repeat(65), "sixteen-chars-ok!", "n0nce with space1", ""]) {
    await assert.rejects(
      buildProof({ aws: { region: "eu-west-1" }, nonce, credentials: creds }),
      (e: Error) => !(e instanceof UserError) && /nonce must be 16-64/.test(e.message),
      nonce,
    );
  }
  const ok = await buildProof({
    aws: { region: "eu-west-1" },
    nonce: "a".repeat(64),
    credentials: creds,
  });
  assert.equal(ok.headers[NONCE_HEADER].length, 64);
});

Deno.test("identity proof: a wrong nonce or an old or future X-Amz-Date is refused unsent", async () => {
  await withWorld(async (_emu, host, as) => {
    const p = await as(JANE);
    const o = { allowedHosts: [host], fetch: neverCalled };
    await refusal(
      executeProof(p, { ...o, nonce: OTHER }),
      /^identity proof refused: it answers another nonce/,
    );
    const signed = Date.parse(
      new URL(p.url).searchParams.get("X-Amz-Date")!.replace(
        /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/,
        "$1-$2-$3T$4:$5:$6Z",
      ),
    );
    await refusal(
      executeProof(p, { ...o, nonce: NONCE, now: new Date(signed + 301_000) }),
      /^identity proof refused: it was signed at \d{8}T\d{6}Z, 301 s old, beyond the 300 s allowed/,
    );
    await refusal(
      executeProof(p, { ...o, nonce: NONCE, now: new Date(signed + 11_000), maxAgeSeconds: 10 }),
      /11 s old, beyond the 10 s allowed/,
    );
    await refusal(
      executeProof(p, { ...o, nonce: NONCE, now: new Date(signed - 301_000) }),
      /301 s in the future/,
    );
    // Inside the window the same proof goes through.
    const me = await executeProof(p, {
      nonce: NONCE,
      allowedHosts: [host],
      now: new Date(signed + 20_000),
    });
    assert.equal(me.account, "210987654321");
  });
});

Deno.test("identity proof: a proof replayed with another nonce header fails STS's signature check", async () => {
  await withWorld(async (_emu, host, as) => {
    const p = await as(JANE);
    const swapped = { ...p, headers: { ...p.headers, [NONCE_HEADER]: OTHER } };
    const e = await refusal(
      executeProof(swapped, { nonce: OTHER, allowedHosts: [host] }),
      /^identity proof refused: STS says SignatureDoesNotMatch: The request signature we calculated does not match/,
    );
    assert.equal(e.exitCode, ExitCode.Auth);
  });
});

Deno.test("identity proof: an altered query is refused, and STS would refuse it too", async () => {
  await withWorld(async (_emu, host, as) => {
    const p = await as(OPS);
    const altered = (edit: (q: URLSearchParams) => void): IdentityProof => {
      const u = new URL(p.url);
      edit(u.searchParams);
      return { ...p, url: u.toString() };
    };
    // Through URLSearchParams but unaltered, it still verifies: each case below fails for its
    // alteration alone.
    const same = altered(() => {});
    assert.equal(
      (await executeProof(same, { nonce: NONCE, allowedHosts: [host] })).arn,
      ROLE_ARN,
    );
    // What the emulator's STS says to each, sent anyway: the query is inside the signature.
    const cases: [string, IdentityProof, RegExp, string][] = [
      [
        "another action",
        altered((q) => q.set("Action", "GetSessionToken")),
        /^identity proof refused: its Action is "GetSessionToken", not GetCallerIdentity$/,
        "SignatureDoesNotMatch",
      ],
      [
        "a parameter added",
        altered((q) => q.append("DurationSeconds", "900")),
        /^identity proof refused: its url has a parameter "DurationSeconds"$/,
        "SignatureDoesNotMatch",
      ],
      [
        "the action twice",
        altered((q) => q.append("Action", "GetCallerIdentity")),
        /^identity proof refused: its url has Action twice$/,
        "SignatureDoesNotMatch",
      ],
      [
        "another version",
        altered((q) => q.set("Version", "2011-06-16")),
        /^identity proof refused: its Version is "2011-06-16", not 2011-06-15$/,
        "NoSuchVersion",
      ],
    ];
    for (const [what, bad, re, code] of cases) {
      await refusal(
        executeProof(bad, { nonce: NONCE, allowedHosts: [host], fetch: neverCalled }),
        re,
      );
      const res = await fetch(bad.url, { headers: bad.headers });
      assert.ok(res.status >= 400, what);
      assert.match(await res.text(), new RegExp(`<Code>${code}</Code>`), what);
    }
  });
});

Deno.test("identity proof: only STS endpoints, or a configured one, are sent a proof", async () => {
  await withWorld(async (_emu, host, as) => {
    const p = await as(JANE);
    const o = { nonce: NONCE, fetch: neverCalled };
    const at = (origin: string) => ({ ...p, url: p.url.replace(/^http:\/\/[^/]+/, origin) });
    await refusal(
      executeProof(at("https://evil.example.com"), o),
      /^identity proof refused: evil\.example\.com is not an STS endpoint$/,
    );
    await refusal(
      executeProof(at("https://sts.us-east-1.amazonaws.com.evil.example"), o),
      /is not an STS endpoint$/,
    );
    await refusal(
      executeProof(at("https://sts.us-east-1.amazonaws.com:8443"), o),
      /sts\.us-east-1\.amazonaws\.com:8443 is not an STS endpoint$/,
    );
    // The emulator itself is plain http: refused unless configured.
    await refusal(executeProof(p, o), /its url is not https/);
    await refusal(
      executeProof(at(`https://${host}`), o),
      /is not an STS endpoint$/,
    );
  });
  for (
    const h of [
      "sts.amazonaws.com",
      "sts.us-east-1.amazonaws.com",
      "sts-fips.us-gov-west-1.amazonaws.com",
      "sts.cn-north-1.amazonaws.com.cn",
      "sts.eu-west-1.api.aws",
      "sts-fips.us-east-2.api.aws",
      "sts.dualstack.ap-south-1.amazonaws.com",
      "sts.ap-southeast-5.amazonaws.com",
    ]
  ) assert.ok(isStsHost(h), h);
  for (
    const h of [
      "sts.amazonaws.com.",
      "sts.us-east-1.amazonaws.com.evil.example",
      "xsts.us-east-1.amazonaws.com",
      "ssm.us-east-1.amazonaws.com",
      "sts.us-east-1.evil.com",
      "evil.com",
      "sts.amazonaws.com.cn.evil",
      "sts.US-EAST-1.amazonaws.com",
    ]
  ) assert.ok(!isStsHost(h), h);
});
