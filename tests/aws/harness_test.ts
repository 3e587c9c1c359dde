import assert from "node:assert/strict";
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
  /** Every request served: which service it was for and the SigV4 credential scope. */
  seen: SeenRequest[];
  /** Moves the emulator's clock, e.g. past a StartInstances delay. */
  advance(ms: number): void;
}

export interface SeenRequest {
  path: string;
  /** `AmazonSSM.StartSession`, `Action=DescribeInstances`, or the method for REST. */
  op: string;
  /** `region/service` from the Authorization header, if signed. */
  scope?: string;
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
  for (const [k, v] of Object.entries(vars)) if (v) Deno.env.set(k, v);
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

/**
 * Serves the API for the duration of `fn`, with the SDK environment pointed at it. `env` adds to
 * or overrides that environment: "" unsets a variable, "__EMULATOR__" stands for the API's URL.
 */
export async function withEmulator<T>(
  fixturesPath: string | undefined,
  fn: (emu: Emulator) => Promise<T>,
  env: Record<string, string> = {},
): Promise<T> {
  const fixtures = await loadFixtures(fixturesPath);
  let clock = Date.now();
  const seen: SeenRequest[] = [];
  let base = "";
  const registry = new SessionRegistry(() => base.replace(/^http/, "ws"), "emu-user");
  const api = createApi({ registry, fixtures, region: "eu-central-1", now: () => clock });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (incoming) => {
      // A copy, not req.clone(): cloning touches request.signal, which makes Deno warn.
      const body = incoming.method === "GET" ? undefined : await incoming.text();
      const req = new Request(incoming.url, {
        method: incoming.method,
        headers: incoming.headers,
        body,
      });
      seen.push(describe(req, body));
      return await api(req) ?? new Response("not found", { status: 404 });
    },
  );
  base = `http://127.0.0.1:${server.addr.port}`;
  const emu = { url: base, registry, fixtures, seen, advance: (ms: number) => void (clock += ms) };
  try {
    const filled = Object.fromEntries(
      Object.entries(env).map(([k, v]) => [k, v === "__EMULATOR__" ? base : v]),
    );
    return await withEnv(sdkEnv(base, filled), () => fn(emu));
  } finally {
    await server.shutdown();
  }
}

function describe(req: Request, body: string | undefined): SeenRequest {
  const path = new URL(req.url).pathname;
  const scope = /Credential=[^/]+\/\d{8}\/([^/]+\/[^/]+)\//.exec(
    req.headers.get("authorization") ?? "",
  )?.[1];
  const target = req.headers.get("x-amz-target");
  let op = target ?? req.method;
  if (!target && req.method === "POST") {
    op = `Action=${new URLSearchParams(body).get("Action")}`;
  }
  return { path, op, ...(scope ? { scope } : {}) };
}

/** Runs one SDK call on a fresh client and closes its sockets afterwards. */
export async function withClient<C extends { destroy(): void }, T>(
  make: () => C,
  fn: (c: C) => Promise<T>,
): Promise<T> {
  const c = make();
  try {
    return await fn(c);
  } finally {
    c.destroy();
  }
}

/** The promise fails with an error of this name (and message). */
export async function rejectsWith(
  p: Promise<unknown>,
  name: string,
  message?: RegExp,
): Promise<Error> {
  const e = await p.then(() => undefined, (e) => e);
  assert.ok(e instanceof Error, `expected ${name}, got success`);
  assert.equal(e.name, name, e.message);
  if (message) assert.match(e.message, message);
  return e;
}
