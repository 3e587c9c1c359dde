/**
 * vpcResolver (src/aws/ec2.ts): the unmodified SDK asks the emulator's EC2 for the instance's
 * VPC and that VPC's primary CIDR; the resolver is its base address + 2 (DESIGN §9).
 */
import assert from "node:assert/strict";
import { vpcResolver } from "../../src/aws/ec2.ts";
import { UserError } from "../../src/errors.ts";
import { withEmulator, WORLD } from "./harness_test.ts";

Deno.test("vpcResolver: base + 2 of the instance's VPC, through DescribeInstances and DescribeVpcs", async () => {
  await withEmulator(WORLD, async (emu) => {
    assert.equal(await vpcResolver({}, "i-0123456789abcdef0"), "10.99.0.2");
    assert.deepEqual(emu.seen.map((r) => r.op), [
      "Action=DescribeInstances",
      "Action=DescribeVpcs",
    ]);
    assert.ok(emu.seen.every((r) => r.scope === "eu-central-1/ec2"));
    // Another VPC, and a stopped instance still has one.
    assert.equal(await vpcResolver({}, "i-0ddddddddddddddd1"), "10.50.0.2");
    assert.equal(await vpcResolver({}, "i-0bbbbbbbbbbbbbbb1"), "10.99.0.2");
  });
});

Deno.test("vpcResolver: undefined for managed instances and when nothing is found", async () => {
  await withEmulator(WORLD, async (emu) => {
    // A managed instance has no VPC in EC2: not even asked.
    assert.equal(await vpcResolver({}, "mi-0123456789abcdef0"), undefined);
    assert.equal(emu.seen.length, 0);
    assert.equal(await vpcResolver({}, "i-0fffffffffffffff9"), undefined);
    assert.deepEqual(emu.seen.map((r) => r.op), ["Action=DescribeInstances"]);
    // The instance's VPC is gone from the account.
    emu.fixtures.vpcs = emu.fixtures.vpcs.filter((v) => v.id !== "vpc-0e5e5e5e");
    assert.equal(await vpcResolver({}, "i-0ddddddddddddddd1"), undefined);
  });
});

Deno.test("vpcResolver: a denied DescribeVpcs is a UserError naming the permission", async () => {
  await withEmulator(WORLD, async (emu) => {
    emu.fixtures.deny.push({ action: "DescribeVpcs" });
    await assert.rejects(vpcResolver({}, "i-0123456789abcdef0"), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.match(e.message, /ec2:DescribeVpcs/);
      return true;
    });
  });
});
