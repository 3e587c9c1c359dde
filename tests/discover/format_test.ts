import assert from "node:assert/strict";
import { reasonLines } from "../../src/discover/format.ts";

Deno.test("format: ranges, domains and skips line up on their reasons", () => {
  assert.deepEqual(
    reasonLines([
      { cidr: "10.0.0.0/16", reason: "vpc-0abc (the instance's VPC)" },
      { cidr: "192.168.50.0/24", reason: "via vgw-0d0d (VPN)" },
      { reason: "prefix list pl-0f0f via tgw-0b0b (transit gateway) is not expanded" },
    ]),
    [
      "  10.0.0.0/16      vpc-0abc (the instance's VPC)",
      "  192.168.50.0/24  via vgw-0d0d (VPN)",
      "  -                prefix list pl-0f0f via tgw-0b0b (transit gateway) is not expanded",
    ],
  );
  assert.deepEqual(
    reasonLines([{ domain: "corp.internal", reason: "private hosted zone Z0" }], ""),
    [
      "corp.internal  private hosted zone Z0",
    ],
  );
  assert.deepEqual(reasonLines([]), []);
});
