import assert from "node:assert/strict";
import { defaultRouteInterface, firstNameserver } from "../../agent/sysinfo.ts";

const ROUTE = `Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
ens5\t0000000A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
ens6\t00000000\t0101000A\t0003\t0\t0\t200\t00000000\t0\t0\t0
ens5\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0
`;

Deno.test("sysinfo: default route interface, lowest metric", () => {
  assert.deepEqual(defaultRouteInterface(ROUTE), "ens5");
  assert.deepEqual(defaultRouteInterface(ROUTE.split("\n").slice(0, 2).join("\n")), undefined);
  assert.deepEqual(defaultRouteInterface(""), undefined);
});

Deno.test("sysinfo: first IPv4 nameserver", () => {
  assert.deepEqual(
    firstNameserver(
      "# gen\nsearch ec2.internal\nnameserver fd00::2\nnameserver 10.0.0.2\nnameserver 1.1.1.1\n",
    ),
    "10.0.0.2",
  );
  assert.deepEqual(firstNameserver("search x\n"), undefined);
});
