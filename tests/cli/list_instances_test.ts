import assert from "node:assert/strict";
import { ExitCode, UserError } from "../../src/errors.ts";
import { filtersFor, listInstances, parseTagFilter } from "../../src/aws/instances.ts";
import { formatTable, runListInstances } from "../../src/cli/list_instances.ts";
import { withEmulator, WORLD } from "../aws/harness_test.ts";
import {
  EC2_DB,
  HOSTILE_KEY,
  HOSTILE_NAME,
  HOSTILE_VALUE,
  NAMELESS,
  ONPREM_DB,
  ONPREM_WEB,
  withHybrid,
} from "../aws/hybrid_world.ts";

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
    // Seven EC2 instances, and the managed (SSM-only) mi- instance "onprem".
    assert.deepEqual(rows.map((r) => r.name), [
      "bastion",
      "forbidden",
      "lost",
      "onprem",
      "sleepy",
      "web",
      "web",
      "windows",
    ]);
    const bastion = rows[0];
    assert.deepEqual(bastion, {
      instanceId: "i-0123456789abcdef0",
      kind: "ec2",
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
    kind: "ec2",
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

// ---- hybrid-activation managed instances (mi-…) ----

Deno.test("list-instances: managed instances are listed alongside EC2 ones", async () => {
  await withHybrid(async (emu) => {
    const rows = await listInstances({});
    assert.deepEqual(rows.map((r) => [r.instanceId, r.kind, r.name]), [
      ["i-0123456789abcdef0", "ec2", "bastion"],
      [EC2_DB, "ec2", "db"],
      [ONPREM_DB, "managed", "onprem-db"],
      [ONPREM_WEB, "managed", "onprem-web"],
      [NAMELESS, "managed", null],
    ]);
    assert.deepEqual(rows.find((r) => r.instanceId === ONPREM_DB), {
      instanceId: ONPREM_DB,
      kind: "managed",
      name: "onprem-db",
      state: "managed",
      ssm: "Online",
      platform: "Ubuntu",
      privateIp: "192.168.1.20",
      vpcId: null,
      ssmAgentVersion: "3.3.1142.0",
      agentVersion: null,
    });
    const web = rows.find((r) => r.instanceId === ONPREM_WEB)!;
    assert.equal(web.ssm, "ConnectionLost");
    assert.equal(web.platform, "Microsoft Windows Server 2019 Datacenter");
    // Managed instances come from SSM alone: no per-instance tag calls, nothing asked of EC2.
    assert.ok(!emu.seen.some((s) => /ListTagsForResource/.test(s.op)));
    assert.equal(emu.seen.filter((s) => s.op === "Action=DescribeInstances").length, 1);
  });
});

Deno.test("list-instances: table and JSON show what a managed instance is", async () => {
  await withHybrid(async () => {
    const table = await capture(() => runListInstances({ tag: ["Purpose=db"] }));
    const lines = table.out.split("\n");
    assert.equal(lines.length, 3, table.out);
    assert.match(
      lines[1],
      /^i-0aaaaaaaaaaaaaaa1 +db +running +Online +Amazon Linux +10\.99\.0\.20 +vpc-/,
    );
    assert.match(
      lines[2],
      /^mi-0123456789abcdef0 +onprem-db +managed +Online +Ubuntu +192\.168\.1\.20 +- +-$/,
    );
    const json = JSON.parse((await capture(() => runListInstances({ json: true }))).out);
    assert.deepEqual(
      json.map((r: { instanceId: string; kind: string }) => [r.instanceId, r.kind]),
      [
        ["i-0123456789abcdef0", "ec2"],
        [EC2_DB, "ec2"],
        [ONPREM_DB, "managed"],
        [ONPREM_WEB, "managed"],
        [NAMELESS, "managed"],
      ],
    );
    assert.equal(json[2].vpcId, null);
    assert.equal(json[2].state, "managed");
  });
});

Deno.test("list-instances: --tag and --name apply to managed instances", async () => {
  await withHybrid(async () => {
    const ids = async (o: { tag?: string[]; name?: string }) =>
      (await listInstances(o)).map((r) => r.instanceId);
    // Tags: SSM's tag filters, for managed instances; all must match.
    assert.deepEqual(await ids({ tag: ["Purpose=db"] }), [EC2_DB, ONPREM_DB]);
    assert.deepEqual(await ids({ tag: ["Purpose=web"] }), [ONPREM_WEB]);
    assert.deepEqual(await ids({ tag: ["Purpose=db", "Name=rack7"] }), [ONPREM_DB]);
    assert.deepEqual(await ids({ tag: ["Team=infra"] }), ["i-0123456789abcdef0"]);
    // Name: the registration name, with wildcards...
    assert.deepEqual(await ids({ name: "onprem-*" }), [ONPREM_DB, ONPREM_WEB]);
    assert.deepEqual(await ids({ name: "onprem-d?" }), [ONPREM_DB]);
    assert.deepEqual(await ids({ name: "onprem-web", tag: ["Purpose=db"] }), []);
    // ...or the Name tag, exactly.
    assert.deepEqual(await ids({ name: "rack7" }), [ONPREM_DB]);
    assert.deepEqual(await ids({ name: "rack7", tag: ["Name=rack7"] }), [ONPREM_DB]);
    assert.deepEqual(await ids({ name: "rack7", tag: ["Name=other"] }), []);
    assert.deepEqual(await ids({ name: "rack*" }), []);
    // An empty tag value cannot be an SSM filter value: it matches no managed instance.
    assert.deepEqual(await ids({ tag: ["Purpose="] }), []);
  });
});

Deno.test("list-instances: hostile names and tags are plain parameters", async () => {
  await withHybrid(async () => {
    const rows = await listInstances({ name: HOSTILE_NAME });
    assert.deepEqual(rows.map((r) => [r.instanceId, r.name]), [[NAMELESS, HOSTILE_NAME]]);
    assert.deepEqual(
      (await listInstances({ tag: [`${HOSTILE_KEY}=${HOSTILE_VALUE}`] })).map((r) => r.instanceId),
      [NAMELESS],
    );
    for (const name of ["$(id)", "*;rm -rf /", "a\nb", "\u0000", "'\"`"]) {
      await listInstances({ name, tag: [`${name}=${name}`] });
    }
    // A table cell never breaks the line, whatever the name holds.
    const t = await capture(() => runListInstances({ name: HOSTILE_NAME }));
    assert.equal(t.out.split("\n").length, 2);
    assert.ok(!(await Deno.stat("/tmp/ssm-proxy-pwned").then(() => true, () => false)));
  });
});
