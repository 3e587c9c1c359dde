/**
 * The emulator's AWS API endpoints on one port. Real AWS tells services apart by host name;
 * with one shared `AWS_ENDPOINT_URL` we tell them apart by what each protocol puts on the wire:
 * `X-Amz-Target` (SSM), form `Action`+`Version` (EC2 vs STS), the `/clusters` path (EKS), the
 * `/2013-04-01/` API-version path (Route 53).
 */

import type { Fixtures } from "../fixtures.ts";
import type { SessionRegistry } from "../sessions.ts";
import { EC2_VERSION, ec2Error, handleEc2 } from "./ec2.ts";
import { eksError, handleEks } from "./eks.ts";
import { parseQuery, type QueryParams } from "./query.ts";
import { handleRoute53, ROUTE53_PREFIX, route53Error } from "./route53.ts";
import { handleSsm, ssmError } from "./ssm.ts";
import type { WireRequest } from "./sigv4_verify.ts";
import { handleSts, STS_VERSION, stsError } from "./sts.ts";
import { type ApiContext, settle } from "./world.ts";

export interface ApiOptions {
  registry: SessionRegistry;
  /** The live world; StartInstances changes instance states in it. */
  fixtures: Fixtures;
  /** Used in ARNs when a request's signature does not name a region. Default us-east-1. */
  region?: string;
  /** Epoch ms clock, for tests. */
  now?: () => number;
}

export type ApiHandler = (req: Request) => Promise<Response | undefined>;

const MISSING_AUTH = "Missing Authentication Token";

/** `undefined` means "not an AWS API request": let the next handler on the port have it. */
export function createApi(opts: ApiOptions): ApiHandler {
  const now = opts.now ?? Date.now;
  return async (req) => {
    const url = new URL(req.url);
    const path = url.pathname;
    if (path.startsWith("/v1/data-channel/") || path.startsWith("/_emulator/")) return undefined;
    const ctx: ApiContext = {
      registry: opts.registry,
      fixtures: opts.fixtures,
      region: signedRegion(req) ?? opts.region ?? "us-east-1",
      now,
    };
    settle(ctx.fixtures, now());
    const signed = req.headers.has("authorization");

    if (path === "/clusters" || path.startsWith("/clusters/")) {
      if (!signed) return eksError("MissingAuthenticationTokenException", MISSING_AUTH, 403);
      return handleEks(ctx, req, path);
    }
    if (path.startsWith(ROUTE53_PREFIX)) {
      if (!signed) return route53Error("MissingAuthenticationToken", MISSING_AUTH, 403);
      return handleRoute53(ctx, req, url);
    }
    if (path !== "/") return undefined;

    const target = req.headers.get("x-amz-target");
    if (req.method === "POST" && target !== null) {
      if (!signed) return ssmError("MissingAuthenticationTokenException", MISSING_AUTH);
      if (!target.startsWith("AmazonSSM.")) {
        return ssmError("UnknownOperationException", `Unknown target ${target}`);
      }
      return await handleSsm(ctx, req, target.slice("AmazonSSM.".length));
    }

    const query = await queryParams(req, url);
    if (!query) return undefined;
    const wire = { method: req.method, url, headers: req.headers, body: query.body };
    return await routeQuery(
      ctx,
      query.params,
      signed || url.searchParams.has("X-Amz-Credential"),
      wire,
    );
  };
}

/** The parameters, and the body as received (STS verifies its signature over those bytes). */
async function queryParams(
  req: Request,
  url: URL,
): Promise<{ params: QueryParams; body: Uint8Array } | undefined> {
  if (req.method === "GET" && url.searchParams.has("Action")) {
    return { params: new Map(url.searchParams), body: new Uint8Array() };
  }
  const type = req.headers.get("content-type") ?? "";
  if (req.method === "POST" && type.startsWith("application/x-www-form-urlencoded")) {
    const body = new Uint8Array(await req.arrayBuffer());
    return { params: parseQuery(new TextDecoder().decode(body)), body };
  }
  return undefined;
}

async function routeQuery(
  ctx: ApiContext,
  p: QueryParams,
  signed: boolean,
  wire: WireRequest,
): Promise<Response> {
  const action = p.get("Action");
  const version = p.get("Version");
  if (version === EC2_VERSION) {
    if (!signed) return ec2Error("MissingAuthenticationToken", MISSING_AUTH, 401);
    if (!action) return ec2Error("MissingAction", "The request must contain the parameter Action");
    return handleEc2(ctx, action, p);
  }
  if (version === STS_VERSION) {
    if (!signed) return stsError("MissingAuthenticationToken", MISSING_AUTH, 403);
    if (!action) return stsError("MissingAction", "The request must contain the parameter Action");
    return await handleSts(ctx, action, p, wire);
  }
  return stsError("NoSuchVersion", `The requested version (${version ?? "none"}) is not valid`);
}

/** The region in a SigV4 credential scope: `Credential=AKID/20250101/eu-central-1/ssm/…`. */
function signedRegion(req: Request): string | undefined {
  const auth = req.headers.get("authorization") ?? "";
  return /Credential=[^/]+\/\d{8}\/([a-z0-9-]+)\//.exec(auth)?.[1] ??
    new URL(req.url).searchParams.get("X-Amz-Credential")?.split("/")[2];
}
