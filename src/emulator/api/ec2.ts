/**
 * EC2 in the EC2 Query protocol: DescribeInstances, StartInstances, DescribeVpcs, and the
 * network views of ec2_network.ts (DescribeRouteTables, DescribeDhcpOptions).
 */

import type { FixtureInstance, FixtureVpc, InstanceState } from "../fixtures.ts";
import { vpcCidrs, vpcDhcpOptionsId } from "../fixtures_network.ts";
import { describeDhcpOptions, describeRouteTables } from "./ec2_network.ts";
import { allTags, Ec2Fault, type FieldOf, filterPred } from "./ec2_shared.ts";
import {
  el,
  indexedList,
  itemSet,
  queryFilters,
  type QueryParams,
  tagSet,
  type Xml,
  xmlResponse,
} from "./query.ts";
import { type ApiContext, deniedMessage, isDenied, requestId, STATE_CODES } from "./world.ts";

export const EC2_VERSION = "2016-11-15";
const NS = `http://ec2.amazonaws.com/doc/${EC2_VERSION}/`;

export function ec2Error(code: string, message: string, status = 400): Response {
  return xmlResponse(
    "Response",
    undefined,
    status,
    el("Errors", el("Error", el("Code", code), el("Message", message))),
    el("RequestID", requestId()),
  );
}

type Op = (ctx: ApiContext, p: QueryParams) => Xml[];

const OPS: Record<string, Op> = {
  DescribeInstances: describeInstances,
  StartInstances: startInstances,
  DescribeVpcs: describeVpcs,
  DescribeRouteTables: describeRouteTables,
  DescribeDhcpOptions: describeDhcpOptions,
};

/** The ids a `deny:` entry's `target` can name, whichever resource the action is about. */
const DENY_TARGETS = ["InstanceId", "VpcId", "RouteTableId", "DhcpOptionsId"];

export function handleEc2(ctx: ApiContext, action: string, p: QueryParams): Response {
  const op = OPS[action];
  if (!op) {
    return ec2Error("InvalidAction", `The action ${action} is not valid for this web service.`);
  }
  try {
    const targets = DENY_TARGETS.flatMap((k) => indexedList(p, k));
    if (isDenied(ctx.fixtures, action, targets)) {
      throw new Ec2Fault(
        "UnauthorizedOperation",
        `You are not authorized to perform this operation. ${deniedMessage(ctx, `ec2:${action}`)}`,
        403,
      );
    }
    return xmlResponse(`${action}Response`, NS, 200, el("requestId", requestId()), op(ctx, p));
  } catch (e) {
    if (e instanceof Ec2Fault) return ec2Error(e.code, e.message, e.status);
    throw e;
  }
}

/** EC2 instances only: `mi-` managed instances exist in SSM alone. */
function ec2Instances(ctx: ApiContext): FixtureInstance[] {
  return ctx.fixtures.instances.filter((i) => i.id.startsWith("i-"));
}

function requireInstances(ctx: ApiContext, ids: string[]): FixtureInstance[] {
  const found = ids.map((id) => ec2Instances(ctx).find((i) => i.id === id));
  const missing = ids.filter((_, n) => !found[n]);
  if (missing.length > 0) {
    const many = missing.length > 1;
    throw new Ec2Fault(
      "InvalidInstanceID.NotFound",
      `The instance ID${many ? "s" : ""} '${missing.join(", ")}' do${many ? "" : "es"} not exist`,
    );
  }
  return found as FixtureInstance[];
}

const INSTANCE_FIELDS: Record<string, FieldOf<FixtureInstance>> = {
  "instance-id": (i) => i.id,
  "instance-state-name": (i) => i.state,
  "instance-state-code": (i) => String(STATE_CODES[i.state]),
  "vpc-id": (i) => i.vpc,
  "subnet-id": (i) => i.subnet,
  "private-ip-address": (i) => i.privateIp,
  "architecture": (i) => i.architecture,
  "instance-type": (i) => i.instanceType,
};

function describeInstances(ctx: ApiContext, p: QueryParams): Xml[] {
  const ids = indexedList(p, "InstanceId");
  const base = ids.length > 0 ? requireInstances(ctx, ids) : ec2Instances(ctx);
  const preds = queryFilters(p).map((f) => filterPred(f, INSTANCE_FIELDS));
  const matches = base.filter((i) => preds.every((pred) => pred(i)));
  // One reservation per instance: what a fleet launched one at a time looks like.
  return [itemSet(
    "reservationSet",
    matches.map((i) => [
      el("reservationId", `r-${i.id.slice(2)}`),
      el("ownerId", ctx.fixtures.account),
      el("groupSet"),
      itemSet("instancesSet", [instanceXml(ctx, i)]),
    ]),
  )];
}

function stateXml(name: string, s: InstanceState): Xml {
  return el(name, el("code", STATE_CODES[s]), el("name", s));
}

function instanceXml(ctx: ApiContext, i: FixtureInstance): Xml {
  const windows = i.platform === "Windows";
  return [
    el("instanceId", i.id),
    el("imageId", "ami-0e0e0e0e0e0e0e0e0"),
    stateXml("instanceState", i.state),
    el("privateDnsName", `ip-${i.privateIp.replaceAll(".", "-")}.${ctx.region}.compute.internal`),
    el("dnsName"),
    el("amiLaunchIndex", 0),
    el("instanceType", i.instanceType),
    el("launchTime", "2025-01-01T00:00:00.000Z"),
    el("placement", el("availabilityZone", `${ctx.region}a`), el("tenancy", "default")),
    windows ? el("platform", "windows") : undefined,
    el("monitoring", el("state", "disabled")),
    el("subnetId", i.subnet),
    el("vpcId", i.vpc),
    el("privateIpAddress", i.privateIp),
    el("architecture", i.architecture),
    el("rootDeviceType", "ebs"),
    el("virtualizationType", "hvm"),
    el("platformDetails", windows ? "Windows" : "Linux/UNIX"),
    Object.keys(allTags(i)).length > 0 ? tagSet(allTags(i)) : undefined,
  ];
}

function startInstances(ctx: ApiContext, p: QueryParams): Xml[] {
  const ids = indexedList(p, "InstanceId");
  if (ids.length === 0) {
    throw new Ec2Fault("MissingParameter", "The request must contain the parameter InstanceId");
  }
  const items = requireInstances(ctx, ids).map((i) => {
    const previous = i.state;
    if (i.state === "stopped") {
      i.state = "pending";
      i.readyAt = ctx.now() + ctx.fixtures.startDelayMs;
      // The agent re-registers only once the instance has booted.
      i.pingStatus = "ConnectionLost";
    }
    return [
      el("instanceId", i.id),
      stateXml("currentState", i.state),
      stateXml("previousState", previous),
    ];
  });
  return [itemSet("instancesSet", items)];
}

/** `vpc-cidr-assoc-…` ids: the primary block keeps the id it always had. */
function cidrAssociationId(v: FixtureVpc, n: number): string {
  const suffix = v.id.slice(4);
  return `vpc-cidr-assoc-${n === 0 ? suffix : `${suffix}${n.toString(16).padStart(2, "0")}`}`;
}

function vpcFields(ctx: ApiContext): Record<string, FieldOf<FixtureVpc>> {
  return {
    "vpc-id": (v) => v.id,
    "cidr": (v) => v.cidr,
    "cidr-block": (v) => v.cidr,
    "cidr-block-association.cidr-block": (v) => vpcCidrs(v),
    "cidr-block-association.association-id": (v) =>
      vpcCidrs(v).map((_, n) => cidrAssociationId(v, n)),
    "cidr-block-association.state": () => "associated",
    "dhcp-options-id": (v) => vpcDhcpOptionsId(v, ctx.region),
    "owner-id": () => ctx.fixtures.account,
    "state": () => "available",
    "is-default": () => "false",
  };
}

function describeVpcs(ctx: ApiContext, p: QueryParams): Xml[] {
  const ids = indexedList(p, "VpcId");
  const missing = ids.filter((id) => !ctx.fixtures.vpcs.some((v) => v.id === id));
  if (missing.length > 0) {
    throw new Ec2Fault("InvalidVpcID.NotFound", `The vpc ID '${missing[0]}' does not exist`);
  }
  const base = ids.length > 0
    ? ctx.fixtures.vpcs.filter((v) => ids.includes(v.id))
    : ctx.fixtures.vpcs;
  const fields = vpcFields(ctx);
  const preds = queryFilters(p).map((f) => filterPred(f, fields));
  const matches = base.filter((v) => preds.every((pred) => pred(v)));
  return [itemSet(
    "vpcSet",
    matches.map((v) => [
      el("vpcId", v.id),
      el("ownerId", ctx.fixtures.account),
      el("state", "available"),
      el("cidrBlock", v.cidr),
      itemSet(
        "cidrBlockAssociationSet",
        vpcCidrs(v).map((cidr, n) => [
          el("associationId", cidrAssociationId(v, n)),
          el("cidrBlock", cidr),
          el("cidrBlockState", el("state", "associated")),
        ]),
      ),
      el("dhcpOptionsId", vpcDhcpOptionsId(v, ctx.region)),
      el("instanceTenancy", "default"),
      el("isDefault", false),
      Object.keys(v.tags).length > 0 ? tagSet(v.tags) : undefined,
    ]),
  )];
}
