/**
 * A lab account for `start` with nothing but --target: the instance's VPC is the lab's vpc
 * network, its subnet's route table sends a "peered VPC" (10.98.X.0/24, a second address of the
 * vpc namespace) through a peering connection, and a private hosted zone lab.internal is
 * associated with it. Used by the zero-config e2e test and benchmark.
 */
import assert from "node:assert/strict";
import type { Lab } from "../lab.ts";
import { REPO } from "./stack.ts";

/** The "peered VPC": a second range behind the lab's vpc namespace. */
export const peered = (lab: Lab) => `10.98.${lab.x}.0/24`;
export const peeredHost = (lab: Lab) => `10.98.${lab.x}.10`;

export async function zeroConfigWorld(lab: Lab): Promise<string> {
  const file = `${lab.dir}/zero_config.yaml`;
  await Deno.writeTextFile(
    file,
    `
instances:
  - id: i-0123456789abcdef0
    name: bastion
    tags: { Purpose: bastion }
    privateIp: ${lab.instanceVpcAddress}
    vpc: vpc-0ab0ab0a
    subnet: subnet-0ab0ab0a
vpcs:
  - id: vpc-0ab0ab0a
    cidr: ${lab.vpcNetwork}
    tags: { Name: lab }
routeTables:
  - id: rtb-0ab0ab0a
    vpc: vpc-0ab0ab0a
    subnets: [subnet-0ab0ab0a]
    routes:
      - { destination: ${peered(lab)}, target: pcx-0ab0ab0ab0ab0ab0a }
      - { destination: 0.0.0.0/0, target: igw-0ab0ab0a }
parameters:
  - name: /ssm-proxy/tunnels/team-lab
    type: String
    value: '{"kind":"tunnel","version":1,"target":"name:bastion","exclude":["${
      peered(lab)
    }"],"dns":false}'
hostedZones:
  - id: Z0LAB0LAB0LAB0LAB0LAB
    name: lab.internal
    vpcs: [vpc-0ab0ab0a]
`,
  );
  return file;
}

/** Services on the peered range, reached from the instance through the vpc namespace. */
export async function addPeeredNetwork(lab: Lab): Promise<void> {
  const must = async (role: "vpc" | "instance", args: string[]) => {
    const r = await lab.exec(role, args);
    assert.ok(r.success, `${args.join(" ")}: ${r.stderr}`);
  };
  await must("vpc", ["ip", "addr", "add", `${peeredHost(lab)}/24`, "dev", "lab0"]);
  await must("instance", ["ip", "route", "add", peered(lab), "via", lab.serviceAddress]);
  const svc = lab.spawn(
    "vpc",
    [Deno.execPath(), "run", "-A", `${REPO}scripts/lab/services.ts`, "--addr", peeredHost(lab)],
    {},
    "peered services",
  );
  await svc.waitForLine(/^ready$/, 20_000);
}
