import assert from "node:assert/strict";
import { ExitCode, UserError } from "../../src/errors.ts";
import {
  filtersFor,
  formatTable,
  listInstances,
  parseTagFilter,
  runListInstances,
} from "../../src/cli/list_instances.ts";
import { withEmulator, WORLD } from "../aws/harness_test.ts";

async function capture(fn: () => Promise<void>): Promise<{ out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = console.log;
  const error = console.error;
  console.log = (...a: unknown[]) => void out.push(a.join(" "));
  console.error = (...a: unknown[]) => void err.push(a.join(" "));
  try {
    await fn();
  } finally {
    console.log = log;
    console.error = error;
  }
  return { out: out.join("\n"), err: err.join("\n") };
}

Deno.test("list-instances: tag and name filters", () => {
  assert.deepEqual(parseTagFilter("Purpose=bastion"), {
    name: "tag:Purpose",
    values: ["bastion"],
  });
  assert.deepEqual(parseTagFilter("k=a=b"), { name: "tag:k", values: ["a=b"] });
  for (const bad of ["Purpose", "=x"]) {
    assert.throws(() => parseTagFilter(bad), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.equal(e.exitCode, ExitCode.Usage);
      assert.match(e.message, /give Key=Value/);
      return true;
    });
  }
  assert.deepEqual(filtersFor({ tag: ["Team=infra"], name: "bastion" }).map((f) => f.name), [
    "tag:Team",
    "tag:Name",
    "instance-state-name",
  ]);
});

Deno.test("list-instances: EC2 and SSM joined, sorted by name", async () => {
  await withEmulator(WORLD, async () => {
    const rows = await listInstances({});
    // mi- instances are SSM-only; EC2 lists the seven i- instances.
    assert.deepEqual(rows.map((r) => r.name), [
      "bastion",
      "forbidden",
      "lost",
      "sleepy",
      "web",
      "web",
      "windows",
    ]);
    const bastion = rows[0];
    assert.deepEqual(bastion, {
      instanceId: "i-0123456789abcdef0",
      name: "bastion",
      state: "running",
      ssm: "Online",
      platform: "Amazon Linux",
      privateIp: "10.99.0.10",
      vpcId: "vpc-0a1b2c3d",
      ssmAgentVersion: "3.3.1142.0",
      agentVersion: null,
    });
    const sleepy = rows.find((r) => r.name === "sleepy")!;
    assert.equal(sleepy.state, "stopped");
    assert.equal(sleepy.ssm, "ConnectionLost");
    assert.equal(rows.find((r) => r.name === "lost")!.ssm, "ConnectionLost");
    assert.equal(
      rows.find((r) => r.name === "windows")!.platform,
      "Microsoft Windows Server 2022 Datacenter",
    );
  });
});

Deno.test("list-instances: --tag and --name narrow the list", async () => {
  await withEmulator(WORLD, async () => {
    assert.deepEqual(
      (await listInstances({ tag: ["Purpose=web"] })).map((r) => r.instanceId),
      ["i-0aaaaaaaaaaaaaaa1", "i-0aaaaaaaaaaaaaaa2"],
    );
    assert.deepEqual(
      (await listInstances({ name: "bas*", tag: ["Team=infra"] })).map((r) => r.instanceId),
      ["i-0123456789abcdef0"],
    );
    assert.deepEqual(await listInstances({ name: "nosuch" }), []);
  });
});

Deno.test("list-instances: aligned table and JSON output", async () => {
  await withEmulator(WORLD, async () => {
    const table = await capture(() => runListInstances({ tag: ["Purpose=web"] }));
    const lines = table.out.split("\n");
    assert.equal(lines.length, 3);
    assert.match(lines[0], /^INSTANCE\s+NAME\s+STATE\s+SSM\s+PLATFORM\s+PRIVATE IP\s+VPC\s+AGENT$/);
    assert.equal(
      lines[1],
      "i-0aaaaaaaaaaaaaaa1  web   running  Online  Amazon Linux  10.99.1.11  vpc-0a1b2c3d  -",
    );
    // Every column starts at the same offset on every line.
    for (const h of ["NAME", "STATE", "SSM", "VPC", "AGENT"]) {
      const at = lines[0].indexOf(h);
      assert.ok(lines.slice(1).every((l) => l[at - 1] === " " && l[at] !== " "), h);
    }

    const json = await capture(() => runListInstances({ name: "bastion", json: true }));
    const parsed = JSON.parse(json.out);
    assert.equal(parsed.length, 1);
    assert.equal(parsed[0].instanceId, "i-0123456789abcdef0");
    assert.equal(parsed[0].agentVersion, null);

    const none = await capture(() => runListInstances({ name: "nosuch" }));
    assert.equal(none.out, "");
    assert.equal(none.err, "ssm-proxy: no instances match Name=nosuch");
    assert.equal((await capture(() => runListInstances({ name: "x", json: true }))).out, "[]");
  });
});

Deno.test("list-instances: denied DescribeInstances is one clear line", async () => {
  const f = await Deno.makeTempFile({ suffix: ".yaml" });
  await Deno.writeTextFile(f, "deny:\n  - action: ec2:DescribeInstances\n");
  try {
    await withEmulator(f, async () => {
      const e = await listInstances({}).then(() => undefined, (e) => e);
      assert.ok(e instanceof UserError);
      assert.equal(e.exitCode, ExitCode.Auth);
      assert.match(e.message, /may not call ec2:DescribeInstances/);
    });
  } finally {
    await Deno.remove(f);
  }
});

Deno.test("list-instances: formatTable shows '-' for unknown values", () => {
  const t = formatTable([{
    instanceId: "i-1",
    name: null,
    state: "stopped",
    ssm: "unmanaged",
    platform: null,
    privateIp: null,
    vpcId: null,
    ssmAgentVersion: null,
    agentVersion: null,
  }]);
  assert.equal(
    t.split("\n")[1],
    "i-1       -     stopped  unmanaged  -         -           -    -",
  );
});
