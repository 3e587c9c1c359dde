/**
 * Transparent mode's precondition: a running ssm-proxy tunnel that routes the cluster's whole
 * VPC. Starting one needs root, so `eks connect` reuses a tunnel but never starts one itself.
 */
import type { AwsOptions } from "../aws/config.ts";
import { callAws } from "../aws/call.ts";
import { clientConfig } from "../aws/config.ts";
import { type Cidr, parseCidr } from "../net/cidr.ts";
import type { TunnelState } from "../tunnel/state.ts";

/** Does `outer` include all of `inner`? */
export function covers(outer: Cidr, inner: Cidr): boolean {
  if (outer.prefix > inner.prefix) return false;
  const m = outer.prefix === 0 ? 0 : (0xffffffff << (32 - outer.prefix)) >>> 0;
  return ((inner.base & m) >>> 0) === outer.base;
}

/** The first live, up tunnel whose CIDRs cover every one of `vpcCidrs`. */
export function coveringTunnel(
  states: TunnelState[],
  vpcCidrs: string[],
  isAlive: (pid: number) => boolean,
): TunnelState | undefined {
  if (vpcCidrs.length === 0) return undefined;
  const want = vpcCidrs.map(parseCidr);
  return states.find((s) =>
    s.status === "up" && isAlive(s.pid) &&
    want.every((w) => s.cidrs.some((c) => covers(parseCidr(c), w)))
  );
}

export async function findCoveringTunnel(vpcCidrs: string[]): Promise<TunnelState | undefined> {
  const { listStates, alive } = await import("../tunnel/state.ts");
  return coveringTunnel(await listStates(), vpcCidrs, alive);
}

/** The VPC's IPv4 CIDRs (primary and associated). */
export async function vpcCidrs(o: AwsOptions, vpcId: string): Promise<string[]> {
  const { EC2Client, DescribeVpcsCommand } = await import("@aws-sdk/client-ec2");
  const spec = { service: "ec2", action: "ec2:DescribeVpcs", subject: vpcId } as const;
  return await callAws(
    o,
    spec,
    () => Promise.resolve(new EC2Client(clientConfig(o))),
    async (c) => {
      const out = await c.send(new DescribeVpcsCommand({ VpcIds: [vpcId] }));
      const v = out.Vpcs?.[0];
      const cidrs = new Set<string>();
      if (v?.CidrBlock) cidrs.add(v.CidrBlock);
      for (const a of v?.CidrBlockAssociationSet ?? []) {
        if (a.CidrBlock && a.CidrBlockState?.State !== "disassociated") cidrs.add(a.CidrBlock);
      }
      return [...cidrs];
    },
  );
}
