import assert from "node:assert/strict";
import { ExitCode, UserError } from "../../src/errors.ts";
import {
  describeInstanceInformation,
  resumeSession,
  startSession,
  terminateSession,
} from "../../src/aws/ssm.ts";
import { startInstance } from "../../src/aws/ec2.ts";
import { withEmulator, WORLD } from "./harness_test.ts";

async function userError(p: Promise<unknown>): Promise<UserError> {
  const e = await p.then(() => undefined, (e) => e);
  assert.ok(e instanceof UserError, `expected a UserError, got ${e}`);
  assert.ok(!e.message.includes("\n"), "one line");
  return e;
}

Deno.test("ssm: start, resume, terminate, then resume says the session is gone", async () => {
  await withEmulator(WORLD, async (emu) => {
    const grant = await startSession({}, {
      target: "i-0123456789abcdef0",
      documentName: "AWS-StartPortForwardingSession",
      parameters: { portNumber: ["7000"], localPortNumber: ["0"] },
      reason: "ssm-proxy",
    });
    assert.match(grant.sessionId, /^emu-user-/);
    assert.match(grant.streamUrl, /^ws:\/\/127\.0\.0\.1:\d+\/v1\/data-channel\/emu-user-/);
    assert.ok(grant.tokenValue.length > 0);
    const s = emu.registry.get(grant.sessionId)!;
    assert.equal(s.documentName, "AWS-StartPortForwardingSession");
    assert.deepEqual(s.parameters, { portNumber: ["7000"], localPortNumber: ["0"] });

    const resumed = await resumeSession({}, grant.sessionId);
    assert.equal(resumed.streamUrl, grant.streamUrl);
    assert.notEqual(resumed.tokenValue, grant.tokenValue);
    await terminateSession({}, grant.sessionId);
    assert.equal(emu.registry.get(grant.sessionId)!.state, "terminated");
    assert.equal((await resumeSession({}, grant.sessionId)).tokenValue, "");
    // Every call was signed for the configured region and the right service.
    assert.ok(emu.seen.every((r) => r.scope === "eu-central-1/ssm"));
  });
});

Deno.test("ssm: describeInstanceInformation returns what SSM knows of the given ids", async () => {
  await withEmulator(WORLD, async () => {
    const info = await describeInstanceInformation({}, [
      "i-0123456789abcdef0",
      "i-0ccccccccccccccc1",
      "i-0000000000000dead",
    ]);
    assert.deepEqual(info.map((i) => [i.instanceId, i.pingStatus]), [
      ["i-0123456789abcdef0", "Online"],
      ["i-0ccccccccccccccc1", "ConnectionLost"],
    ]);
    assert.equal(info[0].platformType, "Linux");
    assert.equal(info[0].ipAddress, "10.99.0.10");
    assert.equal(info[0].agentVersion, "3.3.1142.0");
    assert.deepEqual(await describeInstanceInformation({}, []), []);
  });
});

Deno.test("ssm: AccessDenied on StartSession is one Auth line naming the permission", async () => {
  await withEmulator(WORLD, async () => {
    const e = await userError(startSession({ profile: undefined }, {
      target: "i-0eeeeeeeeeeeeeee1",
      documentName: "AWS-StartPortForwardingSession",
      parameters: {},
    }));
    assert.equal(e.exitCode, ExitCode.Auth);
    assert.equal(
      e.message,
      "access denied: arn:aws:iam::210987654321:user/jane may not call ssm:StartSession on " +
        "arn:aws:ec2:eu-central-1:210987654321:instance/i-0eeeeeeeeeeeeeee1; " +
        'the IAM policy needs to allow "ssm:StartSession"',
    );
  });
});

Deno.test("ssm: TargetNotConnected and unknown sessions become UserErrors", async () => {
  await withEmulator(WORLD, async () => {
    const lost = await userError(startSession({}, {
      target: "i-0ccccccccccccccc1",
      documentName: "AWS-StartPortForwardingSession",
      parameters: {},
    }));
    assert.equal(lost.exitCode, ExitCode.Target);
    assert.match(lost.message, /^i-0ccccccccccccccc1 is not connected to Systems Manager/);
    const gone = await userError(terminateSession({}, "emu-user-0000"));
    assert.match(gone.message, /^ssm:TerminateSession failed: DoesNotExistException/);
    const doc = await userError(startSession({}, {
      target: "i-0123456789abcdef0",
      documentName: "AWS-Bogus",
      parameters: {},
    }));
    assert.match(doc.message, /^ssm:StartSession failed: InvalidDocument: .*AWS-Bogus/);
  });
});

Deno.test("ec2: startInstance moves a stopped instance to pending", async () => {
  await withEmulator(WORLD, async (emu) => {
    assert.deepEqual(await startInstance({}, "i-0bbbbbbbbbbbbbbb1"), {
      previous: "stopped",
      current: "pending",
    });
    emu.advance(emu.fixtures.startDelayMs);
    const [info] = await describeInstanceInformation({}, ["i-0bbbbbbbbbbbbbbb1"]);
    assert.equal(info.pingStatus, "Online");
    const missing = await userError(startInstance({}, "i-0000000000000dead"));
    assert.equal(missing.exitCode, ExitCode.Target);
    assert.match(missing.message, /^instance i-0000000000000dead does not exist/);
  });
});
