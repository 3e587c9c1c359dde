/**
 * The EKS token against a known-good vector: botocore 1.43 (what `aws eks get-token` runs)
 * presigning GetCallerIdentity with `x-k8s-aws-id` for the same fixed clock and credentials,
 * cross-checked with a from-scratch Python SigV4 (hmac + hashlib). Generated with:
 *   session.set_credentials(AKIDEXAMPLE, wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY[, token])
 *   sts.generate_presigned_url("get_caller_identity", ExpiresIn=60, HttpMethod="GET")
 *   with botocore.auth.get_current_datetime patched to 2025-01-02T03:04:05Z.
 */
import assert from "node:assert/strict";
import { buildToken, decodeToken, execCredential, presignedUrl } from "../../src/eks/token.ts";
import { checkToken } from "./support.ts";

const NOW = new Date(Date.UTC(2025, 0, 2, 3, 4, 5));
const CREDS = {
  accessKeyId: "AKIDEXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
};
const SESSION = { ...CREDS, sessionToken: "FQoGZXIvYXdzE/session+token=" };

const URL_WITH_SESSION = "https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity" +
  "&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256" +
  "&X-Amz-Credential=AKIDEXAMPLE%2F20250102%2Feu-west-1%2Fsts%2Faws4_request" +
  "&X-Amz-Date=20250102T030405Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id" +
  "&X-Amz-Security-Token=FQoGZXIvYXdzE%2Fsession%2Btoken%3D" +
  "&X-Amz-Signature=e91c6b65c147b98a1cd7c672a99a561973a549e5e7e3e9d9ff59ab862be43783";

const URL_NO_SESSION = "https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity" +
  "&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256" +
  "&X-Amz-Credential=AKIDEXAMPLE%2F20250102%2Feu-west-1%2Fsts%2Faws4_request" +
  "&X-Amz-Date=20250102T030405Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id" +
  "&X-Amz-Signature=0e60aea7faf14bb3f6700772f8fc9479aebba746a1e4aaf63ea762bdd40d7eb9";

/** base64url of URL_WITH_SESSION, no padding, as botocore's output was encoded by aws-cli. */
const TOKEN_WITH_SESSION = "k8s-aws-v1." +
  "aHR0cHM6Ly9zdHMuZXUtd2VzdC0xLmFtYXpvbmF3cy5jb20vP0FjdGlvbj1HZXRDYWxsZXJJZGVudGl0eSZWZXJzaW9u" +
  "PTIwMTEtMDYtMTUmWC1BbXotQWxnb3JpdGhtPUFXUzQtSE1BQy1TSEEyNTYmWC1BbXotQ3JlZGVudGlhbD1BS0lERVhB" +
  "TVBMRSUyRjIwMjUwMTAyJTJGZXUtd2VzdC0xJTJGc3RzJTJGYXdzNF9yZXF1ZXN0JlgtQW16LURhdGU9MjAyNTAxMDJU" +
  "MDMwNDA1WiZYLUFtei1FeHBpcmVzPTYwJlgtQW16LVNpZ25lZEhlYWRlcnM9aG9zdCUzQngtazhzLWF3cy1pZCZYLUFt" +
  "ei1TZWN1cml0eS1Ub2tlbj1GUW9HWlhJdllYZHpFJTJGc2Vzc2lvbiUyQnRva2VuJTNEJlgtQW16LVNpZ25hdHVyZT1l" +
  "OTFjNmI2NWMxNDdiOThhMWNkN2M2NzJhOTlhNTYxOTczYTU0OWU1ZTdlM2U5ZDlmZjU5YWI4NjJiZTQzNzgz";

Deno.test("eks token: presigned URL equals botocore's, byte for byte", async () => {
  assert.equal(await presignedUrl("my-cluster", "eu-west-1", SESSION, NOW), URL_WITH_SESSION);
  assert.equal(await presignedUrl("my-cluster", "eu-west-1", CREDS, NOW), URL_NO_SESSION);
});

Deno.test("eks token: token bytes equal the known-good vector", async () => {
  const token = await buildToken("my-cluster", "eu-west-1", SESSION, NOW);
  assert.equal(token, TOKEN_WITH_SESSION);
  assert.ok(!token.includes("=") && !token.includes("+") && !token.includes("/"));
  assert.equal(decodeToken(token), URL_WITH_SESSION);
});

Deno.test("eks token: the signature covers the cluster name", async () => {
  const other = await presignedUrl("other-cluster", "eu-west-1", CREDS, NOW);
  assert.notEqual(other, URL_NO_SESSION);
  const token = await buildToken("my-cluster", "eu-west-1", CREDS, NOW);
  assert.equal(
    await checkToken(`Bearer ${token}`, "my-cluster", "eu-west-1", CREDS, NOW),
    undefined,
  );
  assert.equal(
    await checkToken(`Bearer ${token}`, "other-cluster", "eu-west-1", CREDS, NOW),
    "signature mismatch",
  );
  assert.equal(
    await checkToken(`Bearer ${token}`, "my-cluster", "eu-west-1", {
      ...CREDS,
      secretAccessKey: "x",
    }, NOW),
    "signature mismatch",
  );
});

Deno.test("eks token: ExecCredential v1beta1 expiring 14 minutes ahead, as aws-cli reports", () => {
  assert.deepEqual(execCredential("k8s-aws-v1.x", NOW), {
    kind: "ExecCredential",
    apiVersion: "client.authentication.k8s.io/v1beta1",
    spec: {},
    status: { expirationTimestamp: "2025-01-02T03:18:05Z", token: "k8s-aws-v1.x" },
  });
});

Deno.test("eks token: decodeToken refuses what is not a token", () => {
  assert.equal(decodeToken("Bearer nope"), undefined);
  assert.equal(decodeToken("k8s-aws-v1.%%%"), undefined);
});
