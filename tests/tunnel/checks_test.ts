import assert from "node:assert/strict";
import {
  checkOtherTunnels,
  checkRouteConflicts,
  conflictChecker,
  endpointAddresses,
  localNetworks,
  parseCidrs,
} from "../../src/tunnel/checks.ts";
import { routeTable as table } from "../support/route_table.ts";

const laptop = table([
  ["192.168.1.", { interface: "en0" }],
  ["default", { interface: "en0", gateway: "192.168.1.1", source: "192.168.1.23" }],
]);

Deno.test("checks: parseCidrs refuses duplicates and overlaps; 0.0.0.0/0 (a full tunnel) holds all", () => {
  assert.throws(() => parseCidrs([]), /at least one --cidr/);
  assert.deepEqual(parseCidrs(["10.0.0.0/16", "0.0.0.0/0"]).map((c) => c.text), [
    "10.0.0.0/16",
    "0.0.0.0/0",
  ]);
  assert.throws(() => parseCidrs(["10.0.0.0/16", "10.0.5.0/24"]), /overlaps --cidr 10.0.0.0\/16/);
  assert.deepEqual(parseCidrs(["10.0.0.0/16", "172.16.0.0/12"]).map((c) => c.text), [
    "10.0.0.0/16",
    "172.16.0.0/12",
  ]);
});

Deno.test("checks: a CIDR holding the gateway, the LAN or an AWS endpoint is refused", async () => {
  await assert.rejects(
    checkRouteConflicts(parseCidrs(["192.168.0.0/16"]), laptop, []),
    /default gateway 192.168.1.1/,
  );
  const lan = table([
    ["10.20.", { interface: "eth1" }],
    ["default", { interface: "en0", gateway: "192.168.1.1", source: "192.168.1.23" }],
  ]);
  await assert.rejects(
    checkRouteConflicts(parseCidrs(["10.20.0.0/16"]), lan, []),
    /directly attached to eth1/,
  );
  await assert.rejects(
    checkRouteConflicts(parseCidrs(["52.94.0.0/16"]), laptop, [{
      what: "ssm.us-east-1.amazonaws.com",
      address: "52.94.1.1",
    }]),
    /route its own traffic into itself/,
  );
  await checkRouteConflicts(parseCidrs(["10.0.0.0/16"]), laptop, [{
    what: "x",
    address: "52.94.1.1",
  }]);
});

Deno.test("checks: ranges of other running tunnels are refused with the way out", () => {
  assert.throws(
    () =>
      checkOtherTunnels(parseCidrs(["10.0.0.0/16"]), [{ name: "prod", cidrs: ["10.0.128.0/17"] }]),
    /running tunnel "prod": stop it first \(ssm-proxy stop prod\)/,
  );
  checkOtherTunnels(parseCidrs(["10.1.0.0/16"]), [{ name: "prod", cidrs: ["10.0.0.0/16"] }]);
});

Deno.test("checks: endpoint addresses from numeric URLs need no DNS", async () => {
  assert.deepEqual(
    await endpointAddresses(["ws://10.97.0.2:4566/v1/data-channel/x", "not a url"]),
    [
      { what: "the AWS endpoint 10.97.0.2", address: "10.97.0.2" },
    ],
  );
});

Deno.test("checks: a LAN inside a wide range is found among the interfaces, not only by lookup", async () => {
  const lans = localNetworks([
    { name: "lo", family: "IPv4", cidr: "127.0.0.1/8" },
    { name: "ssmp0", family: "IPv4", cidr: "100.64.0.2/32" },
    { name: "utun3", family: "IPv4", cidr: "10.9.0.2/32" },
    { name: "en0", family: "IPv6", cidr: "fe80::1/64" },
    { name: "en0", family: "IPv4", cidr: "10.1.2.23/24" },
  ]);
  assert.deepEqual(lans.map((l) => `${l.ifname} ${l.net.text}`), ["en0 10.1.2.0/24"]);
  // The routing table answers for 10.0.0.0 with a gateway: the lookup alone would not see it.
  const wide = table([
    ["default", { interface: "en0", gateway: "10.1.2.1", source: "10.1.2.23" }],
  ]);
  await assert.rejects(
    checkRouteConflicts(parseCidrs(["10.0.0.0/8"]), wide, [], lans),
    /10\.0\.0\.0\/8 contains this machine's default gateway/,
  );
  const quiet = table([["default", { interface: "en0", gateway: "192.168.9.1" }]]);
  await assert.rejects(
    checkRouteConflicts(parseCidrs(["10.0.0.0/8"]), quiet, [], lans),
    /overlaps 10\.1\.2\.0\/24, the network of en0 \(your LAN\?\)/,
  );
  await checkRouteConflicts(parseCidrs(["172.16.0.0/12"]), quiet, [], lans);
  const check = await conflictChecker(quiet, [], [], lans);
  assert.match((await check(parseCidrs(["10.0.0.0/8"])[0]))?.reason ?? "", /network of en0/);
  assert.equal(await check(parseCidrs(["10.2.0.0/16"])[0]), undefined);
});
