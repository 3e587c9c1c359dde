/**
 * The emulator's STS with `identities:`: GetCallerIdentity answers for whoever signed, checked
 * for real, over HTTP. Header-signed calls come from the unmodified SDK client; presigned ones
 * from @smithy/signature-v4 (the client side's signer), executed with fetch the way
 * ssm-proxy-agent will execute them.
 */

import assert from "node:assert/strict";
import { Sha256 } from "@aws-crypto/sha256-js";
import { SignatureV4 } from "@smithy/signature-v4";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { createApi } from "../../src/emulator/api/mod.ts";
import { defaultFixtures, type Fixtures, parseFixtures } from "../../src/emulator/fixtures.ts";
import { SessionRegistry } from "../../src/emulator/sessions.ts";

const SSO_ROLE = "AWSReservedSSO_PowerUser_abc123def4567890";
const WORLD = `
account: "210987654321"
identities:
  - accessKeyId: AKIAJANE000000000001
    secretAccessKey: jane-secret
    arn: arn:aws:iam::210987654321:user/jane
    userId: AIDAJANE0000000000001
  - accessKeyId: ASIASSO0000000000001
    secretAccessKey: sso-secret
    sessionToken: sso/session+token=
    arn: arn:aws:sts::210987654321:assumed-role/${SSO_ROLE}/jane@example.com
  - accessKeyId: ASIAOPS0000000000001
    secretAccessKey: ops-secret
    sessionToken: ops-token
    arn: arn:aws:sts::111122223333:assumed-role/ops-admin/deploy
    userId: AROAOPSADMIN000000001:deploy
`;

const JANE = { accessKeyId: "AKIAJANE000000000001", secretAccessKey: "jane-secret" };
const SSO = {
  accessKeyId: "ASIASSO0000000000001",
  secretAccessKey: "sso-secret",
  sessionToken: "sso/session+token=",
};
const OPS = { accessKeyId: "ASIAOPS0000000000001", secretAccessKey: "ops-secret" };

interface Emu {
  url: string;
  host: string;
  advance(ms: number): void;
  now(): number;
}

async function withSts<T>(fixtures: Fixtures, fn: (emu: Emu) => Promise<T>): Promise<T> {
  let clock = Date.now();
  const api = createApi({
    registry: new SessionRegistry(() => "ws://x"),
    fixtures,
    now: () => clock,
  });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => await api(req) ?? new Response("not found", { status: 404 }),
  );
  const host = `127.0.0.1:${server.addr.port}`;
  try {
    return await fn({
      url: `http://${host}`,
      host,
      advance: (ms) => void (clock += ms),
      now: () => clock,
    });
  } finally {
    await server.shutdown();
  }
}

async function whoAmI(emu: Emu, credentials: typeof SSO | typeof JANE) {
  const c = new STSClient({ endpoint: emu.url, region: "eu-central-1", credentials });
  try {
    return await c.send(new GetCallerIdentityCommand({}));
  } finally {
    c.destroy();
  }
}

async function sdkError(p: Promise<unknown>): Promise<{ name: string; status?: number }> {
  try {
    await p;
  } catch (e) {
    const err = e as { name: string; $metadata?: { httpStatusCode?: number } };
    return { name: err.name, status: err.$metadata?.httpStatusCode };
  }
  assert.fail("expected the call to fail");
}

/** A presigned GetCallerIdentity bound to a nonce header, as the client will make it. */
async function presign(
  emu: Emu,
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string },
  nonce: string,
  opts: { method?: "GET" | "POST"; expiresIn?: number } = {},
): Promise<{ url: string; init: RequestInit }> {
  const method = opts.method ?? "GET";
  const signer = new SignatureV4({
    service: "sts",
    region: "us-east-1",
    credentials,
    sha256: Sha256,
  });
  const [hostname, port] = emu.host.split(":");
  const form = "Action=GetCallerIdentity&Version=2011-06-15";
  const headers: Record<string, string> = { host: emu.host, "x-ssm-proxy-nonce": nonce };
  if (method === "POST") headers["content-type"] = "application/x-www-form-urlencoded";
  const signed = await signer.presign({
    method,
    protocol: "http:",
    hostname,
    port: Number(port),
    path: "/",
    query: method === "GET" ? { Action: "GetCallerIdentity", Version: "2011-06-15" } : {},
    headers,
    ...(method === "POST" ? { body: form } : {}),
  }, { expiresIn: opts.expiresIn ?? 60, signingDate: new Date(emu.now()) });
  const qs = Object.entries(signed.query ?? {})
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`).join("&");
  const { host: _, ...sent } = headers;
  return {
    url: `${emu.url}/?${qs}`,
    init: { method, headers: sent, ...(method === "POST" ? { body: form } : {}) },
  };
}

async function call(url: string, init: RequestInit) {
  const res = await fetch(url, init);
  const body = await res.text();
  const tag = (name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(body)?.[1];
  return { status: res.status, body, code: tag("Code"), message: tag("Message"), arn: tag("Arn") };
}

Deno.test("sts: the SDK's header-signed call names its signer: user, SSO role, assumed role", async () => {
  await withSts(parseFixtures(WORLD), async (emu) => {
    const jane = await whoAmI(emu, JANE);
    assert.deepEqual([jane.Account, jane.Arn, jane.UserId], [
      "210987654321",
      "arn:aws:iam::210987654321:user/jane",
      "AIDAJANE0000000000001",
    ]);
    const sso = await whoAmI(emu, SSO);
    assert.equal(sso.Arn, `arn:aws:sts::210987654321:assumed-role/${SSO_ROLE}/jane@example.com`);
    assert.match(sso.UserId!, /^AROA[A-Z2-7]{17}:jane@example\.com$/);
    assert.equal(sso.Account, "210987654321");
    const ops = await whoAmI(emu, { ...OPS, sessionToken: "ops-token" });
    assert.deepEqual([ops.Account, ops.Arn, ops.UserId], [
      "111122223333",
      "arn:aws:sts::111122223333:assumed-role/ops-admin/deploy",
      "AROAOPSADMIN000000001:deploy",
    ]);
  });
});

Deno.test("sts: the SDK is refused for an unknown key, a wrong secret or a wrong token", async () => {
  await withSts(parseFixtures(WORLD), async (emu) => {
    assert.deepEqual(
      await sdkError(whoAmI(emu, { ...JANE, accessKeyId: "AKIAUNKNOWN000000001" })),
      { name: "InvalidClientTokenId", status: 403 },
    );
    assert.deepEqual(await sdkError(whoAmI(emu, { ...JANE, secretAccessKey: "guess" })), {
      name: "SignatureDoesNotMatch",
      status: 403,
    });
    assert.deepEqual(await sdkError(whoAmI(emu, { ...SSO, sessionToken: "stolen" })), {
      name: "InvalidClientTokenId",
      status: 403,
    });
    assert.deepEqual(await sdkError(whoAmI(emu, OPS)), {
      name: "InvalidClientTokenId",
      status: 403,
    });
  });
});

Deno.test("sts: a presigned GET or POST bound to a nonce proves who signed it", async () => {
  await withSts(parseFixtures(WORLD), async (emu) => {
    const get = await presign(emu, SSO, "nonce-1234");
    assert.match(get.url, /X-Amz-SignedHeaders=host%3Bx-ssm-proxy-nonce/);
    assert.match(get.url, /X-Amz-Security-Token=/);
    const ok = await call(get.url, get.init);
    assert.equal(ok.status, 200, ok.body);
    assert.equal(ok.arn, `arn:aws:sts::210987654321:assumed-role/${SSO_ROLE}/jane@example.com`);
    const post = await presign(emu, JANE, "nonce-5678", { method: "POST" });
    const posted = await call(post.url, post.init);
    assert.equal(posted.status, 200, posted.body);
    assert.equal(posted.arn, "arn:aws:iam::210987654321:user/jane");
    // The body is signed too: another action in it breaks the signature.
    const changed = await call(post.url, {
      ...post.init,
      body: "Action=GetCallerIdentity&Version=2011-06-15&X=1",
    });
    assert.equal(changed.code, "SignatureDoesNotMatch");
  });
});

Deno.test("sts: presigned rejections come back in STS's XML with its status codes", async () => {
  await withSts(parseFixtures(WORLD), async (emu) => {
    const p = await presign(emu, JANE, "nonce-1234");
    const swapped = await call(p.url, { headers: { "x-ssm-proxy-nonce": "nonce-9999" } });
    assert.equal(swapped.status, 403);
    assert.match(
      swapped.body,
      /^<\?xml version="1\.0" encoding="UTF-8"\?>\n<ErrorResponse xmlns="https:\/\/sts\.amazonaws\.com\/doc\/2011-06-15\/"><Error><Type>Sender<\/Type><Code>SignatureDoesNotMatch<\/Code>/,
    );
    const dropped = await call(p.url, {});
    assert.equal(dropped.status, 400);
    assert.equal(dropped.code, "IncompleteSignature");
    assert.equal(
      dropped.message,
      "'x-ssm-proxy-nonce' is named as a SignedHeader, but it does not exist in the HTTP request.",
    );
    const stranger = await presign(emu, { ...JANE, accessKeyId: "AKIAUNKNOWN000000001" }, "n");
    const unknown = await call(stranger.url, stranger.init);
    assert.deepEqual([unknown.status, unknown.code], [403, "InvalidClientTokenId"]);
    const forged = await presign(emu, { ...JANE, secretAccessKey: "guess" }, "nonce-1234");
    const bad = await call(forged.url, forged.init);
    assert.deepEqual([bad.status, bad.code], [403, "SignatureDoesNotMatch"]);
    const noToken = await presign(emu, { ...SSO, sessionToken: undefined }, "nonce-1234");
    const missing = await call(noToken.url, noToken.init);
    assert.deepEqual([missing.status, missing.code], [403, "InvalidClientTokenId"]);
    emu.advance(61_000);
    const late = await call(p.url, p.init);
    assert.deepEqual([late.status, late.code], [403, "SignatureDoesNotMatch"]);
    assert.match(
      late.message!,
      /^Signature expired: \d{8}T\d{6}Z is now earlier than .* - 60 sec\.\)$/,
    );
  });
});

Deno.test("sts: without identities any caller is the fixtures' default, unchecked", async () => {
  const f = defaultFixtures();
  await withSts(f, async (emu) => {
    const me = await whoAmI(emu, { accessKeyId: "test", secretAccessKey: "anything" });
    assert.deepEqual([me.Account, me.Arn, me.UserId], [f.account, f.callerArn, f.userId]);
    const p = await presign(emu, JANE, "n");
    const ok = await call(p.url, {});
    assert.equal(ok.arn, f.callerArn, "the nonce is not even checked");
  });
});

Deno.test("sts: a denied GetCallerIdentity names the signer, after authentication", async () => {
  const f = parseFixtures(`${WORLD}deny:\n  - action: sts:GetCallerIdentity\n`);
  await withSts(f, async (emu) => {
    const p = await presign(emu, JANE, "n");
    const denied = await call(p.url, p.init);
    assert.equal(denied.status, 403);
    assert.equal(denied.code, "AccessDenied");
    assert.match(denied.message!, /^User: arn:aws:iam::210987654321:user\/jane is not authorized/);
    const forged = await presign(emu, { ...JANE, secretAccessKey: "guess" }, "n");
    assert.equal((await call(forged.url, forged.init)).code, "SignatureDoesNotMatch");
  });
});

Deno.test("fixtures identities: derived ids, and invalid entries name the line and key", () => {
  const f = parseFixtures(WORLD, "w.yaml");
  assert.equal(f.identities.length, 3);
  const sso = f.identities[1];
  assert.equal(sso.account, "210987654321");
  assert.equal(sso.sessionToken, "sso/session+token=");
  assert.equal(parseFixtures(WORLD).identities[1].userId, sso.userId, "stable");
  const user = parseFixtures(
    "identities:\n  - { accessKeyId: AKIAX, secretAccessKey: s, arn: 'arn:aws:iam::123456789012:user/ops/bob' }\n",
  ).identities[0];
  assert.match(user.userId, /^AIDA[A-Z2-7]{17}$/);
  const bad: [string, RegExp][] = [
    [
      "  - { accessKeyId: AKIAX, secretAccessKey: s, arn: 'arn:aws:iam::123456789012:role/x' }",
      /^FixtureError: f\.yaml:2: identities\[0\]\.arn: "arn:aws:iam::123456789012:role\/x" is not arn:aws:iam::ACCOUNT:user\/NAME or arn:aws:sts::ACCOUNT:assumed-role\/ROLE\/SESSION$/,
    ],
    [
      "  - { accessKeyId: ASIAX, secretAccessKey: s, arn: 'arn:aws:sts::123456789012:assumed-role/r/s1' }",
      /f\.yaml:2: identities\[0\]\.sessionToken: required: an assumed role's temporary credentials always carry a session token$/,
    ],
    [
      "  - { accessKeyId: ASIAX, secretAccessKey: s, sessionToken: t, userId: AROAABCDEFGH:other, arn: 'arn:aws:sts::123456789012:assumed-role/r/s1' }",
      /identities\[0\]\.userId: "AROAABCDEFGH:other" is not AROA…:s1/,
    ],
    [
      "  - { accessKeyId: AKIAX, secretAccessKey: s, userId: AROAABCDEFGH, arn: 'arn:aws:iam::123456789012:user/u' }",
      /identities\[0\]\.userId: "AROAABCDEFGH" is not a user's unique id \(AIDA…\)/,
    ],
    [
      "  - { accessKeyId: AKIAX, arn: 'arn:aws:iam::123456789012:user/u' }",
      /identities\[0\]\.secretAccessKey: required/,
    ],
    [
      "  - { accessKeyId: AKIAX, secretAccessKey: s, arn: 'arn:aws:iam::123456789012:user/u' }\n" +
      "  - { accessKeyId: AKIAX, secretAccessKey: t, arn: 'arn:aws:iam::123456789012:user/v' }",
      /identities\[1\]: AKIAX is declared twice/,
    ],
    [
      "  - { accessKeyId: AKIAX, secretAccessKey: s, arn: 'arn:aws:iam::123456789012:user/u', role: x }",
      /identities\[0\]\.role: unknown key/,
    ],
  ];
  for (const [yaml, re] of bad) {
    assert.throws(() => parseFixtures(`identities:\n${yaml}\n`, "f.yaml"), re, yaml);
  }
});
