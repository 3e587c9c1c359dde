/**
 * Route 53's ListHostedZonesByVPC in REST-XML, driven by the unmodified SDK: the private zones
 * the fixtures associate with a VPC, paging, and Route 53's own error shape.
 */

import assert from "node:assert/strict";
import {
  InvalidInput,
  InvalidVPCId,
  ListHostedZonesByVPCCommand,
  type ListHostedZonesByVPCCommandInput,
  Route53Client,
} from "@aws-sdk/client-route-53";
import { rejectsWith, withClient, withEmulator, WORLD } from "../aws/harness_test.ts";

const r53 = <T>(fn: (c: Route53Client) => Promise<T>) =>
  withClient(() => new Route53Client({}), fn);

const list = (c: Route53Client, input: Partial<ListHostedZonesByVPCCommandInput>) =>
  c.send(
    new ListHostedZonesByVPCCommand({ VPCId: "vpc-0a1b2c3d", VPCRegion: "eu-central-1", ...input }),
  );

Deno.test("route53 ListHostedZonesByVPC: the VPC's private zones, with owners", async () => {
  await withEmulator(WORLD, async (emu) => {
    await r53(async (c) => {
      const lab = await list(c, {});
      assert.deepEqual(lab.HostedZoneSummaries, [
        {
          HostedZoneId: "Z0123456789ABCDEFGHIJ",
          Name: "corp.internal.",
          Owner: { OwningAccount: "210987654321" },
        },
        {
          HostedZoneId: "Z0LAB00000000000000001",
          Name: "lab.internal.",
          Owner: { OwningAccount: "210987654321" },
        },
        {
          HostedZoneId: "Z0SHARED000000000000001",
          Name: "shared.example.",
          Owner: { OwningAccount: "111122223333" },
        },
      ]);
      assert.equal(lab.MaxItems, 100);
      assert.equal(lab.NextToken, undefined);
      // The zone shared by two VPCs shows up for the other one too.
      const corp = await list(c, { VPCId: "vpc-0e5e5e5e" });
      assert.deepEqual(corp.HostedZoneSummaries!.map((z) => z.Name), ["corp.internal."]);
    });
    // Signed for route53 (with a custom endpoint the SDK uses the client's region).
    const r53Scopes = emu.seen.filter((r) => r.path.startsWith("/2013-04-01/"));
    assert.equal(r53Scopes.length, 2);
    assert.ok(r53Scopes.every((r) => r.scope === "eu-central-1/route53"));
  });
});

Deno.test("route53 ListHostedZonesByVPC pages with MaxItems/NextToken", async () => {
  await withEmulator(WORLD, async () => {
    await r53(async (c) => {
      const first = await list(c, { MaxItems: 2 });
      assert.equal(first.HostedZoneSummaries!.length, 2);
      assert.equal(first.MaxItems, 2);
      assert.ok(first.NextToken);
      const second = await list(c, { MaxItems: 2, NextToken: first.NextToken });
      assert.deepEqual(second.HostedZoneSummaries!.map((z) => z.HostedZoneId), [
        "Z0SHARED000000000000001",
      ]);
      assert.equal(second.NextToken, undefined);
      await rejectsWith(list(c, { NextToken: "not-a-token" }), "InvalidPaginationToken");
    });
  });
});

Deno.test("route53 errors: InvalidVPCId, InvalidInput, AccessDenied 403, unsigned", async () => {
  await withEmulator(WORLD, async (emu) => {
    await r53(async (c) => {
      const bad = await rejectsWith(list(c, { VPCId: "vpc-0dead" }), "InvalidVPCId");
      assert.ok(bad instanceof InvalidVPCId);
      const region = await rejectsWith(
        list(c, { VPCRegion: "Nowhere" as "eu-central-1" }),
        "InvalidInput",
        /vPCRegion/,
      );
      assert.ok(region instanceof InvalidInput);
      await rejectsWith(list(c, { MaxItems: 0 }), "InvalidInput", /MaxItems/);

      emu.fixtures.deny.push({ action: "ListHostedZonesByVPC", target: "vpc-0e5e5e5e" });
      await list(c, {});
      const denied = await rejectsWith(
        list(c, { VPCId: "vpc-0e5e5e5e" }),
        "AccessDenied",
        /user\/jane is not authorized to perform: route53:ListHostedZonesByVPC/,
      );
      assert.equal(
        (denied as Error & { $metadata: { httpStatusCode?: number } }).$metadata.httpStatusCode,
        403,
      );
    });
    const raw = await fetch(
      `${emu.url}/2013-04-01/hostedzonesbyvpc?vpcid=vpc-0a1b2c3d&vpcregion=eu-central-1`,
    );
    assert.equal(raw.status, 403);
    const body = await raw.text();
    assert.match(
      body,
      /^<\?xml version="1\.0" encoding="UTF-8"\?>\n<ErrorResponse xmlns="https:\/\/route53\.amazonaws\.com\/doc\/2013-04-01\/"><Error><Type>Sender<\/Type><Code>MissingAuthenticationToken<\/Code><Message>[^<]+<\/Message><\/Error><RequestId>[0-9a-f-]+<\/RequestId><\/ErrorResponse>$/,
    );
  });
});
