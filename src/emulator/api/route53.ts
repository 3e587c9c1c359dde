/**
 * Route 53 in its REST-XML protocol, under `/2013-04-01/`: ListHostedZonesByVPC, which finds
 * the private hosted zones a VPC resolves. Zones and their VPC associations come from the
 * fixtures' `hostedZones`. The emulated VPCs exist in every region (EC2 answers the same in each),
 * so `vpcregion` must be a region but does not narrow the match.
 */

import type { FixtureHostedZone } from "../fixtures.ts";
import { el, type Xml, xmlResponse } from "./query.ts";
import { type ApiContext, deniedMessage, isDenied, requestId } from "./world.ts";

export const ROUTE53_PREFIX = "/2013-04-01/";
const NS = "https://route53.amazonaws.com/doc/2013-04-01/";
const DEFAULT_MAX_ITEMS = 100;

class Route53Fault {
  constructor(readonly code: string, readonly message: string, readonly status = 400) {}
}

/** Route 53's error body: `<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/>`. */
export function route53Error(code: string, message: string, status = 400): Response {
  const type = status >= 500 ? "Receiver" : "Sender";
  return withRequestId(xmlResponse(
    "ErrorResponse",
    NS,
    status,
    el("Error", el("Type", type), el("Code", code), el("Message", message)),
    el("RequestId", requestId()),
  ));
}

function withRequestId(res: Response): Response {
  res.headers.set("x-amzn-requestid", requestId());
  return res;
}

type Op = (ctx: ApiContext, q: URLSearchParams) => Xml[];

/** `METHOD path-after-prefix` → operation. */
const OPS: Record<string, [string, Op]> = {
  "GET hostedzonesbyvpc": ["ListHostedZonesByVPC", listHostedZonesByVpc],
};

export function handleRoute53(ctx: ApiContext, req: Request, url: URL): Response {
  const entry = OPS[`${req.method} ${url.pathname.slice(ROUTE53_PREFIX.length)}`];
  if (!entry) {
    return route53Error(
      "InvalidInput",
      `The emulator has no Route 53 ${req.method} ${url.pathname}`,
    );
  }
  const [name, op] = entry;
  try {
    return withRequestId(xmlResponse(`${name}Response`, NS, 200, op(ctx, url.searchParams)));
  } catch (e) {
    if (e instanceof Route53Fault) return route53Error(e.code, e.message, e.status);
    throw e;
  }
}

function required(q: URLSearchParams, key: string, member: string): string {
  const v = q.get(key);
  if (v === null || v === "") {
    throw new Route53Fault(
      "InvalidInput",
      `1 validation error detected: Value null at '${member}' failed to satisfy constraint: ` +
        "Member must not be null",
    );
  }
  return v;
}

function listHostedZonesByVpc(ctx: ApiContext, q: URLSearchParams): Xml[] {
  const vpcId = required(q, "vpcid", "vPCId");
  const region = required(q, "vpcregion", "vPCRegion");
  if (!/^[a-z]{2}(-[a-z]+)+-\d+$/.test(region)) {
    throw new Route53Fault(
      "InvalidInput",
      `1 validation error detected: Value '${region}' at 'vPCRegion' failed to satisfy ` +
        "constraint: Member must satisfy enum value set",
    );
  }
  const max = maxItems(q.get("maxitems"));
  if (isDenied(ctx.fixtures, "ListHostedZonesByVPC", [vpcId])) {
    throw new Route53Fault(
      "AccessDenied",
      deniedMessage(ctx, "route53:ListHostedZonesByVPC"),
      403,
    );
  }
  if (!ctx.fixtures.vpcs.some((v) => v.id === vpcId)) {
    throw new Route53Fault("InvalidVPCId", `The VPC ID ${vpcId} is invalid or not found.`);
  }
  const zones = ctx.fixtures.hostedZones.filter((z) => z.vpcs.includes(vpcId));
  const start = startOf(q.get("nexttoken"), zones.length);
  const end = start + max;
  return [
    el("HostedZoneSummaries", zones.slice(start, end).map((z) => summaryXml(ctx, z))),
    el("MaxItems", max),
    end < zones.length ? el("NextToken", btoa(`emu:${end}`)) : undefined,
  ];
}

function maxItems(raw: string | null): number {
  if (raw === null) return DEFAULT_MAX_ITEMS;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 1) {
    throw new Route53Fault("InvalidInput", `Invalid value for MaxItems: ${raw}`);
  }
  return Math.min(n, DEFAULT_MAX_ITEMS);
}

function startOf(token: string | null, total: number): number {
  if (token === null) return 0;
  let n = NaN;
  try {
    const m = /^emu:(\d+)$/.exec(atob(token));
    if (m) n = Number(m[1]);
  } catch { /* not base64: invalid below */ }
  if (!Number.isInteger(n) || n > total) {
    throw new Route53Fault("InvalidPaginationToken", "The pagination token is invalid.");
  }
  return n;
}

function summaryXml(ctx: ApiContext, z: FixtureHostedZone): Xml {
  const owner = z.owner ?? ctx.fixtures.account;
  return el(
    "HostedZoneSummary",
    el("HostedZoneId", z.id),
    el("Name", `${z.name}.`),
    el(
      "Owner",
      /^\d{12}$/.test(owner) ? el("OwningAccount", owner) : el("OwningService", owner),
    ),
  );
}
