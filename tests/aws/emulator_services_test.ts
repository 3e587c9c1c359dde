/**
 * The emulator's EC2, STS and EKS endpoints driven by the unmodified AWS SDK v3. (It sits with
 * the SDK harness; its SSM, routing and fixture siblings are in tests/emulator/api_test.ts.)
 */

import assert from "node:assert/strict";
import {
  DescribeInstanceInformationCommand,
  SSMClient,
  StartSessionCommand,
} from "@aws-sdk/client-ssm";
import {
  DescribeInstancesCommand,
  type DescribeInstancesCommandInput,
  DescribeVpcsCommand,
  EC2Client,
  StartInstancesCommand,
} from "@aws-sdk/client-ec2";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import {
  DescribeClusterCommand,
  EKSClient,
  ListClustersCommand,
  ResourceNotFoundException,
} from "@aws-sdk/client-eks";
import { rejectsWith, withClient, withEmulator, WORLD } from "./harness_test.ts";

const ssm = <T>(fn: (c: SSMClient) => Promise<T>) => withClient(() => new SSMClient({}), fn);
const ec2 = <T>(fn: (c: EC2Client) => Promise<T>) => withClient(() => new EC2Client({}), fn);

// ---- EC2 ----

Deno.test("ec2 DescribeInstances: fields, ids, and every filter", async () => {
  await withEmulator(WORLD, async () => {
    await ec2(async (c) => {
      const ids = async (input: DescribeInstancesCommandInput) => {
        const out = await c.send(new DescribeInstancesCommand(input));
        return out.Reservations!.flatMap((r) => r.Instances!.map((i) => i.InstanceId!));
      };
      assert.equal((await ids({})).length, 7, "mi- managed instances are not EC2");
      const one = await c.send(
        new DescribeInstancesCommand({ InstanceIds: ["i-0aaaaaaaaaaaaaaa1"] }),
      );
      const i = one.Reservations![0].Instances![0];
      assert.deepEqual(i.State, { Code: 16, Name: "running" });
      assert.equal(i.PrivateIpAddress, "10.99.1.11");
      assert.equal(i.VpcId, "vpc-0a1b2c3d");
      assert.equal(i.SubnetId, "subnet-0b1b2b3b");
      assert.equal(i.Architecture, "arm64");
      assert.equal(i.PlatformDetails, "Linux/UNIX");
      assert.deepEqual(i.Tags, [{ Key: "Name", Value: "web" }, { Key: "Purpose", Value: "web" }]);
      const f = (Name: string, ...Values: string[]) => ({ Filters: [{ Name, Values }] });
      assert.deepEqual(await ids(f("tag:Name", "web")), [
        "i-0aaaaaaaaaaaaaaa1",
        "i-0aaaaaaaaaaaaaaa2",
      ]);
      assert.deepEqual(await ids(f("tag:Name", "bas*")), ["i-0123456789abcdef0"]);
      assert.deepEqual(await ids(f("tag-key", "Team")), ["i-0123456789abcdef0"]);
      assert.deepEqual(await ids(f("instance-state-name", "stopped")), ["i-0bbbbbbbbbbbbbbb1"]);
      assert.deepEqual(await ids(f("vpc-id", "vpc-0e5e5e5e")), ["i-0ddddddddddddddd1"]);
      assert.deepEqual(await ids(f("instance-id", "i-0ccccccccccccccc1")), ["i-0ccccccccccccccc1"]);
      assert.deepEqual(
        await ids({
          Filters: [
            { Name: "tag:Purpose", Values: ["web", "bastion"] },
            { Name: "subnet-id", Values: ["subnet-0a1b2c3d"] },
          ],
        }),
        ["i-0123456789abcdef0"],
      );
      const win = await c.send(
        new DescribeInstancesCommand({ InstanceIds: ["i-0ddddddddddddddd1"] }),
      );
      assert.equal(win.Reservations![0].Instances![0].Platform, "windows");
      assert.equal(win.Reservations![0].Instances![0].PlatformDetails, "Windows");
    });
  });
});

Deno.test("ec2 DescribeInstances errors: unknown id, unknown filter", async () => {
  await withEmulator(WORLD, async () => {
    await ec2(async (c) => {
      await rejectsWith(
        c.send(new DescribeInstancesCommand({ InstanceIds: ["i-0000000000000dead"] })),
        "InvalidInstanceID.NotFound",
        /i-0000000000000dead/,
      );
      await rejectsWith(
        c.send(new DescribeInstancesCommand({ Filters: [{ Name: "colour", Values: ["red"] }] })),
        "InvalidParameterValue",
      );
    });
  });
});

Deno.test("ec2 StartInstances: stopped → pending → running, and SSM comes Online", async () => {
  await withEmulator(WORLD, async (emu) => {
    const id = "i-0bbbbbbbbbbbbbbb1";
    await ec2(async (c) => {
      const out = await c.send(new StartInstancesCommand({ InstanceIds: [id] }));
      assert.deepEqual(out.StartingInstances, [{
        InstanceId: id,
        CurrentState: { Code: 0, Name: "pending" },
        PreviousState: { Code: 80, Name: "stopped" },
      }]);
      const again = await c.send(new StartInstancesCommand({ InstanceIds: [id] }));
      assert.equal(again.StartingInstances![0].PreviousState!.Name, "pending");
      await ssm((s) =>
        rejectsWith(s.send(new StartSessionCommand({ Target: id })), "TargetNotConnected")
      );
      emu.advance(1000);
      const now = await c.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
      assert.equal(now.Reservations![0].Instances![0].State!.Name, "running");
      const info = await ssm((s) =>
        s.send(
          new DescribeInstanceInformationCommand({
            Filters: [{ Key: "InstanceIds", Values: [id] }],
          }),
        )
      );
      assert.equal(info.InstanceInformationList![0].PingStatus, "Online");
      await ssm((s) => s.send(new StartSessionCommand({ Target: id })));
      const running = await c.send(new StartInstancesCommand({ InstanceIds: [id] }));
      assert.equal(running.StartingInstances![0].CurrentState!.Name, "running");
      await rejectsWith(
        c.send(new StartInstancesCommand({ InstanceIds: ["i-0000000000000dead"] })),
        "InvalidInstanceID.NotFound",
      );
      await rejectsWith(
        c.send(new StartInstancesCommand({ InstanceIds: ["i-0eeeeeeeeeeeeeee1"] })),
        "UnauthorizedOperation",
        /ec2:StartInstances/,
      );
    });
  });
});

Deno.test("ec2 DescribeVpcs: cidr, tags, ids, filters, unknown id", async () => {
  await withEmulator(WORLD, async () => {
    await ec2(async (c) => {
      const all = await c.send(new DescribeVpcsCommand({}));
      assert.equal(all.Vpcs!.length, 2);
      const lab = await c.send(new DescribeVpcsCommand({ VpcIds: ["vpc-0a1b2c3d"] }));
      assert.equal(lab.Vpcs![0].CidrBlock, "10.99.0.0/16");
      assert.equal(lab.Vpcs![0].VpcId, "vpc-0a1b2c3d");
      assert.deepEqual(lab.Vpcs![0].Tags, [{ Key: "Name", Value: "lab" }]);
      const corp = await c.send(
        new DescribeVpcsCommand({ Filters: [{ Name: "tag:Name", Values: ["corp"] }] }),
      );
      assert.deepEqual(corp.Vpcs!.map((v) => v.CidrBlock), ["10.50.0.0/16"]);
      await rejectsWith(
        c.send(new DescribeVpcsCommand({ VpcIds: ["vpc-00000bad"] })),
        "InvalidVpcID.NotFound",
      );
    });
  });
});

// ---- STS and EKS ----

Deno.test("sts GetCallerIdentity returns the fixture identity", async () => {
  await withEmulator(WORLD, async () => {
    const c = new STSClient({});
    try {
      const me = await c.send(new GetCallerIdentityCommand({}));
      assert.equal(me.Account, "210987654321");
      assert.equal(me.Arn, "arn:aws:iam::210987654321:user/jane");
      assert.equal(me.UserId, "AIDAJANE0000000000001");
    } finally {
      c.destroy();
    }
  });
});

Deno.test("eks ListClusters and DescribeCluster; unknown cluster is ResourceNotFound", async () => {
  await withEmulator(WORLD, async () => {
    const c = new EKSClient({});
    try {
      assert.deepEqual((await c.send(new ListClustersCommand({}))).clusters, ["lab"]);
      const { cluster } = await c.send(new DescribeClusterCommand({ name: "lab" }));
      assert.equal(cluster!.name, "lab");
      assert.equal(cluster!.arn, "arn:aws:eks:eu-central-1:210987654321:cluster/lab");
      assert.equal(cluster!.endpoint, "https://ABCDEF.gr7.eu-central-1.eks.amazonaws.com");
      assert.equal(cluster!.status, "ACTIVE");
      assert.equal(cluster!.version, "1.30");
      assert.equal(
        atob(cluster!.certificateAuthority!.data!),
        "-----BEGIN CERTIFICATE-----\nTUlJQ2xhYg==\n-----END CERTIFICATE-----\n",
      );
      assert.deepEqual(cluster!.resourcesVpcConfig, {
        subnetIds: ["subnet-0a1b2c3d", "subnet-0b1b2b3b"],
        securityGroupIds: [],
        clusterSecurityGroupId: "sg-0e0e0e0e0e0e0e0e0",
        vpcId: "vpc-0a1b2c3d",
        endpointPublicAccess: false,
        endpointPrivateAccess: true,
        publicAccessCidrs: [],
      });
      const e = await rejectsWith(
        c.send(new DescribeClusterCommand({ name: "nope" })),
        "ResourceNotFoundException",
      );
      assert.ok(e instanceof ResourceNotFoundException);
    } finally {
      c.destroy();
    }
  });
});
