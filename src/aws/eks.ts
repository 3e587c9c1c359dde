/** EKS DescribeCluster: what `eks connect` needs to write kubeconfig and find the bastion. */
import { type AwsOptions, clientConfig } from "./config.ts";
import { callAws } from "./call.ts";
import { ExitCode, UserError } from "../errors.ts";

export interface ClusterInfo {
  name: string;
  /** `https://…`, the API server. */
  endpoint: string;
  /** Base64 of the CA PEM, as kubeconfig's certificate-authority-data wants it. */
  caData: string;
  vpcId: string;
  privateAccess: boolean;
  publicAccess: boolean;
  status: string;
  version?: string;
}

export async function describeCluster(o: AwsOptions, name: string): Promise<ClusterInfo> {
  const { EKSClient, DescribeClusterCommand } = await import("@aws-sdk/client-eks");
  const spec = { service: "eks", action: "eks:DescribeCluster", subject: name } as const;
  return await callAws(
    o,
    spec,
    () => Promise.resolve(new EKSClient(clientConfig(o))),
    async (c) => {
      let out;
      try {
        out = await c.send(new DescribeClusterCommand({ name }));
      } catch (e) {
        if ((e as Error).name === "ResourceNotFoundException") {
          const region = await c.config.region();
          throw new UserError(
            `EKS cluster "${name}" does not exist in region ${region}: check cluster_name and region`,
            ExitCode.Target,
          );
        }
        throw e;
      }
      const k = out.cluster;
      if (!k?.endpoint || !k.certificateAuthority?.data || !k.resourcesVpcConfig?.vpcId) {
        throw new UserError(
          `EKS cluster "${name}" has no endpoint, CA or VPC yet (status ${
            k?.status ?? "unknown"
          }): ` +
            "wait until it is ACTIVE",
          ExitCode.Target,
        );
      }
      return {
        name,
        endpoint: k.endpoint,
        caData: k.certificateAuthority.data,
        vpcId: k.resourcesVpcConfig.vpcId,
        privateAccess: k.resourcesVpcConfig.endpointPrivateAccess ?? false,
        publicAccess: k.resourcesVpcConfig.endpointPublicAccess ?? false,
        status: k.status ?? "unknown",
        ...(k.version ? { version: k.version } : {}),
      };
    },
  );
}
