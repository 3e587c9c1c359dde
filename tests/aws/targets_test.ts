import assert from "node:assert/strict";
import { ExitCode, UserError } from "../../src/errors.ts";
import { parseTarget, pickRunning, resolveTarget } from "../../src/aws/targets.ts";
import { withEmulator, WORLD } from "./harness_test.ts";

async function fails(p: Promise<unknown>, message: RegExp, code: number = ExitCode.Target) {
  const e = await p.then(() => undefined, (e) => e);
  assert.ok(e instanceof UserError, `expected a UserError, got ${e}`);
  assert.match(e.message, message);
  assert.equal(e.exitCode, code, e.message);
  assert.ok(!e.message.includes("\n"), "one line");
}

Deno.test("parseTarget: the three forms", () => {
  assert.deepEqual(parseTarget("i-0123456789abcdef0"), { kind: "id", id: "i-0123456789abcdef0" });
  assert.deepEqual(parseTarget("i-0123abcd"), { kind: "id", id: "i-0123abcd" });
  assert.deepEqual(parseTarget("mi-0123456789abcdef0"), { kind: "id", id: "mi-0123456789abcdef0" });
  assert.deepEqual(parseTarget("name:bastion"), { kind: "name", name: "bastion" });
  assert.deepEqual(parseTarget("tag:Purpose=bastion"), {
    kind: "tag",
    key: "Purpose",
    value: "bastion",
  });
  assert.deepEqual(parseTarget("tag:k=a=b"), { kind: "tag", key: "k", value: "a=b" });
});

Deno.test("parseTarget: precise messages for bad syntax", () => {
  const bad: [string, RegExp][] = [
    ["", /target is empty/],
    ["i-xyz", /"i-xyz" is not a valid instance id: expected i- followed by 8 or 17 hex digits/],
    ["i-0123456789ABCDEF0", /not a valid instance id/],
    ["mi-0123", /not a valid instance id/],
    ["name:", /no name after "name:"/],
    ["tag:Purpose", /"tag:Purpose" needs =<Value>/],
    ["tag:=bastion", /no tag key before "="/],
    ["tag:Purpose=", /no value after "="/],
    ["host:bastion", /unknown target kind "host:"/],
    ["bastion", /"bastion" is not a target: .*did you mean name:bastion\?/],
  ];
  for (const [spec, message] of bad) {
    assert.throws(() => parseTarget(spec), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.match(e.message, message, spec);
      assert.equal(e.exitCode, ExitCode.Usage);
      return true;
    });
  }
});

Deno.test("pickRunning: one running among stopped ones wins", () => {
  assert.deepEqual(
    pickRunning({ kind: "name", name: "x" }, [
      { instanceId: "i-1", name: "x", state: "stopped" },
      { instanceId: "i-2", name: "x", state: "running" },
    ]),
    { instanceId: "i-2", name: "x" },
  );
});

Deno.test("resolveTarget by id uses SSM only, never EC2", async () => {
  // EC2 is pointed at a closed port: any EC2 call would fail the test.
  await withEmulator(WORLD, async (emu) => {
    assert.deepEqual(await resolveTarget({}, "i-0123456789abcdef0"), {
      instanceId: "i-0123456789abcdef0",
    });
    assert.deepEqual(await resolveTarget({}, "mi-0123456789abcdef0"), {
      instanceId: "mi-0123456789abcdef0",
    });
    assert.deepEqual(emu.seen.map((r) => r.op), [
      "AmazonSSM.DescribeInstanceInformation",
      "AmazonSSM.DescribeInstanceInformation",
    ]);
  }, { AWS_ENDPOINT_URL_EC2: "http://127.0.0.1:1" });
});

Deno.test("resolveTarget by name and by tag", async () => {
  await withEmulator(WORLD, async () => {
    assert.deepEqual(await resolveTarget({}, "name:bastion"), {
      instanceId: "i-0123456789abcdef0",
      name: "bastion",
    });
    assert.deepEqual(await resolveTarget({}, "tag:Team=infra"), {
      instanceId: "i-0123456789abcdef0",
      name: "bastion",
    });
    assert.deepEqual(await resolveTarget({}, "tag:Purpose=bastion"), {
      instanceId: "i-0123456789abcdef0",
      name: "bastion",
    });
  });
});

Deno.test("resolveTarget: ambiguous names list every candidate", async () => {
  await withEmulator(WORLD, async () => {
    await fails(
      resolveTarget({}, "name:web"),
      /^name:web matches 2 running instances: i-0aaaaaaaaaaaaaaa1 \(web, running\), i-0aaaaaaaaaaaaaaa2 \(web, running\); pass one instance id/,
    );
    await fails(resolveTarget({}, "tag:Purpose=web"), /tag:Purpose=web matches 2 running/);
  });
});

Deno.test("resolveTarget: nothing matches, or only a stopped instance", async () => {
  await withEmulator(WORLD, async () => {
    await fails(resolveTarget({}, "name:ghost"), /^no instance matches name:ghost$/);
    await fails(
      resolveTarget({}, "name:sleepy"),
      /^no running instance matches name:sleepy; found i-0bbbbbbbbbbbbbbb1 \(sleepy, stopped\)$/,
    );
  });
});

Deno.test("resolveTarget: offline and unknown instances say how to fix the agent", async () => {
  await withEmulator(WORLD, async () => {
    const offline =
      /^instance i-0ccccccccccccccc1 is not online in Systems Manager \(PingStatus ConnectionLost\): check that the SSM agent runs and the instance role has AmazonSSMManagedInstanceCore$/;
    await fails(resolveTarget({}, "name:lost"), offline);
    await fails(resolveTarget({}, "i-0ccccccccccccccc1"), offline);
    await fails(
      resolveTarget({}, "i-0bbbbbbbbbbbbbbb1"),
      /is not online in Systems Manager \(PingStatus ConnectionLost\)/,
    );
    await fails(
      resolveTarget({}, "i-0000000000000dead"),
      /^instance i-0000000000000dead is not known to Systems Manager .*AmazonSSMManagedInstanceCore$/,
    );
  });
});

Deno.test("resolveTarget: denied EC2 lookup is an Auth error naming the permission", async () => {
  await withEmulator(WORLD, async (emu) => {
    emu.fixtures.deny.push({ action: "DescribeInstances" });
    await fails(
      resolveTarget({}, "name:bastion"),
      /^access denied: arn:aws:iam::210987654321:user\/jane may not call ec2:DescribeInstances; the IAM policy needs to allow "ec2:DescribeInstances"$/,
      ExitCode.Auth,
    );
  });
});
