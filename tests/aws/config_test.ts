import assert from "node:assert/strict";
import { ExitCode, UserError } from "../../src/errors.ts";
import { clientConfig, explicitRegion } from "../../src/aws/config.ts";
import { describeInstanceInformation } from "../../src/aws/ssm.ts";
import { describeInstances } from "../../src/aws/ec2.ts";
import { withEmulator, WORLD } from "./harness_test.ts";

const BASTION = "i-0123456789abcdef0";

async function userError(p: Promise<unknown>): Promise<UserError> {
  const e = await p.then(() => undefined, (e) => e);
  assert.ok(e instanceof UserError, `expected a UserError, got ${e}`);
  assert.ok(!e.message.includes("\n"), "one line");
  return e;
}

Deno.test("region precedence: flag, AWS_REGION, AWS_DEFAULT_REGION, then the SDK", () => {
  const env = { AWS_REGION: "eu-west-1", AWS_DEFAULT_REGION: "us-east-2" };
  assert.equal(explicitRegion({ region: "ap-south-1" }, env), "ap-south-1");
  assert.equal(explicitRegion({}, env), "eu-west-1");
  assert.equal(explicitRegion({}, { AWS_DEFAULT_REGION: "us-east-2" }), "us-east-2");
  assert.equal(explicitRegion({}, {}), undefined);
  assert.deepEqual(clientConfig({ profile: "lab" }, {}), { profile: "lab" });
  // No endpoint: the SDK's own AWS_ENDPOINT_URL* handling must stay in charge.
  assert.deepEqual(clientConfig({ region: "eu-west-1" }, { AWS_ENDPOINT_URL: "http://x" }), {
    region: "eu-west-1",
  });
});

/** A scratch ~/.aws with one profile; removed afterwards. */
async function withProfileFiles<T>(fn: (files: Record<string, string>) => Promise<T>) {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/config`, "[profile lab]\nregion = ap-southeast-2\n");
    await Deno.writeTextFile(
      `${dir}/credentials`,
      "[lab]\naws_access_key_id = AKIALABPROFILE000001\naws_secret_access_key = lab-secret\n",
    );
    return await fn({
      AWS_CONFIG_FILE: `${dir}/config`,
      AWS_SHARED_CREDENTIALS_FILE: `${dir}/credentials`,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("region and credentials come from the profile when nothing else names them", async () => {
  await withProfileFiles(async (files) => {
    await withEmulator(WORLD, async (emu) => {
      await describeInstanceInformation({ profile: "lab" }, [BASTION]);
      await describeInstanceInformation({ profile: "lab", region: "us-west-2" }, [BASTION]);
      Deno.env.set("AWS_DEFAULT_REGION", "ca-central-1");
      await describeInstanceInformation({ profile: "lab" }, [BASTION]);
      assert.deepEqual(emu.seen.map((r) => r.scope), [
        "ap-southeast-2/ssm",
        "us-west-2/ssm",
        "ca-central-1/ssm",
      ]);
    }, { ...files, AWS_REGION: "", AWS_ACCESS_KEY_ID: "", AWS_SECRET_ACCESS_KEY: "" });
  });
});

Deno.test("a missing region is a UserError that says how to give one", async () => {
  await withEmulator(WORLD, async (emu) => {
    const e = await userError(describeInstanceInformation({}, [BASTION]));
    assert.equal(e.message, "no AWS region given: pass --region or set AWS_REGION");
    const p = await userError(describeInstanceInformation({ profile: "ghost" }, [BASTION]));
    assert.match(
      p.message,
      /profile ghost has no region either\): pass --region or set AWS_REGION/,
    );
    assert.equal(emu.seen.length, 0);
  }, { AWS_REGION: "" });
});

Deno.test("AWS_ENDPOINT_URL_SSM overrides the endpoint for SSM only", async () => {
  await withEmulator(WORLD, async (emu) => {
    const [info] = await describeInstanceInformation({}, [BASTION]);
    assert.equal(info.pingStatus, "Online");
    assert.equal(emu.seen.length, 1);
    const e = await userError(describeInstances({}, []));
    assert.match(
      e.message,
      /^could not reach the EC2 endpoint http:\/\/127\.0\.0\.1:1 for ec2:DescribeInstances: .*ECONNREFUSED/,
    );
    assert.equal(emu.seen.length, 1, "EC2 did not go to the SSM override");
  }, { AWS_ENDPOINT_URL: "http://127.0.0.1:1", AWS_ENDPOINT_URL_SSM: "__EMULATOR__" });
});

Deno.test("missing credentials say to log in with the profile", async () => {
  await withEmulator(WORLD, async (emu) => {
    const e = await userError(
      describeInstanceInformation({ profile: "ghost", region: "eu-west-1" }, [BASTION]),
    );
    assert.equal(e.exitCode, ExitCode.Auth);
    assert.match(
      e.message,
      /^no valid AWS credentials were found \(ssm:DescribeInstanceInformation: .*\): run "aws sso login --profile ghost"/,
    );
    const anon = await userError(describeInstanceInformation({}, [BASTION]));
    assert.match(anon.message, /set AWS_PROFILE or AWS_ACCESS_KEY_ID\/AWS_SECRET_ACCESS_KEY$/);
    assert.equal(emu.seen.length, 0);
  }, { AWS_ACCESS_KEY_ID: "", AWS_SECRET_ACCESS_KEY: "" });
});

Deno.test("the SDK is imported lazily: no static import path from src/aws to @aws-sdk", async () => {
  for (const entry of ["config.ts", "errors.ts", "call.ts", "ssm.ts", "ec2.ts", "targets.ts"]) {
    const url = new URL(`../../src/aws/${entry}`, import.meta.url);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", url.pathname],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const graph = JSON.parse(new TextDecoder().decode(out.stdout));
    const statics = new Map<string, string[]>();
    for (const m of graph.modules) {
      statics.set(
        m.specifier,
        (m.dependencies ?? []).filter((d: { isDynamic?: boolean; code?: unknown }) =>
          !d.isDynamic && d.code
        ).map((d: { code: { specifier: string } }) => d.code.specifier),
      );
    }
    const seen = new Set<string>();
    const stack = [graph.roots[0]];
    while (stack.length) {
      const s = stack.pop()!;
      if (seen.has(s)) continue;
      seen.add(s);
      assert.ok(!/@aws-sdk|client-ec2/.test(s), `${entry} statically loads ${s}`);
      assert.ok(!s.endsWith("/src/aws/ec2.ts") || entry === "ec2.ts", `${entry} loads ec2.ts`);
      stack.push(...(statics.get(s) ?? []));
    }
  }
});
