import assert from "node:assert/strict";
import { ExitCode, UserError } from "../../src/errors.ts";
import { type CallContext, toUserError } from "../../src/aws/errors.ts";
import { withEnv } from "./harness_test.ts";

/** An error shaped like the SDK's: a named Error, with `$metadata` when AWS answered. */
function sdkError(name: string, message: string, fields: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(message), { name, ...fields });
}
const service = (name: string, message: string) =>
  sdkError(name, message, { $metadata: { httpStatusCode: 400 } });

const START: CallContext = {
  service: "ssm",
  action: "ssm:StartSession",
  region: "eu-west-1",
  subject: "i-0123456789abcdef0",
};

function mapped(err: unknown, ctx: CallContext = START): UserError {
  const u = toUserError(err, ctx);
  assert.ok(u instanceof UserError, `not mapped: ${err}`);
  assert.ok(!u.message.includes("\n"), "one line");
  return u;
}

Deno.test("access denied names the action, the resource and the permission to add", () => {
  const u = mapped(
    service(
      "AccessDeniedException",
      "User: arn:aws:sts::1:assumed-role/dev/jane is not authorized to perform: ssm:StartSession " +
        "on resource: arn:aws:ssm:eu-west-1::document/AWS-StartPortForwardingSession because no " +
        "identity-based policy allows the ssm:StartSession action",
    ),
    { ...START, profile: "dev" },
  );
  assert.equal(u.exitCode, ExitCode.Auth);
  assert.equal(
    u.message,
    "access denied: arn:aws:sts::1:assumed-role/dev/jane may not call ssm:StartSession on " +
      "arn:aws:ssm:eu-west-1::document/AWS-StartPortForwardingSession; the IAM policy needs to " +
      'allow "ssm:StartSession" (profile dev)',
  );
  const bare = mapped(service("AccessDenied", "Access denied"));
  assert.equal(
    bare.message,
    'access denied: your AWS identity may not call ssm:StartSession; the IAM policy needs to allow "ssm:StartSession"',
  );
  const ec2 = mapped(
    service("UnauthorizedOperation", "You are not authorized to perform this operation."),
    { service: "ec2", action: "ec2:DescribeInstances" },
  );
  assert.match(ec2.message, /may not call ec2:DescribeInstances/);
});

Deno.test("expired or missing credentials say how to log in", () => {
  for (const name of ["ExpiredTokenException", "ExpiredToken", "RequestExpired"]) {
    const u = mapped(service(name, "The security token included in the request is expired"), {
      ...START,
      profile: "dev",
    });
    assert.equal(u.exitCode, ExitCode.Auth);
    assert.match(u.message, /^AWS credentials have expired .*run "aws sso login --profile dev"/);
  }
  const sso = mapped(
    sdkError(
      "TokenProviderError",
      "The SSO session associated with this profile has expired or is otherwise invalid.",
    ),
    { ...START, profile: "sso" },
  );
  assert.match(sso.message, /^AWS credentials have expired.*aws sso login --profile sso/);
  const none = mapped(
    sdkError("CredentialsProviderError", "Could not load credentials from any providers"),
  );
  assert.match(
    none.message,
    /^no valid AWS credentials were found .*set AWS_PROFILE or AWS_ACCESS_KEY_ID\/AWS_SECRET_ACCESS_KEY$/,
  );
  const badKey = mapped(service("UnrecognizedClientException", "The security token is invalid"));
  assert.equal(badKey.exitCode, ExitCode.Auth);
});

Deno.test("TargetNotConnected and unknown instances are Target errors", () => {
  const u = mapped(service("TargetNotConnected", "i-0123456789abcdef0 is not connected."));
  assert.equal(u.exitCode, ExitCode.Target);
  assert.match(u.message, /^i-0123456789abcdef0 is not connected to Systems Manager/);
  const nf = mapped(
    service("InvalidInstanceID.NotFound", "The instance ID 'i-1' does not exist"),
    { service: "ec2", action: "ec2:StartInstances", subject: "i-1", region: "eu-west-1" },
  );
  assert.equal(nf.exitCode, ExitCode.Target);
  assert.match(nf.message, /^instance i-1 does not exist in region eu-west-1/);
});

Deno.test("network failures name the endpoint that could not be reached", async () => {
  await withEnv({}, () => {
    const refused = mapped(
      sdkError("Error", "connect ECONNREFUSED 10.0.0.1:443", { code: "ECONNREFUSED" }),
    );
    assert.equal(
      refused.message,
      "could not reach the SSM endpoint https://ssm.eu-west-1.amazonaws.com for ssm:StartSession: connect ECONNREFUSED 10.0.0.1:443",
    );
    return Promise.resolve();
  });
  await withEnv({ AWS_ENDPOINT_URL: "http://a", AWS_ENDPOINT_URL_EKS: "http://eks.local" }, () => {
    const dns = mapped(
      sdkError("Error", "getaddrinfo ENOTFOUND eks.local", { code: "ENOTFOUND" }),
      { service: "eks", action: "eks:DescribeCluster" },
    );
    assert.match(dns.message, /^could not reach the EKS endpoint http:\/\/eks\.local /);
    const timeout = mapped(sdkError("TimeoutError", "socket timed out"), {
      service: "sts",
      action: "sts:GetCallerIdentity",
    });
    assert.match(timeout.message, /^could not reach the STS endpoint http:\/\/a /);
    return Promise.resolve();
  });
});

Deno.test("other service errors become a line; bugs pass through untouched", () => {
  const throttled = mapped(service("ThrottlingException", "Rate exceeded"));
  assert.equal(throttled.message, "ssm:StartSession failed: ThrottlingException: Rate exceeded");
  assert.equal(throttled.exitCode, ExitCode.Failure);
  const region = mapped(sdkError("Error", "Region is missing"));
  assert.match(region.message, /pass --region or set AWS_REGION/);
  const bug = new TypeError("x is undefined");
  assert.equal(toUserError(bug, START), bug);
  const already = new UserError("kept", ExitCode.Usage);
  assert.equal(toUserError(already, START), already);
  assert.equal(toUserError("a string", START), "a string");
});
