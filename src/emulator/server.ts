/**
 * The emulator process: AWS API endpoints and MGS on one HTTP port, so a single
 * `AWS_ENDPOINT_URL=http://127.0.0.1:4566` points the SDK (and the AWS CLI) at it, and the
 * StreamUrls it hands out lead back to it.
 */
import { createApi } from "./api/mod.ts";
import { destinationMap } from "./destinations.ts";
import { type Fixtures, instanceFacts, loadFixtures } from "./fixtures.ts";
import type { AgentOptions } from "./agent/session.ts";
import { createMgs } from "./mgs.ts";
import { SessionRegistry } from "./sessions.ts";

export interface EmulatorOptions {
  hostname?: string;
  port?: number;
  fixtures?: Fixtures;
  fixturesPath?: string;
  /**
   * Port session destinations dialled at another address, over the fixtures' `destinations`
   * and in the same form: `{ "10.99.0.10:80": "127.0.0.1:8080" }` (destinations.ts). A
   * malformed entry throws.
   */
  destinations?: Record<string, string>;
  pacing?: boolean;
  region?: string;
  log?: (line: string) => void;
  /**
   * The emulated agent's knobs (e.g. `shellInitialWaitMs: 0` for fast shell tests). By default
   * `instanceFacts` comes from the fixtures (each instance's VPC CIDR and denied list).
   */
  agent?: Partial<AgentOptions>;
  /** Extra environment for shell sessions, over the emulator's own (e.g. PATH, HOME). */
  shellEnv?: Record<string, string>;
}

export interface Emulator {
  /** Base URL, e.g. http://127.0.0.1:4566 */
  url: string;
  port: number;
  registry: SessionRegistry;
  mgs: ReturnType<typeof createMgs>;
  fixtures: Fixtures;
  close(): Promise<void>;
}

export async function startEmulator(opts: EmulatorOptions = {}): Promise<Emulator> {
  const hostname = opts.hostname ?? "127.0.0.1";
  const fixtures = opts.fixtures ?? await loadFixtures(opts.fixturesPath);
  const destinations = destinationMap(fixtures.destinations, opts.destinations ?? {});
  let base = "";
  const registry = new SessionRegistry(() => base.replace(/^http/, "ws"));
  const api = createApi({ registry, fixtures, region: opts.region });
  const mgs = createMgs({
    registry,
    pacing: opts.pacing ?? true,
    log: opts.log,
    agent: {
      instanceFacts: (target) => instanceFacts(fixtures, target),
      ...opts.agent,
      destinations: new Map([...opts.agent?.destinations ?? [], ...destinations]),
    },
    shellEnv: opts.shellEnv,
  });
  const server = Deno.serve(
    { hostname, port: opts.port ?? 4566, onListen: () => {} },
    async (req) => {
      try {
        return mgs.handle(req) ?? await api(req) ??
          new Response("not found\n", { status: 404 });
      } catch (e) {
        opts.log?.(`emulator: ${(e as Error).stack ?? e}`);
        return new Response("internal error\n", { status: 500 });
      }
    },
  );
  const addr = server.addr as Deno.NetAddr;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  base = `http://${host}:${addr.port}`;
  return {
    url: base,
    port: addr.port,
    registry,
    mgs,
    fixtures,
    async close() {
      await mgs.close();
      await server.shutdown();
    },
  };
}
