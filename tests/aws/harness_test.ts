/**
 * Shared harness (no tests of its own): an emulator API on a loopback port and a scoped AWS
 * environment pointing the real SDK at it. Env is process-global, so every test sets it for its
 * own duration and restores it.
 */

import { createApi } from "../../src/emulator/api/mod.ts";
import { type Fixtures, loadFixtures } from "../../src/emulator/fixtures.ts";
import { SessionRegistry } from "../../src/emulator/sessions.ts";

export interface Emulator {
  url: string;
  registry: SessionRegistry;
  fixtures: Fixtures;
  /** Moves the emulator's clock, e.g. past a StartInstances delay. */
  advance(ms: number): void;
}

export const WORLD = new URL("../fixtures/emulator_world.yaml", import.meta.url).pathname;

/** Every variable the SDK's default chain reads that could leak in from the machine. */
const AWS_VARS = [
  "AWS_ENDPOINT_URL",
  "AWS_ENDPOINT_URL_SSM",
  "AWS_ENDPOINT_URL_EC2",
  "AWS_ENDPOINT_URL_STS",
  "AWS_ENDPOINT_URL_EKS",
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
  "AWS_PROFILE",
  "AWS_DEFAULT_PROFILE",
  "AWS_REGION",
  "AWS_DEFAULT_REGION",
  "AWS_CONFIG_FILE",
  "AWS_SHARED_CREDENTIALS_FILE",
  "AWS_EC2_METADATA_DISABLED",
];

/** Runs `fn` with only `vars` set among AWS_VARS, then puts the old values back. */
export async function withEnv<T>(
  vars: Record<string, string | undefined>,
  fn: () => Promise<T>,
): Promise<T> {
  const saved = new Map(AWS_VARS.map((k) => [k, Deno.env.get(k)]));
  for (const k of AWS_VARS) Deno.env.delete(k);
  for (const [k, v] of Object.entries(vars)) if (v !== undefined) Deno.env.set(k, v);
  try {
    return await fn();
  } finally {
    for (const k of Object.keys(vars)) Deno.env.delete(k);
    for (const [k, v] of saved) if (v !== undefined) Deno.env.set(k, v);
  }
}

/** The environment of a laptop with static keys and the emulator as the one endpoint. */
export function sdkEnv(url: string, extra: Record<string, string> = {}) {
  return {
    AWS_ENDPOINT_URL: url,
    AWS_ACCESS_KEY_ID: "AKIAEMULATORTEST0001",
    AWS_SECRET_ACCESS_KEY: "emulator-secret",
    AWS_REGION: "eu-central-1",
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_CONFIG_FILE: "/nonexistent/aws-config",
    AWS_SHARED_CREDENTIALS_FILE: "/nonexistent/aws-credentials",
    ...extra,
  };
}

/** Serves the API for the duration of `fn`, with the SDK environment pointed at it. */
export async function withEmulator<T>(
  fixturesPath: string | undefined,
  fn: (emu: Emulator) => Promise<T>,
  env: Record<string, string> = {},
): Promise<T> {
  const fixtures = await loadFixtures(fixturesPath);
  let clock = Date.now();
  let base = "";
  const registry = new SessionRegistry(() => base.replace(/^http/, "ws"), "emu-user");
  const api = createApi({ registry, fixtures, region: "eu-central-1", now: () => clock });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => await api(req) ?? new Response("not found", { status: 404 }),
  );
  base = `http://127.0.0.1:${server.addr.port}`;
  const emu = { url: base, registry, fixtures, advance: (ms: number) => void (clock += ms) };
  try {
    return await withEnv(sdkEnv(base, env), () => fn(emu));
  } finally {
    await server.shutdown();
  }
}
