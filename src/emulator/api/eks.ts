/**
 * EKS in REST-JSON: ListClusters (`GET /clusters`) and DescribeCluster (`GET /clusters/<name>`).
 */

import type { FixtureCluster } from "../fixtures.ts";
import { type ApiContext, deniedMessage, isDenied, requestId } from "./world.ts";

/** REST-JSON errors carry their type in a header; the body has only the message. */
export function eksError(type: string, message: string, status: number, extra = {}): Response {
  return new Response(JSON.stringify({ message, ...extra }), {
    status,
    headers: {
      "content-type": "application/json",
      "x-amzn-errortype": type,
      "x-amzn-requestid": requestId(),
    },
  });
}

function ok(body: unknown): Response {
  return new Response(JSON.stringify(body), {
    headers: { "content-type": "application/json", "x-amzn-requestid": requestId() },
  });
}

export function handleEks(ctx: ApiContext, req: Request, path: string): Response {
  if (req.method !== "GET") {
    return eksError("UnknownOperationException", `${req.method} ${path} is not supported`, 404);
  }
  const rest = path.replace(/^\/clusters\/?/, "");
  if (rest === "") return listClusters(ctx);
  if (rest.includes("/")) {
    return eksError("UnknownOperationException", `GET ${path} is not supported`, 404);
  }
  return describeCluster(ctx, decodeURIComponent(rest));
}

function denied(ctx: ApiContext, action: string, cluster?: string): Response | undefined {
  if (!isDenied(ctx.fixtures, action, cluster ? [cluster] : [])) return undefined;
  const resource = cluster
    ? `arn:aws:eks:${ctx.region}:${ctx.fixtures.account}:cluster/${cluster}`
    : undefined;
  return eksError("AccessDeniedException", deniedMessage(ctx, `eks:${action}`, resource), 403);
}

function listClusters(ctx: ApiContext): Response {
  return denied(ctx, "ListClusters") ??
    ok({ clusters: ctx.fixtures.clusters.map((c) => c.name) });
}

function describeCluster(ctx: ApiContext, name: string): Response {
  const refusal = denied(ctx, "DescribeCluster", name);
  if (refusal) return refusal;
  const c = ctx.fixtures.clusters.find((x) => x.name === name);
  if (!c) {
    return eksError("ResourceNotFoundException", `No cluster found for name: ${name}.`, 404, {
      clusterName: name,
    });
  }
  return ok({ cluster: clusterJson(ctx, c) });
}

function clusterJson(ctx: ApiContext, c: FixtureCluster) {
  const account = ctx.fixtures.account;
  return {
    name: c.name,
    arn: `arn:aws:eks:${ctx.region}:${account}:cluster/${c.name}`,
    createdAt: 1735689600,
    version: c.version,
    endpoint: c.endpoint,
    roleArn: `arn:aws:iam::${account}:role/${c.name}-cluster-role`,
    resourcesVpcConfig: {
      subnetIds: c.subnets,
      securityGroupIds: [],
      clusterSecurityGroupId: "sg-0e0e0e0e0e0e0e0e0",
      vpcId: c.vpc,
      endpointPublicAccess: c.publicAccess,
      endpointPrivateAccess: c.privateAccess,
      publicAccessCidrs: c.publicAccess ? ["0.0.0.0/0"] : [],
    },
    kubernetesNetworkConfig: { serviceIpv4Cidr: "172.20.0.0/16", ipFamily: "ipv4" },
    certificateAuthority: { data: c.caData },
    status: "ACTIVE",
    platformVersion: "eks.1",
    tags: {},
  };
}
