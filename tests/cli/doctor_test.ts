/**
 * `ssm-proxy doctor` against the emulator: a healthy account, and broken ones (denials, an
 * offline instance, nothing on the agent port). The agent is a TCP server on 127.0.0.1 that
 * speaks the tunnel protocol's WELCOME: the emulated SSM agent dials localhost:<port>.
 */
import assert from "node:assert/strict";
import { ExitCode, UserError } from "../../src/errors.ts";
import { type Check, doctor, formatCheck, runDoctor } from "../../src/cli/doctor.ts";
import { localChecks, type LocalProbe } from "../../src/cli/doctor_local.ts";
import { startEmulator } from "../../src/emulator/server.ts";
import { parseFixtures } from "../../src/emulator/fixtures.ts";
import { encodeWelcome, FrameReader, FrameType } from "../../src/tunnel/wire.ts";
import { sdkEnv, withEnv, WORLD } from "../aws/harness_test.ts";

/** A fake ssm-proxy-agent: answers the first HELLO with a WELCOME. */
function fakeAgent() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const hellos: unknown[] = [];
  const conns = new Set<Deno.Conn>();
  const loop = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      (async () => {
        const reader = new FrameReader();
        const buf = new Uint8Array(4096);
        while (true) {
          const n = await conn.read(buf).catch(() => null);
          if (n === null) break;
          for (const f of reader.push(buf.slice(0, n))) {
            if (f.type !== FrameType.Hello) continue;
            hellos.push(f.hello);
            await conn.write(encodeWelcome({
              version: 1,
              address: "100.64.0.2",
              peer: "100.64.0.1",
              mtu: 1400,
              resolver: "10.99.0.2",
              policy: { allow: ["0.0.0.0/0"], deny: [] },
              agent: "ssm-proxy-agent 9.8.7",
            }));
          }
        }
      })().catch(() => {}).finally(() => {
        conns.delete(conn);
        try {
          conn.close();
        } catch { /* closed */ }
      });
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    hellos,
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await loop;
    },
  };
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function withWorld<T>(
  yaml: string | undefined,
  fn: (env: { url: string }) => Promise<T>,
): Promise<T> {
  const emu = await startEmulator({
    port: 0,
    pacing: false,
    ...(yaml === undefined ? { fixturesPath: WORLD } : { fixtures: parseFixtures(yaml) }),
  });
  try {
    return await withEnv(sdkEnv(emu.url), () => fn(emu));
  } finally {
    await emu.close();
  }
}

async function run(o: Parameters<typeof doctor>[0]): Promise<Check[]> {
  return await doctor({ local: false, ...o }, () => {});
}

const byName = (cs: Check[], name: string) => {
  const c = cs.find((c) => c.name === name);
  assert.ok(c, `no check named ${name} in ${cs.map((c) => c.name).join(", ")}`);
  return c;
};

Deno.test("doctor: a healthy account, instance and agent are all ✓", async () => {
  const agent = fakeAgent();
  try {
    await withWorld(undefined, async () => {
      const lines: string[] = [];
      const out = console.log;
      console.log = (l: string) => void lines.push(l);
      try {
        await runDoctor({
          target: "name:bastion",
          agentPort: agent.port,
          cidr: ["10.213.0.0/16"],
          local: false,
        });
      } finally {
        console.log = out;
      }
      assert.deepEqual(lines.map((l) => l.split(":")[0]), [
        "✓ region",
        "✓ credentials",
        "✓ ssm",
        "✓ ec2",
        "✓ instance",
        "✓ discovery",
        "✓ ssm",
        `✓ ssm-proxy-agent on port ${agent.port}`,
        "✓ --cidr 10.213.0.0/16",
        "all 9 checks passed",
      ]);
      assert.match(lines[1], /arn:aws:iam::210987654321:user\/jane \(account 210987654321\)/);
      assert.equal(lines[2], "✓ ssm:DescribeInstanceInformation: allowed");
      assert.equal(lines[3], "✓ ec2:DescribeInstances: allowed");
      assert.match(
        lines[4],
        /^✓ instance: i-0123456789abcdef0 \(bastion\): running, SSM Online, amazon-ssm-agent 3\.3\.1142\.0, Amazon Linux$/,
      );
      assert.equal(
        lines[5],
        "✓ discovery: routes 10.99.0.0/16, 10.100.0.0/16, 10.8.0.0/16, 172.20.0.0/16; " +
          "DNS corp.internal, lab.internal, shared.example, eu-central-1.compute.internal",
      );
      assert.match(lines[6], /^✓ ssm:StartSession: allowed on i-0123456789abcdef0 \(bastion\)/);
      assert.match(
        lines[7],
        /: ssm-proxy-agent 9\.8\.7, protocol 1, mtu 1400, VPC resolver 10\.99\.0\.2; identity: agent does not check identities$/,
      );
      assert.equal(agent.hellos.length, 1);
    });
  } finally {
    await agent.close();
  }
});

Deno.test("doctor: a discovery source refused is a ✗ naming the action", async () => {
  const world = (await Deno.readTextFile(WORLD)).replace(
    /^deny:.*$/m,
    "deny:\n  - action: ec2:DescribeRouteTables",
  );
  await withWorld(world, async () => {
    const cs = await run({ target: "name:bastion", agentPort: 1 });
    const d = byName(cs, "discovery");
    assert.equal(d.ok, false);
    assert.match(d.detail, /^routes 10\.99\.0\.0\/16, 10\.100\.0\.0\/16; DNS /);
    assert.match(d.detail, /ec2:DescribeRouteTables denied: /);
    assert.match(formatCheck(d), /\(fix: grant the actions named/);
  });
});

Deno.test("doctor: StartSession denied is reported as AWS words it, and the agent is not tried", async () => {
  await withWorld(undefined, async () => {
    const cs = await run({ target: "name:forbidden", agentPort: freePort() });
    const s = byName(cs, "ssm:StartSession");
    assert.equal(s.ok, false);
    assert.match(
      s.detail,
      /^access denied: arn:aws:iam::210987654321:user\/jane may not call ssm:StartSession on arn:aws:ec2:[\w-]+:210987654321:instance\/i-0eeeeeeeeeeeeeee1/,
    );
    assert.match(formatCheck(s), /^✗ ssm:StartSession: .*\(fix: allow "ssm:StartSession" on i-/);
    const a = cs.at(-1)!;
    assert.equal(a.ok, false);
    assert.match(a.detail, /not tried/);
    assert.ok(byName(cs, "instance").ok);
  });
});

Deno.test("doctor: an offline and a stopped instance", async () => {
  await withWorld(undefined, async () => {
    const lost = byName(await run({ target: "name:lost" }), "instance");
    assert.equal(lost.ok, false);
    assert.match(lost.detail, /i-0ccccccccccccccc1 \(lost\): running, SSM ConnectionLost/);
    assert.match(lost.fix!, /AmazonSSMManagedInstanceCore/);
    const cs = await run({ target: "name:sleepy" });
    const sleepy = byName(cs, "instance");
    assert.equal(sleepy.ok, false);
    assert.match(sleepy.detail, /stopped, SSM ConnectionLost/);
    assert.match(sleepy.fix!, /start-instances --instance-ids i-0bbbbbbbbbbbbbbb1/);
    assert.match(byName(cs, "ssm:StartSession").detail, /not connected to Systems Manager/);
    const none = byName(await run({ target: "name:nosuch" }), "instance");
    assert.match(none.detail, /^name:nosuch: no instance matches name:nosuch/);
  });
});

Deno.test("doctor: nothing listening on the agent port", async () => {
  await withWorld(undefined, async () => {
    const port = freePort();
    const cs = await run({ target: "i-0123456789abcdef0", agentPort: port });
    const a = byName(cs, `ssm-proxy-agent on port ${port}`);
    assert.equal(a.ok, false);
    assert.match(a.detail, new RegExp(`nothing listens on port ${port} of the instance`));
    assert.ok(byName(cs, "ssm:StartSession").ok);
  });
});

Deno.test("doctor: denied describe calls each fail with the action named", async () => {
  const yaml = `
instances:
  - { id: i-0123456789abcdef0, name: bastion }
deny:
  - action: ssm:DescribeInstanceInformation
  - action: ec2:DescribeInstances
`;
  await withWorld(yaml, async () => {
    const cs = await run({});
    assert.deepEqual(cs.map((c) => [c.name, c.ok]), [
      ["region", true],
      ["credentials", true],
      ["ssm:DescribeInstanceInformation", false],
      ["ec2:DescribeInstances", false],
    ]);
    assert.match(cs[2].detail, /may not call ssm:DescribeInstanceInformation;/);
    assert.match(cs[3].detail, /may not call ec2:DescribeInstances;/);
    const out = console.log;
    console.log = () => {};
    const e = await runDoctor({ local: false }).then(() => undefined, (e) => e)
      .finally(() => console.log = out);
    assert.ok(e instanceof UserError);
    assert.equal(e.exitCode, ExitCode.Failure);
    assert.equal(
      e.message,
      "2 of 4 checks failed: ssm:DescribeInstanceInformation, ec2:DescribeInstances",
    );
  });
});

Deno.test("doctor: denied GetCallerIdentity stops the AWS checks; no region is a ✗", async () => {
  await withWorld("deny:\n  - action: sts:GetCallerIdentity\n", async () => {
    const cs = await run({});
    assert.deepEqual(cs.map((c) => [c.name, c.ok]), [["region", true], ["credentials", false]]);
    assert.match(cs[1].detail, /may not call sts:GetCallerIdentity/);
  });
  await withWorld(undefined, async () => {
    Deno.env.delete("AWS_REGION");
    const cs = await run({});
    assert.deepEqual(cs.map((c) => [c.name, c.ok]), [["region", false]]);
    assert.equal(cs[0].fix, "pass --region or set AWS_REGION");
  });
});

Deno.test("doctor: a CIDR that would capture the AWS endpoint is a route conflict", async () => {
  await withWorld(undefined, async () => {
    // The emulator, standing in for every AWS endpoint, is at 127.0.0.1.
    const cs = await run({ cidr: ["127.0.0.0/8", "10.213.0.0/16", "300.1.0.0/16"] });
    const [lo, ok, bad] = cs.slice(-3);
    assert.equal(lo.ok, false);
    assert.match(
      lo.detail,
      /127\.0\.0\.0\/8 contains 127\.0\.0\.1, the address of the AWS endpoint/,
    );
    assert.ok(!lo.detail.includes("--force to do it anyway"));
    assert.equal(ok.ok, true);
    assert.equal(bad.ok, false);
  });
});

function probe(
  over: Partial<LocalProbe> & { paths?: string[]; files?: Record<string, string> },
): LocalProbe {
  const paths = new Set(over.paths ?? []);
  return {
    os: "linux",
    uid: 0,
    exists: (p) => paths.has(p),
    canCreateIn: () => false,
    readText: (p) => over.files?.[p],
    ...over,
  };
}

Deno.test("doctor: local checks on Linux and macOS", () => {
  const good = localChecks(probe({
    paths: ["/dev/net/tun", "/run/systemd/resolve", "/run/dbus/system_bus_socket"],
  }));
  assert.deepEqual(good.map((c) => [c.name, c.ok]), [
    ["privileges", true],
    ["tun device", true],
    ["DNS", true],
  ]);
  assert.match(good[2].detail, /systemd-resolved is running/);
  const bad = localChecks(probe({ uid: 1000, paths: [] }));
  assert.deepEqual(bad.map((c) => c.ok), [false, false, true]);
  assert.match(formatCheck(bad[0]), /^✗ privileges: not root \(uid 1000\).*\(fix: run start/);
  assert.match(bad[1].fix!, /modprobe tun/);

  const mac = localChecks(probe({ os: "darwin", uid: 501, paths: ["/dev", "/etc/resolver"] }));
  assert.deepEqual(mac.map((c) => [c.name, c.ok]), [
    ["privileges", false],
    ["tun device", true],
    ["DNS", false],
  ]);
  assert.match(mac[2].detail, /\/etc\/resolver is not writable/);
  const macRoot = localChecks(probe({ os: "darwin", uid: 0, paths: ["/dev"] }));
  assert.ok(macRoot.every((c) => c.ok), JSON.stringify(macRoot));
  assert.match(macRoot[2].detail, /will be created by start/);
  assert.equal(localChecks(probe({ os: "windows", uid: null }))[0].ok, false);
});

Deno.test("doctor: which way DNS goes on Linux without systemd-resolved", () => {
  const dns = (files: Record<string, string>, paths: string[] = []) =>
    localChecks(probe({ paths, files })).find((c) => c.name === "DNS")!;
  // Only the bus, no resolved: the forwarder, with the nameservers it will forward to.
  const fwd = dns({
    "/etc/resolv.conf": "search corp.example\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n",
  }, ["/run/dbus/system_bus_socket"]);
  assert.equal(fwd.ok, true);
  assert.equal(
    fwd.detail,
    "no systemd-resolved: --dns-domain points /etc/resolv.conf at a forwarder on 127.0.0.153 " +
      "(restored on stop) that sends other names to 10.0.0.2, 10.0.0.3",
  );
  assert.match(dns({}).detail, /other names to 127\.0\.0\.1 \(\/etc\/resolv\.conf names none\)$/);
  // Already ours: another tunnel holds it.
  const held = dns({ "/etc/resolv.conf": "# Written by ssm-proxy (pid 77) for split DNS\n" });
  assert.equal(held.ok, false);
  assert.match(held.detail, /written by ssm-proxy \(pid 77\)/);
  assert.match(held.fix!, /stop that tunnel first/);
});
