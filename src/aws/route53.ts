/**
 * Route 53 lookups for DNS discovery: the private hosted zones a VPC resolves. client-route-53 is
 * imported only when discovery runs.
 */

import { type AwsOptions, clientConfig } from "./config.ts";
import { callAws } from "./call.ts";

export interface HostedZoneSummary {
  /** `Z…`, without the `/hostedzone/` prefix. */
  id: string;
  /** As Route 53 returns it, usually with a trailing dot. */
  name: string;
}

/**
 * Route 53 is a global service signed for us-east-1 whatever region the user works in; the
 * VPC's own region goes in the request (VPCRegion) instead.
 */
async function route53Client(o: AwsOptions) {
  const { Route53Client } = await import("@aws-sdk/client-route-53");
  return new Route53Client({ ...clientConfig(o), region: "us-east-1" });
}

/** Every hosted zone associated with the VPC (only private zones can be), paginated through. */
export async function hostedZonesByVpc(
  o: AwsOptions,
  vpcId: string,
  vpcRegion: string,
): Promise<HostedZoneSummary[]> {
  const { ListHostedZonesByVPCCommand } = await import("@aws-sdk/client-route-53");
  const spec = {
    service: "route53",
    action: "route53:ListHostedZonesByVPC",
    subject: vpcId,
  } as const;
  return await callAws(o, spec, () => route53Client(o), async (c) => {
    const found: HostedZoneSummary[] = [];
    let NextToken: string | undefined;
    do {
      const out = await c.send(
        new ListHostedZonesByVPCCommand({
          VPCId: vpcId,
          // The SDK types VPCRegion as an enum of known regions; a newer one is still valid.
          VPCRegion: vpcRegion as "us-east-1",
          NextToken,
        }),
      );
      for (const z of out.HostedZoneSummaries ?? []) {
        if (!z.HostedZoneId || !z.Name) continue;
        found.push({ id: z.HostedZoneId.replace(/^\/hostedzone\//, ""), name: z.Name });
      }
      NextToken = out.NextToken;
    } while (NextToken);
    return found;
  });
}
