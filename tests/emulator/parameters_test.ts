/**
 * SSM Parameter Store in the emulator, driven by the unmodified SDK: reads, path listing and
 * paging, writes with versions into the live world, and the errors the SDK names.
 */

import assert from "node:assert/strict";
import {
  DeleteParameterCommand,
  GetParameterCommand,
  GetParametersByPathCommand,
  paginateGetParametersByPath,
  ParameterAlreadyExists,
  ParameterNotFound,
  PutParameterCommand,
  SSMClient,
} from "@aws-sdk/client-ssm";
import { parseFixtures } from "../../src/emulator/fixtures.ts";
import { rejectsWith, withClient, withEmulator, WORLD } from "../aws/harness_test.ts";

const ssm = <T>(fn: (c: SSMClient) => Promise<T>) => withClient(() => new SSMClient({}), fn);

Deno.test("ssm GetParameter: fields, SecureString only decrypted on request, selector", async () => {
  await withEmulator(WORLD, async () => {
    await ssm(async (c) => {
      const { Parameter } = await c.send(
        new GetParameterCommand({ Name: "/ssm-proxy/tunnels/prod" }),
      );
      assert.equal(Parameter!.Name, "/ssm-proxy/tunnels/prod");
      assert.equal(Parameter!.Type, "String");
      assert.equal(Parameter!.Value, '{"target":"name:bastion"}');
      assert.equal(Parameter!.Version, 1);
      assert.equal(Parameter!.DataType, "text");
      assert.equal(
        Parameter!.ARN,
        "arn:aws:ssm:eu-central-1:210987654321:parameter/ssm-proxy/tunnels/prod",
      );
      assert.ok(Parameter!.LastModifiedDate instanceof Date);
      assert.ok(Math.abs(Parameter!.LastModifiedDate.getTime() - Date.now()) < 60_000);

      const hidden = await c.send(new GetParameterCommand({ Name: "/ssm-proxy/token" }));
      assert.equal(hidden.Parameter!.Type, "SecureString");
      assert.notEqual(hidden.Parameter!.Value, "s3cr3t");
      assert.ok(!hidden.Parameter!.Value!.includes("s3cr3t"));
      const shown = await c.send(
        new GetParameterCommand({ Name: "/ssm-proxy/token", WithDecryption: true }),
      );
      assert.equal(shown.Parameter!.Value, "s3cr3t");

      const v1 = await c.send(new GetParameterCommand({ Name: "/ssm-proxy/tunnels/prod:1" }));
      assert.equal(v1.Parameter!.Selector, ":1");
      await rejectsWith(
        c.send(new GetParameterCommand({ Name: "/ssm-proxy/tunnels/prod:7" })),
        "ParameterVersionNotFound",
      );
      const missing = await rejectsWith(
        c.send(new GetParameterCommand({ Name: "/ssm-proxy/nope" })),
        "ParameterNotFound",
      );
      assert.ok(missing instanceof ParameterNotFound);
    });
  });
});

Deno.test("ssm GetParametersByPath: recursion, MaxResults 1..10, NextToken pages", async () => {
  await withEmulator(WORLD, async (emu) => {
    await ssm(async (client) => {
      const names = async (Path: string, Recursive?: boolean) =>
        (await client.send(new GetParametersByPathCommand({ Path, Recursive }))).Parameters!.map(
          (p) => p.Name,
        );
      assert.deepEqual(await names("/ssm-proxy"), ["/ssm-proxy/token"]);
      assert.deepEqual(await names("/ssm-proxy/", true), [
        "/ssm-proxy/token",
        "/ssm-proxy/tunnels/prod",
        "/ssm-proxy/tunnels/staging",
      ]);
      assert.deepEqual(await names("/ssm-proxy/tunnels"), [
        "/ssm-proxy/tunnels/prod",
        "/ssm-proxy/tunnels/staging",
      ]);
      assert.deepEqual(await names("/ssm-proxy/tun", true), []);
      const secure = await client.send(
        new GetParametersByPathCommand({ Path: "/ssm-proxy", WithDecryption: true }),
      );
      assert.equal(secure.Parameters![0].Value, "s3cr3t");
      const typed = await client.send(
        new GetParametersByPathCommand({
          Path: "/",
          Recursive: true,
          ParameterFilters: [{ Key: "Type", Values: ["SecureString"] }],
        }),
      );
      assert.deepEqual(typed.Parameters!.map((p) => p.Name), ["/ssm-proxy/token"]);

      for (let i = 0; i < 12; i++) {
        emu.fixtures.parameters.push({
          name: `/ssm-proxy/tunnels/t${String(i).padStart(2, "0")}`,
          value: `{"target":"i-${i}"}`,
          type: "String",
          version: 1,
          tier: "Standard",
          lastModified: 0,
        });
      }
      const pages: number[] = [];
      const all: string[] = [];
      for await (
        const page of paginateGetParametersByPath({ client, pageSize: 5 }, {
          Path: "/ssm-proxy/tunnels",
        })
      ) {
        pages.push(page.Parameters!.length);
        all.push(...page.Parameters!.map((p) => p.Name!));
      }
      assert.deepEqual(pages, [5, 5, 4]);
      assert.equal(new Set(all).size, 14);
      const capped = await client.send(
        new GetParametersByPathCommand({ Path: "/", Recursive: true }),
      );
      assert.equal(capped.Parameters!.length, 10);
      assert.ok(capped.NextToken);
      await rejectsWith(
        client.send(new GetParametersByPathCommand({ Path: "/", MaxResults: 11 })),
        "ValidationException",
        /maxResults.*less than or equal to 10/,
      );
      await rejectsWith(
        client.send(new GetParametersByPathCommand({ Path: "/", MaxResults: 0 })),
        "ValidationException",
      );
      await rejectsWith(
        client.send(new GetParametersByPathCommand({ Path: "ssm-proxy" })),
        "ValidationException",
      );
      await rejectsWith(
        client.send(new GetParametersByPathCommand({ Path: "/", NextToken: "junk" })),
        "InvalidNextToken",
      );
    });
  });
});

Deno.test("ssm PutParameter: create, AlreadyExists, Overwrite bumps the version, limits", async () => {
  await withEmulator(WORLD, async (emu) => {
    await ssm(async (c) => {
      const Name = "/ssm-proxy/tunnels/dev";
      const made = await c.send(
        new PutParameterCommand({ Name, Value: "one", Type: "String", Description: "dev" }),
      );
      assert.deepEqual([made.Version, made.Tier], [1, "Standard"]);
      const again = await rejectsWith(
        c.send(new PutParameterCommand({ Name, Value: "two", Type: "String" })),
        "ParameterAlreadyExists",
      );
      assert.ok(again instanceof ParameterAlreadyExists);
      emu.advance(5000);
      const over = await c.send(new PutParameterCommand({ Name, Value: "two", Overwrite: true }));
      assert.equal(over.Version, 2);
      const { Parameter } = await c.send(new GetParameterCommand({ Name }));
      assert.deepEqual([Parameter!.Value, Parameter!.Type, Parameter!.Version], [
        "two",
        "String",
        2,
      ]);
      // The live world holds it: every later request (and the rest of the emulator) sees it.
      const stored = emu.fixtures.parameters.find((p) => p.name === Name)!;
      assert.equal(stored.description, "dev");
      assert.equal(Parameter!.LastModifiedDate!.getTime(), stored.lastModified);

      const list = await c.send(
        new PutParameterCommand({ Name: "hosts", Value: "a,b", Type: "StringList" }),
      );
      assert.equal(list.Version, 1);
      const listed = await c.send(new GetParametersByPathCommand({ Path: "/" }));
      assert.ok(listed.Parameters!.some((p) => p.Name === "hosts" && p.Type === "StringList"));
      assert.equal(
        (await c.send(new GetParameterCommand({ Name: "hosts" }))).Parameter!.ARN,
        "arn:aws:ssm:eu-central-1:210987654321:parameter/hosts",
      );

      await rejectsWith(
        c.send(
          new PutParameterCommand({ Name: "/x/big", Value: "v".repeat(4097), Type: "String" }),
        ),
        "ValidationException",
        /Standard tier parameters support a maximum parameter value of 4096 characters/,
      );
      const big = await c.send(
        new PutParameterCommand({
          Name: "/x/big",
          Value: "v".repeat(4097),
          Type: "String",
          Tier: "Advanced",
        }),
      );
      assert.equal(big.Tier, "Advanced");
      await c.send(
        new PutParameterCommand({ Name: "/x/max", Value: "v".repeat(4096), Type: "String" }),
      );
      await rejectsWith(
        c.send(new PutParameterCommand({ Name: "/x/untyped", Value: "v" })),
        "ValidationException",
        /type is required/,
      );
      await rejectsWith(
        c.send(new PutParameterCommand({ Name: "/x/bad", Value: "v", Type: "Blob" as "String" })),
        "ValidationException",
        /enum value set/,
      );
      await rejectsWith(
        c.send(new PutParameterCommand({ Name: "no/slash", Value: "v", Type: "String" })),
        "ValidationException",
        /fully qualified|sub-paths/,
      );
      await rejectsWith(
        c.send(new PutParameterCommand({ Name: "awsThing", Value: "v", Type: "String" })),
        "ValidationException",
      );
      await rejectsWith(
        c.send(
          new PutParameterCommand({
            Name: Name,
            Value: "s",
            Type: "SecureString",
            Overwrite: true,
          }),
        ),
        "HierarchyTypeMismatchException",
      );
    });
  });
});

Deno.test("ssm DeleteParameter: gone for later reads; ParameterNotFound the second time", async () => {
  await withEmulator(WORLD, async (emu) => {
    await ssm(async (c) => {
      const Name = "/ssm-proxy/tunnels/staging";
      await c.send(new DeleteParameterCommand({ Name }));
      assert.ok(!emu.fixtures.parameters.some((p) => p.name === Name));
      await rejectsWith(c.send(new GetParameterCommand({ Name })), "ParameterNotFound");
      await rejectsWith(c.send(new DeleteParameterCommand({ Name })), "ParameterNotFound");
      // Re-created, it starts again at version 1.
      const made = await c.send(new PutParameterCommand({ Name, Value: "x", Type: "String" }));
      assert.equal(made.Version, 1);
    });
  });
});

Deno.test("ssm parameters: deny entries give AccessDeniedException naming the parameter ARN", async () => {
  await withEmulator(WORLD, async (emu) => {
    emu.fixtures.deny.push(
      { action: "GetParameter", target: "/ssm-proxy/token" },
      { action: "GetParametersByPath" },
      { action: "PutParameter" },
      { action: "DeleteParameter", target: "/ssm-proxy/tunnels/prod" },
    );
    await ssm(async (c) => {
      await c.send(new GetParameterCommand({ Name: "/ssm-proxy/tunnels/prod" }));
      await rejectsWith(
        c.send(new GetParameterCommand({ Name: "/ssm-proxy/token" })),
        "AccessDeniedException",
        /user\/jane is not authorized to perform: ssm:GetParameter on resource: arn:aws:ssm:eu-central-1:210987654321:parameter\/ssm-proxy\/token because/,
      );
      await rejectsWith(
        c.send(new GetParametersByPathCommand({ Path: "/ssm-proxy/tunnels" })),
        "AccessDeniedException",
        /ssm:GetParametersByPath on resource: arn:aws:ssm:eu-central-1:210987654321:parameter\/ssm-proxy\/tunnels /,
      );
      await rejectsWith(
        c.send(new PutParameterCommand({ Name: "/a", Value: "v", Type: "String" })),
        "AccessDeniedException",
        /ssm:PutParameter/,
      );
      await rejectsWith(
        c.send(new DeleteParameterCommand({ Name: "/ssm-proxy/tunnels/prod" })),
        "AccessDeniedException",
        /ssm:DeleteParameter/,
      );
    });
    assert.equal(emu.fixtures.parameters.length, 3);
  });
});

Deno.test("fixtures: parameters are validated like PutParameter validates them", () => {
  const bad = (yaml: string, re: RegExp) => assert.throws(() => parseFixtures(yaml, "p.yaml"), re);
  bad(
    "parameters:\n  - { name: a/b, value: x }\n",
    /^FixtureError: p\.yaml:2: parameters\[0\]\.name: Parameter name: can't be prefixed/,
  );
  bad(
    "parameters:\n  - { name: /a, value: x, type: Blob }\n",
    /parameters\[0\]\.type: "Blob" is not one of/,
  );
  bad("parameters:\n  - { name: /a }\n", /p\.yaml:2: parameters\[0\]\.value: required/);
  bad(
    "parameters:\n  - { name: /a, value: x }\n  - { name: /a, value: y }\n",
    /parameters\[1\]: \/a is declared twice/,
  );
  const f = parseFixtures("parameters:\n  - { name: /a, value: x }\n");
  assert.deepEqual(
    [f.parameters[0].type, f.parameters[0].version, f.parameters[0].tier],
    ["String", 1, "Standard"],
  );
});
