/**
 * The emulator API driven by the unmodified AWS SDK v3 (and the AWS CLI when installed), so
 * these pass only if the wire protocols are the real ones. SSM, routing, auth and fixtures here;
 * EC2, STS and EKS in tests/aws/emulator_services_test.ts.
 */

import assert from "node:assert/strict";
import {
  AccessDeniedException,
  DescribeInstanceInformationCommand,
  DoesNotExistException,
  InvalidDocument,
  InvalidFilterKey,
  paginateDescribeInstanceInformation,
  ResumeSessionCommand,
  SSMClient,
  StartSessionCommand,
  TargetNotConnected,
  TerminateSessionCommand,
} from "@aws-sdk/client-ssm";
import { createApi } from "../../src/emulator/api/mod.ts";
import { UserError } from "../../src/errors.ts";
import { defaultFixtures, loadFixtures, parseFixtures } from "../../src/emulator/fixtures.ts";
import { SessionRegistry } from "../../src/emulator/sessions.ts";
import {
  rejectsWith,
  sdkEnv,
  withClient,
  withEmulator,
  withEnv,
  WORLD,
} from "../aws/harness_test.ts";

const ssm = <T>(fn: (c: SSMClient) => Promise<T>) => withClient(() => new SSMClient({}), fn);

// ---- SSM ----

Deno.test("ssm StartSession: default document, StreamUrl and token registered", async () => {
  await withEmulator(WORLD, async (emu) => {
    const out = await ssm((c) =>
      c.send(new StartSessionCommand({ Target: "i-0123456789abcdef0" }))
    );
    assert.match(out.SessionId!, /^emu-user-[0-9a-f]+$/);
    assert.equal(
      out.StreamUrl,
      `${emu.url.replace("http", "ws")}/v1/data-channel/${out.SessionId}?role=publish_subscribe`,
    );
    const s = emu.registry.get(out.SessionId!)!;
    assert.equal(s.documentName, "SSM-SessionManagerRunShell");
    assert.equal(s.target, "i-0123456789abcdef0");
    assert.ok(emu.registry.consumeToken(out.SessionId!, out.TokenValue!));
  });
});

Deno.test("ssm StartSession: port forwarding document keeps Parameters and accepts Reason", async () => {
  await withEmulator(WORLD, async (emu) => {
    const out = await ssm((c) =>
      c.send(
        new StartSessionCommand({
          Target: "mi-0123456789abcdef0",
          DocumentName: "AWS-StartPortForwardingSessionToRemoteHost",
          Parameters: { host: ["db.internal"], portNumber: ["5432"], localPortNumber: ["0"] },
          Reason: "debugging",
        }),
      )
    );
    const s = emu.registry.get(out.SessionId!)!;
    assert.equal(s.documentName, "AWS-StartPortForwardingSessionToRemoteHost");
    assert.deepEqual(s.parameters, {
      host: ["db.internal"],
      portNumber: ["5432"],
      localPortNumber: ["0"],
    });
  });
});

Deno.test("ssm StartSession errors: TargetNotConnected, InvalidDocument, AccessDenied", async () => {
  await withEmulator(WORLD, async (emu) => {
    await ssm(async (c) => {
      const start = (Target: string, DocumentName?: string) =>
        c.send(new StartSessionCommand({ Target, DocumentName }));
      const lost = await rejectsWith(start("i-0ccccccccccccccc1"), "TargetNotConnected");
      assert.ok(lost instanceof TargetNotConnected);
      await rejectsWith(start("i-0bbbbbbbbbbbbbbb1"), "TargetNotConnected", /not connected/);
      await rejectsWith(start("i-0000000000000dead"), "TargetNotConnected");
      const doc = await rejectsWith(start("i-0123456789abcdef0", "AWS-Nope"), "InvalidDocument");
      assert.ok(doc instanceof InvalidDocument);
      const denied = await rejectsWith(
        start("i-0eeeeeeeeeeeeeee1"),
        "AccessDeniedException",
        /not authorized to perform: ssm:StartSession on resource: arn:aws:ec2:eu-central-1:210987654321:instance\/i-0eeeeeeeeeeeeeee1/,
      );
      assert.ok(denied instanceof AccessDeniedException);
    });
    assert.equal(emu.registry.list().length, 0);
  });
});

Deno.test("ssm StartSession accepts every session document", async () => {
  await withEmulator(WORLD, async (emu) => {
    const docs = [
      "SSM-SessionManagerRunShell",
      "AWS-StartPortForwardingSession",
      "AWS-StartPortForwardingSessionToRemoteHost",
      "AWS-StartSSHSession",
      "AWS-StartInteractiveCommand",
      "AWS-StartNonInteractiveCommand",
    ];
    await ssm(async (c) => {
      for (const DocumentName of docs) {
        await c.send(new StartSessionCommand({ Target: "i-0123456789abcdef0", DocumentName }));
      }
    });
    assert.deepEqual(emu.registry.list().map((s) => s.documentName), docs);
  });
});

Deno.test("ssm ResumeSession and TerminateSession: new token, empty token once gone", async () => {
  await withEmulator(WORLD, async (emu) => {
    await ssm(async (c) => {
      const { SessionId } = await c.send(
        new StartSessionCommand({ Target: "i-0123456789abcdef0" }),
      );
      const resumed = await c.send(new ResumeSessionCommand({ SessionId }));
      assert.equal(resumed.SessionId, SessionId);
      assert.ok(resumed.TokenValue!.length > 0);
      assert.ok(emu.registry.consumeToken(SessionId!, resumed.TokenValue!));
      const ended = await c.send(new TerminateSessionCommand({ SessionId }));
      assert.equal(ended.SessionId, SessionId);
      assert.equal(emu.registry.get(SessionId!)!.state, "terminated");
      const after = await c.send(new ResumeSessionCommand({ SessionId }));
      assert.equal(after.TokenValue, "");
      const unknown = await rejectsWith(
        c.send(new TerminateSessionCommand({ SessionId: "emu-user-0000" })),
        "DoesNotExistException",
      );
      assert.ok(unknown instanceof DoesNotExistException);
      await rejectsWith(
        c.send(new ResumeSessionCommand({ SessionId: "emu-user-0000" })),
        "DoesNotExistException",
      );
    });
  });
});

Deno.test("ssm DescribeInstanceInformation: fields and both filter styles", async () => {
  await withEmulator(WORLD, async () => {
    await ssm(async (c) => {
      const all = await c.send(new DescribeInstanceInformationCommand({}));
      assert.equal(all.InstanceInformationList!.length, 8);
      const byId = await c.send(
        new DescribeInstanceInformationCommand({
          Filters: [{
            Key: "InstanceIds",
            Values: ["i-0123456789abcdef0", "mi-0123456789abcdef0"],
          }],
        }),
      );
      const [ec2i, mi] = byId.InstanceInformationList!;
      assert.equal(ec2i.InstanceId, "i-0123456789abcdef0");
      assert.equal(ec2i.PingStatus, "Online");
      assert.equal(ec2i.PlatformType, "Linux");
      assert.equal(ec2i.PlatformName, "Amazon Linux");
      assert.equal(ec2i.AgentVersion, "3.3.1142.0");
      assert.equal(ec2i.IPAddress, "10.99.0.10");
      assert.equal(ec2i.ComputerName, "ip-10-99-0-10.ec2.internal");
      assert.equal(ec2i.ResourceType, "EC2Instance");
      assert.ok(ec2i.LastPingDateTime instanceof Date);
      assert.equal(mi.ResourceType, "ManagedInstance");
      const lost = await c.send(
        new DescribeInstanceInformationCommand({
          Filters: [{ Key: "PingStatus", Values: ["ConnectionLost"] }],
        }),
      );
      assert.deepEqual(
        lost.InstanceInformationList!.map((i) => i.InstanceId),
        ["i-0bbbbbbbbbbbbbbb1", "i-0ccccccccccccccc1"],
      );
      const legacy = await c.send(
        new DescribeInstanceInformationCommand({
          InstanceInformationFilterList: [{
            key: "InstanceIds",
            valueSet: ["i-0ddddddddddddddd1"],
          }],
        }),
      );
      assert.equal(legacy.InstanceInformationList![0].PlatformType, "Windows");
      const bad = await rejectsWith(
        c.send(
          new DescribeInstanceInformationCommand({ Filters: [{ Key: "Bogus", Values: ["x"] }] }),
        ),
        "InvalidFilterKey",
      );
      assert.ok(bad instanceof InvalidFilterKey);
    });
  });
});

Deno.test("ssm DescribeInstanceInformation paginates with MaxResults/NextToken", async () => {
  await withEmulator(WORLD, async () => {
    await ssm(async (client) => {
      const ids: string[] = [];
      let pages = 0;
      for await (const page of paginateDescribeInstanceInformation({ client, pageSize: 5 }, {})) {
        pages++;
        ids.push(...page.InstanceInformationList!.map((i) => i.InstanceId!));
      }
      assert.equal(pages, 2);
      assert.equal(new Set(ids).size, 8);
    });
  });
});

// ---- routing, authentication, fixtures ----

Deno.test("unsigned requests get each service's MissingAuthenticationToken error", async () => {
  await withEmulator(WORLD, async (emu) => {
    const call = async (init: RequestInit, path = "/") => {
      const res = await fetch(emu.url + path, init);
      return {
        status: res.status,
        body: await res.text(),
        type: res.headers.get("x-amzn-errortype"),
      };
    };
    const form = { "content-type": "application/x-www-form-urlencoded" };
    const s = await call({
      method: "POST",
      headers: {
        "x-amz-target": "AmazonSSM.StartSession",
        "content-type": "application/x-amz-json-1.1",
      },
      body: "{}",
    });
    assert.equal(s.status, 400);
    assert.equal(JSON.parse(s.body).__type, "MissingAuthenticationTokenException");
    const e = await call({
      method: "POST",
      headers: form,
      body: "Action=DescribeVpcs&Version=2016-11-15",
    });
    assert.match(e.body, /<Code>MissingAuthenticationToken<\/Code>/);
    const t = await call({
      method: "POST",
      headers: form,
      body: "Action=GetCallerIdentity&Version=2011-06-15",
    });
    assert.match(t.body, /<ErrorResponse xmlns="https:\/\/sts.amazonaws.com\/doc\/2011-06-15\/">/);
    assert.match(t.body, /<Code>MissingAuthenticationToken<\/Code>/);
    const k = await call({}, "/clusters");
    assert.equal(k.status, 403);
    assert.equal(k.type, "MissingAuthenticationTokenException");
  });
});

Deno.test("createApi passes on requests that are not AWS API calls", async () => {
  const api = createApi({
    registry: new SessionRegistry(() => "ws://x"),
    fixtures: defaultFixtures(),
  });
  for (
    const path of ["/v1/data-channel/s-1?role=publish_subscribe", "/_emulator/faults", "/healthz"]
  ) {
    assert.equal(await api(new Request(`http://x${path}`)), undefined, path);
  }
  assert.equal(await api(new Request("http://x/", { method: "POST", body: "hi" })), undefined);
  const presigned = await api(
    new Request(
      "http://x/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Credential=AK%2F20250101%2Fus-east-1%2Fsts%2Faws4_request",
    ),
  );
  assert.match(await presigned!.text(), /<Account>123456789012<\/Account>/);
});

Deno.test("fixtures: defaults, and invalid files name the file, line and key", async () => {
  const d = await loadFixtures();
  assert.equal(d.account, "123456789012");
  assert.equal(d.instances[0].id, "i-0123456789abcdef0");
  assert.equal(d.instances[0].name, "bastion");
  assert.deepEqual(d.instances[0].tags, { Purpose: "bastion" });
  assert.equal(d.instances[0].pingStatus, "Online");
  assert.deepEqual(d.vpcs[0], {
    id: "vpc-0a1b2c3d",
    cidr: "10.99.0.0/16",
    tags: { Name: "emulator-vpc" },
  });
  const path = new URL("../fixtures/emulator_invalid.yaml", import.meta.url).pathname;
  await assert.rejects(
    loadFixtures(path),
    new RegExp(
      `^FixtureError: ${path}:6: instances\\[1\\]\\.state: "sleeping" is not one of running, stopped$`,
    ),
  );
  assert.throws(
    () => parseFixtures("vpcs:\n  - id: vpc-0a\n    cidr: 10.0.0.0/8\n    colour: red\n", "f.yaml"),
    /^FixtureError: f\.yaml:4: vpcs\[0\]\.colour: unknown key/,
  );
  assert.throws(
    () => parseFixtures("instances:\n  - name: x\n", "f.yaml"),
    /f\.yaml:2: instances\[0\]\.id: required/,
  );
  assert.throws(() => parseFixtures("account: [1\n", "f.yaml"), /^FixtureError: f\.yaml:\d+: /);
  await assert.rejects(loadFixtures("/nonexistent/world.yaml"), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.match(e.message, /^\/nonexistent\/world\.yaml: cannot read the fixtures file/);
    return true;
  });
  const w = await loadFixtures(WORLD);
  assert.equal(
    w.instances.find((i) => i.id === "i-0bbbbbbbbbbbbbbb1")!.pingStatus,
    "ConnectionLost",
  );
  assert.deepEqual(w.deny[1], { action: "StartInstances", target: "i-0eeeeeeeeeeeeeee1" });
});

const awsCli = await new Deno.Command("aws", {
  args: ["--version"],
  stdout: "null",
  stderr: "null",
})
  .output().then((o) => o.success, () => false);

Deno.test({
  name: "the AWS CLI talks to the emulator too",
  ignore: !awsCli,
  fn: async () => {
    await withEmulator(WORLD, async (emu) => {
      const run = async (...args: string[]) => {
        const out = await new Deno.Command("aws", {
          args: [...args, "--endpoint-url", emu.url, "--output", "json"],
          env: { ...sdkEnv(emu.url), AWS_DEFAULT_REGION: "eu-central-1" },
        }).output();
        assert.ok(out.success, new TextDecoder().decode(out.stderr));
        return JSON.parse(new TextDecoder().decode(out.stdout));
      };
      const info = await run(
        "ssm",
        "describe-instance-information",
        "--filters",
        "Key=PingStatus,Values=Online",
      );
      assert.equal(info.InstanceInformationList.length, 6);
      const inst = await run(
        "ec2",
        "describe-instances",
        "--filters",
        "Name=tag:Name,Values=bastion",
      );
      assert.equal(inst.Reservations[0].Instances[0].PrivateIpAddress, "10.99.0.10");
      const me = await run("sts", "get-caller-identity");
      assert.equal(me.Account, "210987654321");
      // start-session itself needs session-manager-plugin; resume/terminate are plain calls.
      const { SessionId } = emu.registry.start("i-0123456789abcdef0", "AWS-StartSSHSession", {});
      const resumed = await run("ssm", "resume-session", "--session-id", SessionId);
      assert.ok(emu.registry.consumeToken(SessionId, resumed.TokenValue));
      await run("ssm", "terminate-session", "--session-id", SessionId);
      assert.equal(emu.registry.get(SessionId)!.state, "terminated");
    });
  },
});

// Keeps the harness import honest when a test above is filtered out.
Deno.test("harness restores the environment", async () => {
  Deno.env.set("AWS_REGION", "ap-south-1");
  try {
    await withEnv(sdkEnv("http://127.0.0.1:1"), () => Promise.resolve());
    assert.equal(Deno.env.get("AWS_REGION"), "ap-south-1");
    assert.equal(Deno.env.get("AWS_ENDPOINT_URL"), undefined);
  } finally {
    Deno.env.delete("AWS_REGION");
  }
});
