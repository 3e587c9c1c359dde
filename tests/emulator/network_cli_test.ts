/**
 * The AWS CLI (v1, botocore's own parsers) against the emulator's network and parameter APIs:
 * a second, independent client for the same wire formats the SDK tests cover.
 */

import assert from "node:assert/strict";
import { sdkEnv, withEmulator, WORLD } from "../aws/harness_test.ts";

const awsCli = await new Deno.Command("aws", {
  args: ["--version"],
  stdout: "null",
  stderr: "null",
}).output().then((o) => o.success, () => false);

/** botocore's JSON output, read field by field in the assertions. */
// deno-lint-ignore no-explicit-any
type Json = any;
type Run = (...args: string[]) => Promise<Json>;

function cli(url: string): { run: Run; fails: (...args: string[]) => Promise<string> } {
  const exec = (args: string[]) =>
    new Deno.Command("aws", {
      args: [...args, "--endpoint-url", url, "--output", "json"],
      env: { ...sdkEnv(url), AWS_DEFAULT_REGION: "eu-central-1" },
    }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return {
    run: async (...args) => {
      const out = await exec(args);
      assert.ok(out.success, text(out.stderr));
      return JSON.parse(text(out.stdout));
    },
    fails: async (...args) => {
      const out = await exec(args);
      assert.ok(!out.success, `expected ${args.join(" ")} to fail`);
      return text(out.stderr);
    },
  };
}

Deno.test({
  name: "aws ec2 describe-route-tables and describe-dhcp-options",
  ignore: !awsCli,
  fn: async () => {
    await withEmulator(WORLD, async (emu) => {
      const { run, fails } = cli(emu.url);
      const tables = await run(
        "ec2",
        "describe-route-tables",
        "--filters",
        "Name=association.subnet-id,Values=subnet-0a1b2c3d",
      );
      const [t] = tables.RouteTables;
      assert.equal(t.RouteTableId, "rtb-0a1b2c3d");
      const routes = t.Routes as Json[];
      assert.deepEqual(routes[0], {
        DestinationCidrBlock: "10.99.0.0/16",
        GatewayId: "local",
        Origin: "CreateRouteTable",
        State: "active",
      });
      assert.equal(
        routes.find((r) => r.DestinationPrefixListId === "pl-0123456789abcdef0").TransitGatewayId,
        "tgw-0123456789abcdef0",
      );
      assert.equal(routes.find((r) => r.State === "blackhole").GatewayId, "vgw-0123456789abcdef0");
      assert.deepEqual(
        t.Associations.map((a: Json) => [a.Main, a.SubnetId ?? null]),
        [[true, null], [false, "subnet-0a1b2c3d"]],
      );
      const dhcp = await run("ec2", "describe-dhcp-options", "--dhcp-options-ids", "dopt-0c0c0c0c");
      assert.deepEqual(dhcp.DhcpOptions[0].DhcpConfigurations, [
        { Key: "domain-name", Values: [{ Value: "corp.example" }] },
        { Key: "domain-name-servers", Values: [{ Value: "AmazonProvidedDNS" }] },
      ]);
      emu.fixtures.deny.push({ action: "DescribeRouteTables" });
      assert.match(await fails("ec2", "describe-route-tables"), /\(UnauthorizedOperation\)/);
    });
  },
});

Deno.test({
  name: "aws route53 list-hosted-zones-by-vpc",
  ignore: !awsCli,
  fn: async () => {
    await withEmulator(WORLD, async (emu) => {
      const { run, fails } = cli(emu.url);
      const args = ["route53", "list-hosted-zones-by-vpc", "--vpc-region", "eu-central-1"];
      const out = await run(...args, "--vpc-id", "vpc-0e5e5e5e");
      assert.deepEqual(out.HostedZoneSummaries, [{
        HostedZoneId: "Z0123456789ABCDEFGHIJ",
        Name: "corp.internal.",
        Owner: { OwningAccount: "210987654321" },
      }]);
      const page = await run(...args, "--vpc-id", "vpc-0a1b2c3d", "--max-items", "2");
      assert.equal(page.HostedZoneSummaries.length, 2);
      const rest = await run(
        ...args,
        "--vpc-id",
        "vpc-0a1b2c3d",
        "--next-token",
        page.NextToken,
      );
      assert.equal(rest.HostedZoneSummaries[0].Owner.OwningAccount, "111122223333");
      assert.match(await fails(...args, "--vpc-id", "vpc-0dead"), /\(InvalidVPCId\)/);
      emu.fixtures.deny.push({ action: "ListHostedZonesByVPC" });
      assert.match(await fails(...args, "--vpc-id", "vpc-0a1b2c3d"), /\(AccessDenied\)/);
    });
  },
});

Deno.test({
  name: "aws ssm put-parameter and get-parameters-by-path",
  ignore: !awsCli,
  fn: async () => {
    await withEmulator(WORLD, async (emu) => {
      const { run, fails } = cli(emu.url);
      const put = await run(
        "ssm",
        "put-parameter",
        "--name",
        "/ssm-proxy/tunnels/cli",
        "--value",
        '{"target":"i-0123456789abcdef0"}',
        "--type",
        "String",
      );
      assert.deepEqual(put, { Version: 1, Tier: "Standard" });
      assert.match(
        await fails(
          "ssm",
          "put-parameter",
          "--name",
          "/ssm-proxy/tunnels/cli",
          "--value",
          "x",
          "--type",
          "String",
        ),
        /\(ParameterAlreadyExists\)/,
      );
      const listed = await run(
        "ssm",
        "get-parameters-by-path",
        "--path",
        "/ssm-proxy",
        "--recursive",
        "--with-decryption",
        "--page-size",
        "2",
      );
      const params = listed.Parameters as Json[];
      assert.deepEqual(params.map((p) => p.Name), [
        "/ssm-proxy/token",
        "/ssm-proxy/tunnels/cli",
        "/ssm-proxy/tunnels/prod",
        "/ssm-proxy/tunnels/staging",
      ]);
      assert.equal(params[0].Value, "s3cr3t");
      assert.equal(params[1].Version, 1);
      // CLI v1 prints timestamps as the wire had them: epoch seconds.
      assert.equal(typeof params[1].LastModifiedDate, "number");
      assert.ok(Math.abs(params[1].LastModifiedDate - Date.now() / 1000) < 60);
      assert.equal(emu.fixtures.parameters.length, 4);
      assert.match(
        await fails("ssm", "get-parameter", "--name", "/nope"),
        /\(ParameterNotFound\)/,
      );
      emu.fixtures.deny.push({ action: "GetParametersByPath" });
      assert.match(
        await fails("ssm", "get-parameters-by-path", "--path", "/"),
        /\(AccessDeniedException\)/,
      );
    });
  },
});
