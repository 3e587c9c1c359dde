/** Port choice, bastion choice, tunnel coverage, picker matching and the exec command. */
import assert from "node:assert/strict";
import type { InstanceSummary } from "../../src/aws/ec2.ts";
import type { ClusterEntry } from "../../src/config/clusters.ts";
import { parseTag, pickBastion } from "../../src/eks/bastion.ts";
import {
  filterItems,
  fuzzyScore,
  headlessSelection,
  KILL_ALL,
  pickItems,
} from "../../src/eks/picker.ts";
import { choosePort, PORT_MAX, PORT_MIN } from "../../src/eks/ports.ts";
import { selfCommand, tokenArgs } from "../../src/eks/self.ts";
import { coveringTunnel, covers } from "../../src/eks/transparent.ts";
import { parseCidr } from "../../src/net/cidr.ts";
import type { TunnelState } from "../../src/tunnel/state.ts";

Deno.test("ports: skips reserved and unbindable ports, wraps around the range", () => {
  assert.equal(choosePort(new Set([50000, 50001]), () => true, 50000), 50002);
  assert.equal(choosePort(new Set(), (p) => p !== 60000, 60000), 60001);
  assert.equal(choosePort(new Set([PORT_MAX]), () => true, PORT_MAX), PORT_MIN);
  assert.equal(choosePort(new Set(), () => false), undefined);
  for (let i = 0; i < 50; i++) {
    const p = choosePort(new Set(), () => true)!;
    assert.ok(p >= PORT_MIN && p <= PORT_MAX);
  }
});

const inst = (id: string, name?: string): InstanceSummary => ({
  instanceId: id,
  ...(name ? { name } : {}),
  state: "running",
  tags: {},
});

Deno.test("bastion: exactly one, else an error listing what was found", () => {
  assert.equal(pickBastion([inst("i-1")], "vpc-1", "Purpose=bastion", "c").instanceId, "i-1");
  assert.throws(
    () => pickBastion([], "vpc-1", "Purpose=bastion", "dev-eks"),
    /^UserError: no running instance tagged Purpose=bastion in vpc-1, the VPC of cluster dev-eks/,
  );
  assert.throws(
    () => pickBastion([inst("i-1", "a"), inst("i-2")], "vpc-1", "Purpose=bastion", "c"),
    /2 running instances tagged Purpose=bastion in vpc-1 \(i-1 \(a\), i-2\)/,
  );
  assert.deepEqual(parseTag("Role=jump=box"), { key: "Role", value: "jump=box" });
  assert.throws(() => parseTag("=x"), /not Key=Value/);
});

const tunnel = (cidrs: string[], extra: Partial<TunnelState> = {}) =>
  ({ name: "t", pid: 1, status: "up", cidrs, ...extra }) as TunnelState;

Deno.test("transparent: a live, up tunnel must cover every VPC CIDR", () => {
  assert.ok(covers(parseCidr("10.0.0.0/8"), parseCidr("10.99.0.0/16")));
  assert.ok(!covers(parseCidr("10.99.0.0/24"), parseCidr("10.99.0.0/16")));
  assert.ok(covers(parseCidr("0.0.0.0/0"), parseCidr("10.99.0.0/16")));
  const alive = () => true;
  assert.equal(coveringTunnel([tunnel(["10.99.0.0/16"])], ["10.99.0.0/16"], alive)?.name, "t");
  assert.equal(coveringTunnel([tunnel(["10.99.0.0/17"])], ["10.99.0.0/16"], alive), undefined);
  assert.equal(
    coveringTunnel([tunnel(["10.99.0.0/16"])], ["10.99.0.0/16", "100.64.0.0/16"], alive),
    undefined,
  );
  assert.equal(
    coveringTunnel([tunnel(["10.0.0.0/8"], { status: "healing" })], ["10.1.0.0/16"], alive),
    undefined,
  );
  assert.equal(coveringTunnel([tunnel(["10.0.0.0/8"])], ["10.1.0.0/16"], () => false), undefined);
  assert.equal(coveringTunnel([tunnel(["10.0.0.0/8"])], [], alive), undefined);
});

const clusters: ClusterEntry[] = [
  {
    name: "dev",
    region: "eu-west-1",
    cluster_name: "d",
    profile: "p",
    environment: "dev",
    direct_connect: false,
  },
  {
    name: "prod-eu",
    region: "eu-central-1",
    cluster_name: "p",
    profile: "p",
    environment: "production",
    direct_connect: true,
  },
];

Deno.test("picker: kill-all first, ● for connected, a marker for direct-connect", () => {
  assert.deepEqual(pickItems(clusters, new Set(["prod-eu"])).map((i) => i.label), [
    "[Kill all sessions]",
    "○ dev  (dev, eu-west-1)",
    "● prod-eu  (production, eu-central-1)  [direct]",
  ]);
});

Deno.test("picker: fuzzy subsequence matching, tighter matches first", () => {
  assert.equal(fuzzyScore("pe", "prod-eu"), 4);
  assert.equal(fuzzyScore("xyz", "prod-eu"), undefined);
  const items = pickItems(clusters, new Set());
  assert.deepEqual(filterItems(items, "prd").map((i) => i.value), ["prod-eu"]);
  assert.deepEqual(filterItems(items, "kill").map((i) => i.value), [KILL_ALL]);
  assert.equal(filterItems(items, "").length, 3);
});

Deno.test("picker: headless selection by name or kill_all, unknown names refused", () => {
  const names = clusters.map((c) => c.name);
  assert.equal(headlessSelection({}, names), undefined);
  assert.equal(headlessSelection({ KUBECTL_SSM_HEADLESS_SELECTION: "dev" }, names), "dev");
  assert.equal(headlessSelection({ KUBECTL_SSM_HEADLESS_SELECTION: "kill_all" }, names), KILL_ALL);
  assert.throws(
    () => headlessSelection({ KUBECTL_SSM_HEADLESS_SELECTION: "qa" }, names),
    /KUBECTL_SSM_HEADLESS_SELECTION=qa names no cluster \(known: dev, prod-eu, or kill_all\)/,
  );
});

Deno.test("self: the compiled binary as is; from source, deno run with the repo's config", () => {
  assert.deepEqual(selfCommand("/usr/local/bin/ssm-proxy", "file:///$bunfs/main.ts"), {
    command: "/usr/local/bin/ssm-proxy",
    args: [],
  });
  const repo = new URL("../../", import.meta.url).pathname;
  assert.deepEqual(selfCommand("/usr/bin/deno", `file://${repo}main.ts`), {
    command: "/usr/bin/deno",
    args: ["run", "-A", "--config", `${repo}deno.json`, `${repo}main.ts`],
  });
  assert.deepEqual(
    tokenArgs({ command: "x", args: [] }, { cluster: "c", region: "r", profile: "p" }).args,
    ["eks", "token", "--cluster", "c", "--region", "r", "--profile", "p"],
  );
});
