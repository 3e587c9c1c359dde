/**
 * The start prover (src/start/prover.ts): credentials resolved once through the SDK's chain and
 * reused for every nonce, resolved again only when about to expire. A credential_process that
 * counts its runs stands for an SSO login or a helper that is slow; STS is the emulator's.
 */
import assert from "node:assert/strict";
import { identityProver } from "../../src/start/prover.ts";
import { JANE, JANE_ARN, nonce, until, verify, withWorld } from "./standin_agent.ts";

/** A profile whose credential_process hands out Jane's keys expiring in `expiresInMs`. */
async function countingProfile(dir: string, expiresInMs: number): Promise<string> {
  const creds = {
    Version: 1,
    AccessKeyId: JANE.AWS_ACCESS_KEY_ID,
    SecretAccessKey: JANE.AWS_SECRET_ACCESS_KEY,
    Expiration: new Date(Date.now() + expiresInMs).toISOString(),
  };
  await Deno.writeTextFile(`${dir}/creds.json`, JSON.stringify(creds));
  const config = `${dir}/config`;
  await Deno.writeTextFile(
    config,
    `[profile proc]\ncredential_process = sh -c "echo run >> ${dir}/runs; cat ${dir}/creds.json"\n`,
  );
  return config;
}

function runsNow(dir: string): number {
  try {
    return Deno.readTextFileSync(`${dir}/runs`).trim().split("\n").length;
  } catch {
    return 0;
  }
}

/** Three proofs, each checked by STS as Jane's for its own nonce; then the process's runs. */
async function proveThrice(dir: string, expiresInMs: number): Promise<number> {
  const config = await countingProfile(dir, expiresInMs);
  let n = 0;
  // No keys in the environment: the profile's process is the only source.
  const env = { AWS_CONFIG_FILE: config, AWS_ACCESS_KEY_ID: "", AWS_SECRET_ACCESS_KEY: "" };
  await withWorld(
    async () => {
      const prove = identityProver({ profile: "proc" });
      for (let i = 0; i < 3; i++) {
        const sent = nonce();
        const who = await verify(await prove(sent), sent);
        assert.deepEqual(who, { arn: JANE_ARN, account: "210987654321" });
      }
      // A refresh runs beside the proofs (the SDK hands out the old credentials meanwhile).
      await until("the process ran again", () => runsNow(dir) >= 2, 1_000).catch(() => {});
      n = runsNow(dir);
    },
    {},
    env,
  );
  return n;
}

Deno.test("prover: credentials are resolved once and reused for every nonce", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assert.equal(await proveThrice(dir, 3_600_000), 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("prover: credentials about to expire are resolved again", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Two minutes left: inside the SDK's five-minute refresh window.
    assert.ok(await proveThrice(dir, 120_000) >= 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
