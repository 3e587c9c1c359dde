/**
 * Hybrid-activation managed instances (`mi-…`) in the emulator: fixtures, the SSM calls that
 * find them (DescribeInstanceInformation with ResourceType and tag filters), and a Port session
 * to one through the real client, exactly as to an EC2 instance.
 */

import assert from "node:assert/strict";
import { DescribeInstanceInformationCommand, SSMClient } from "@aws-sdk/client-ssm";
import { openForward } from "../../src/cli/forward.ts";
import { findManagedInstances, globMatch } from "../../src/aws/ssm.ts";
import { FixtureError, parseFixtures } from "../../src/emulator/fixtures.ts";
import { startEmulator } from "../../src/emulator/server.ts";
import { awsEnv, withEnv } from "../support/aws_env.ts";
import { startDestination } from "../support/net.ts";
import { rejectsWith, withClient } from "./harness_test.ts";
import {
  HOSTILE_KEY,
  HOSTILE_NAME,
  HOSTILE_VALUE,
  HYBRID_YAML,
  NAMELESS,
  ONPREM_DB,
  ONPREM_WEB,
  withHybrid,
} from "./hybrid_world.ts";

const ssm = <T>(fn: (c: SSMClient) => Promise<T>) => withClient(() => new SSMClient({}), fn);

Deno.test("fixtures: a managed instance keeps its Name tag apart from its registration name", () => {
  const f = parseFixtures(HYBRID_YAML);
  const db = f.instances.find((i) => i.id === ONPREM_DB)!;
  assert.equal(db.name, "onprem-db");
  assert.deepEqual(db.tags, { Purpose: "db", Name: "rack7" });
  assert.equal(db.computerName, "onprem-db.corp.internal");
  const nameless = f.instances.find((i) => i.id === NAMELESS)!;
  assert.equal(nameless.name, undefined);
  assert.equal(nameless.tags.Name, HOSTILE_NAME);
  // EC2 instances: the Name tag is the name, as before.
  const ec2 = parseFixtures("instances:\n  - { id: i-0123abcd, tags: { Name: x, K: v } }\n");
  assert.equal(ec2.instances[0].name, "x");
  assert.deepEqual(ec2.instances[0].tags, { K: "v" });
});

Deno.test("fixtures: a managed instance has no EC2 state, and mi- ids take 17 digits", () => {
  const bad: [string, RegExp][] = [
    [
      "instances:\n  - { id: mi-0123456789abcdef0, state: stopped }\n",
      /f\.yaml:2: instances\[0\]\.state: a managed \(mi-\) instance has no EC2 state: set pingStatus instead/,
    ],
    [
      "instances:\n  - { id: mi-0123abcd }\n",
      /instances\[0\]\.id: "mi-0123abcd" is not an instance id like i-0123456789abcdef0 or mi-/,
    ],
  ];
  for (const [yaml, re] of bad) {
    assert.throws(() => parseFixtures(yaml, "f.yaml"), (e: unknown) => {
      assert.ok(e instanceof FixtureError);
      assert.match(e.message, re);
      return true;
    });
  }
});

Deno.test("ssm DescribeInstanceInformation: managed instances by ResourceType and tags", async () => {
  await withHybrid(async () => {
    await ssm(async (c) => {
      const ids = async (...Filters: { Key: string; Values: string[] }[]) =>
        (await c.send(new DescribeInstanceInformationCommand({ Filters })))
          .InstanceInformationList!.map((i) => i.InstanceId);
      const managed = { Key: "ResourceType", Values: ["ManagedInstance"] };
      assert.deepEqual(await ids(managed), [ONPREM_DB, ONPREM_WEB, NAMELESS]);
      assert.deepEqual(await ids(managed, { Key: "tag:Purpose", Values: ["db"] }), [ONPREM_DB]);
      assert.deepEqual(await ids(managed, { Key: "tag:Name", Values: ["rack7"] }), [ONPREM_DB]);
      // The registration name is not a tag.
      assert.deepEqual(await ids(managed, { Key: "tag:Name", Values: ["onprem-db"] }), []);
      assert.deepEqual(await ids({ Key: "tag-key", Values: [HOSTILE_KEY] }), [NAMELESS]);
      assert.deepEqual(await ids({ Key: `tag:${HOSTILE_KEY}`, Values: [HOSTILE_VALUE] }), [
        NAMELESS,
      ]);
      // EC2 instances' tag filters still see their Name tag.
      assert.deepEqual(await ids({ Key: "tag:Name", Values: ["db"] }), ["i-0aaaaaaaaaaaaaaa1"]);

      const out = await c.send(
        new DescribeInstanceInformationCommand({
          Filters: [{ Key: "InstanceIds", Values: [ONPREM_DB] }],
        }),
      );
      const i = out.InstanceInformationList![0];
      assert.equal(i.ResourceType, "ManagedInstance");
      assert.equal(i.SourceType, "AWS::SSM::ManagedInstance");
      assert.equal(i.Name, "onprem-db");
      assert.equal(i.IPAddress, "192.168.1.20");
      assert.equal(i.PlatformName, "Ubuntu");
      assert.match(
        i.ActivationId!,
        /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
      );
      assert.ok(i.RegistrationDate instanceof Date);
      // Real SSM refuses empty filter values.
      await rejectsWith(
        c.send(
          new DescribeInstanceInformationCommand({
            Filters: [{ Key: "tag:Purpose", Values: [""] }],
          }),
        ),
        "ValidationException",
      );
    });
  });
});

Deno.test("findManagedInstances: at most two calls, never one per instance", async () => {
  await withHybrid(async (emu) => {
    const calls = () => emu.seen.filter((s) => s.op.startsWith("AmazonSSM.")).length;
    assert.equal((await findManagedInstances({})).length, 3);
    assert.equal(calls(), 1);
    const byTag = await findManagedInstances({}, { name: "rack7" });
    assert.deepEqual(byTag.map((m) => [m.instanceId, m.name, m.nameTag]), [
      [ONPREM_DB, "onprem-db", "rack7"],
    ]);
    assert.equal(calls(), 3);
    // A wildcard name matches registration names only: one call.
    assert.deepEqual((await findManagedInstances({}, { name: "*-web" })).map((m) => m.name), [
      "onprem-web",
    ]);
    assert.equal(calls(), 4);
    assert.deepEqual(await findManagedInstances({}, { tags: [{ key: "Purpose", value: "" }] }), []);
    assert.equal(calls(), 4);
  });
});

Deno.test("globMatch: * and ? over the whole value, everything else literal", () => {
  assert.ok(globMatch("web*", "web-1"));
  assert.ok(globMatch("w?b", "wxb"));
  assert.ok(globMatch("*", "a\nb"));
  assert.ok(!globMatch("web", "web-1"));
  assert.ok(globMatch("a.b(c)[d]$^+|{}\\", "a.b(c)[d]$^+|{}\\"));
  assert.ok(!globMatch("a.b", "axb"));
});

Deno.test("forward: a Port session to a managed instance works like one to EC2", async () => {
  const emu = await startEmulator({ port: 0, pacing: false, fixtures: parseFixtures(HYBRID_YAML) });
  const dest = startDestination();
  try {
    await withEnv(awsEnv(emu.url), async () => {
      for (const target of [ONPREM_DB, "name:rack7"]) {
        const f = await openForward({
          target,
          remoteHost: "localhost",
          remotePort: dest.port,
          localPort: 0,
          bind: "127.0.0.1",
          log: () => {},
        });
        try {
          assert.equal(f.instanceId, ONPREM_DB);
          const c = await Deno.connect({ hostname: "127.0.0.1", port: f.forwarder.addr.port });
          try {
            await c.write(new TextEncoder().encode("Eping"));
            const buf = new Uint8Array(4);
            let n = 0;
            while (n < 4) {
              const r = await c.read(buf.subarray(n));
              if (r === null) break;
              n += r;
            }
            assert.equal(new TextDecoder().decode(buf), "ping");
          } finally {
            c.close();
          }
        } finally {
          await f.stop();
        }
      }
    });
    const sessions = emu.registry.list();
    assert.deepEqual(sessions.map((s) => [s.target, s.documentName]), [
      [ONPREM_DB, "AWS-StartPortForwardingSession"],
      [ONPREM_DB, "AWS-StartPortForwardingSession"],
    ]);
  } finally {
    await dest.close();
    await emu.close();
  }
});
