import assert from "node:assert/strict";
import { ExitCode, UserError } from "../../src/errors.ts";
import { parseTarget, pickRunning, resolveTarget } from "../../src/aws/targets.ts";
import { withEmulator, WORLD } from "./harness_test.ts";
import {
  EC2_DB,
  HOSTILE_KEY,
  HOSTILE_NAME,
  HOSTILE_VALUE,
  NAMELESS,
  ONPREM_DB,
  ONPREM_WEB,
  withHybrid,
} from "./hybrid_world.ts";

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

// ---- hybrid-activation managed instances (mi-…) ----

Deno.test("parseTarget: mi- ids take exactly 17 hex digits", () => {
  for (const bad of ["mi-0123abcd", "mi-0123456789abcdef", "mi-0123456789ABCDEF0", "mi-"]) {
    assert.throws(() => parseTarget(bad), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.match(e.message, /is not a valid instance id: .*mi- and 17 hex digits/, bad);
      assert.equal(e.exitCode, ExitCode.Usage);
      return true;
    });
  }
});

Deno.test("resolveTarget: name: and tag: also find managed instances", async () => {
  await withHybrid(async () => {
    // The registration name, with or without wildcards.
    assert.deepEqual(await resolveTarget({}, "name:onprem-db"), {
      instanceId: ONPREM_DB,
      name: "onprem-db",
    });
    // onprem-web matches too, but is not online: the one live match wins.
    assert.deepEqual(await resolveTarget({}, "name:onprem-*"), {
      instanceId: ONPREM_DB,
      name: "onprem-db",
    });
    // The Name tag, exactly; the name shown stays the registration name.
    assert.deepEqual(await resolveTarget({}, "name:rack7"), {
      instanceId: ONPREM_DB,
      name: "onprem-db",
    });
    assert.deepEqual(await resolveTarget({}, "tag:Name=rack7"), {
      instanceId: ONPREM_DB,
      name: "onprem-db",
    });
    // EC2 instances resolve as before.
    assert.deepEqual(await resolveTarget({}, "name:db"), { instanceId: EC2_DB, name: "db" });
  });
});

Deno.test("resolveTarget: ambiguity and offline managed matches list every candidate", async () => {
  await withHybrid(async () => {
    await fails(
      resolveTarget({}, "tag:Purpose=db"),
      /^tag:Purpose=db matches 2 running instances: i-0aaaaaaaaaaaaaaa1 \(db, running\), mi-0123456789abcdef0 \(onprem-db, managed, Online\); pass one instance id as the target$/,
    );
    await fails(
      resolveTarget({}, "tag:Purpose=web"),
      /^no running instance matches tag:Purpose=web; found mi-0aaaaaaaaaaaaaaa1 \(onprem-web, managed, ConnectionLost\)$/,
    );
    await fails(
      resolveTarget({}, "name:onprem-nosuch"),
      /^no instance matches name:onprem-nosuch$/,
    );
  });
});

Deno.test("resolveTarget: mi- ids, offline and unknown, say how to fix a hybrid node", async () => {
  await withHybrid(async () => {
    assert.deepEqual(await resolveTarget({}, ONPREM_DB), { instanceId: ONPREM_DB });
    await fails(
      resolveTarget({}, ONPREM_WEB),
      /^instance mi-0aaaaaaaaaaaaaaa1 is not online in Systems Manager \(PingStatus ConnectionLost\): check that amazon-ssm-agent runs on the server and that the IAM service role of its hybrid activation has AmazonSSMManagedInstanceCore$/,
    );
    await fails(
      resolveTarget({}, "mi-0fffffffffffffff0"),
      /^instance mi-0fffffffffffffff0 is not known to Systems Manager .*hybrid activation/,
    );
  });
});

Deno.test("resolveTarget: hostile Name tags and tags are matched as plain values", async () => {
  await withHybrid(async (emu) => {
    assert.deepEqual(await resolveTarget({}, `name:${HOSTILE_NAME}`), {
      instanceId: NAMELESS,
      name: HOSTILE_NAME,
    });
    assert.deepEqual(await resolveTarget({}, `tag:${HOSTILE_KEY}=${HOSTILE_VALUE}`), {
      instanceId: NAMELESS,
    });
    await fails(resolveTarget({}, "name:$(id)*"), /^no instance matches name:\$\(id\)\*$/);
    assert.ok(!emu.seen.some((s) => /ListTagsForResource/.test(s.op)));
  });
});

Deno.test("resolveTarget: a denied SSM lookup of managed instances is one Auth line", async () => {
  await withHybrid(async (emu) => {
    emu.fixtures.deny.push({ action: "DescribeInstanceInformation" });
    await fails(
      resolveTarget({}, "name:onprem-db"),
      /^access denied: .* may not call ssm:DescribeInstanceInformation/,
      ExitCode.Auth,
    );
  });
});
