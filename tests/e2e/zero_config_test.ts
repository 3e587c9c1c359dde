/**
 * `start --target name:bastion` and nothing else, in network namespaces: the routes come from the
 * VPC (its CIDR and a peering route), the DNS domains from its private hosted zone, and the
 * laptop's resolv.conf (no systemd-resolved here) points at ssm-proxy's forwarder until the
 * tunnel ends, however it ends.
 */
import assert from "node:assert/strict";
import { PAGE_MARKER } from "../../scripts/lab/services.ts";
import { REPO, ssmProxy, startTunnel } from "../../scripts/lab/stack.ts";
import type { Lab } from "../../scripts/lab.ts";
import {
  assertLaptopClean,
  e2eTest,
  LAB_RESOLV_CONF,
  resolvConf,
  withStack,
} from "../support/lab.ts";

/** The "peered VPC": a second range behind the lab's vpc namespace. */
const peered = (lab: Lab) => `10.98.${lab.x}.0/24`;
const peeredHost = (lab: Lab) => `10.98.${lab.x}.10`;

async function world(lab: Lab): Promise<string> {
  const file = `${lab.dir}/zero_config.yaml`;
  await Deno.writeTextFile(
    file,
    `
instances:
  - id: i-0123456789abcdef0
    name: bastion
    tags: { Purpose: bastion }
    privateIp: ${lab.instanceVpcAddress}
    vpc: vpc-0ab0ab0a
    subnet: subnet-0ab0ab0a
vpcs:
  - id: vpc-0ab0ab0a
    cidr: ${lab.vpcNetwork}
    tags: { Name: lab }
routeTables:
  - id: rtb-0ab0ab0a
    vpc: vpc-0ab0ab0a
    subnets: [subnet-0ab0ab0a]
    routes:
      - { destination: ${peered(lab)}, target: pcx-0ab0ab0ab0ab0ab0a }
      - { destination: 0.0.0.0/0, target: igw-0ab0ab0a }
hostedZones:
  - id: Z0LAB0LAB0LAB0LAB0LAB
    name: lab.internal
    vpcs: [vpc-0ab0ab0a]
`,
  );
  return file;
}

/** Services on the peered range, reached from the instance through the vpc namespace. */
async function addPeeredNetwork(lab: Lab): Promise<void> {
  const must = async (role: "vpc" | "instance", args: string[]) => {
    const r = await lab.exec(role, args);
    assert.ok(r.success, `${args.join(" ")}: ${r.stderr}`);
  };
  await must("vpc", ["ip", "addr", "add", `${peeredHost(lab)}/24`, "dev", "lab0"]);
  await must("instance", ["ip", "route", "add", peered(lab), "via", lab.serviceAddress]);
  const svc = lab.spawn(
    "vpc",
    [Deno.execPath(), "run", "-A", `${REPO}scripts/lab/services.ts`, "--addr", peeredHost(lab)],
    {},
    "peered services",
  );
  await svc.waitForLine(/^ready$/, 20_000);
}

e2eTest(
  "e2e: start with only --target discovers routes and DNS, and undoes resolv.conf",
  async (t) => {
    await withStack({ fixtures: world }, async ({ lab }) => {
      await addPeeredNetwork(lab);
      const original = await resolvConf(lab, "laptop");
      assert.equal(original, LAB_RESOLV_CONF(lab.ns("laptop")));

      await t.step("--dry-run prints the plan with reasons and changes nothing", async () => {
        const r = await ssmProxy(lab, "laptop", ["start", "--target", "name:bastion", "--dry-run"]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, new RegExp(`route +${lab.vpcNetwork.replaceAll(".", "\\.")} +vpc-`));
        assert.match(r.stdout, /via pcx-0ab0ab0ab0ab0ab0a/);
        assert.match(r.stdout, /dns +lab\.internal +.*Z0LAB0LAB0LAB0LAB0LAB/);
        assert.match(r.stdout, /0\.0\.0\.0\/0/); // the default route is shown as skipped
        await assertLaptopClean(lab);
      });

      const tunnel = await startTunnel(lab, "laptop", { name: "zc", cidrs: [] });
      console.log(`zero-config start: up in ${tunnel.ms.toFixed(0)} ms`);

      await t.step("routes: the VPC and the peered range, each with its reason", () => {
        assert.deepEqual([...tunnel.status.cidrs].sort(), [peered(lab), lab.vpcNetwork].sort());
        const out = tunnel.proc.tail(60);
        assert.match(out, /\(the instance's VPC\)/);
        assert.match(out, /via pcx-/);
      });

      await t.step("HTTP to the VPC and to the peered range", async () => {
        for (const host of [lab.serviceAddress, peeredHost(lab)]) {
          const r = await lab.probe("laptop", ["http", `http://${host}/`, PAGE_MARKER]);
          assert.ok(r.ok, `${host}: ${r.detail}`);
        }
      });

      await t.step("a private-zone name resolves through the system resolver", async () => {
        assert.notEqual(await resolvConf(lab, "laptop"), original);
        const r = await lab.exec("laptop", ["getent", "ahostsv4", "db.lab.internal"]);
        assert.ok(r.success, `getent: ${r.stderr}\n${tunnel.proc.tail()}`);
        assert.match(r.stdout, new RegExp(lab.dnsTable["db.lab.internal"].replaceAll(".", "\\.")));
      });

      await t.step("SIGINT restores resolv.conf byte for byte", async () => {
        tunnel.proc.kill("SIGINT");
        assert.equal((await tunnel.proc.status).code, 0, tunnel.proc.tail());
        await assertLaptopClean(lab);
      });

      await t.step("stop restores it", async () => {
        await startTunnel(lab, "laptop", { name: "zc2", cidrs: [] });
        assert.notEqual(await resolvConf(lab, "laptop"), original);
        assert.equal((await ssmProxy(lab, "laptop", ["stop", "zc2"])).code, 0);
        await assertLaptopClean(lab);
      });

      await t.step("after kill -9, the next command restores it", async () => {
        const t3 = await startTunnel(lab, "laptop", { name: "zc3", cidrs: [] });
        assert.notEqual(await resolvConf(lab, "laptop"), original);
        t3.proc.kill("SIGKILL");
        await t3.proc.status;
        const r = await ssmProxy(lab, "laptop", ["status"]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, /cleaned up tunnel "zc3"/);
        await assertLaptopClean(lab);
      });
    });
  },
);

e2eTest("e2e: --exclude and --no-dns shape what start does", async () => {
  await withStack({ fixtures: world }, async ({ lab }) => {
    await addPeeredNetwork(lab);
    const r = await ssmProxy(lab, "laptop", [
      "start",
      "--target",
      "name:bastion",
      "--dry-run",
      "--exclude",
      peered(lab),
      "--no-dns",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, new RegExp(`route +${peered(lab).replaceAll(".", "\\.")}`));
    assert.doesNotMatch(r.stdout, /dns +lab\.internal/);
    assert.match(r.stdout, /dns +off/);
  });
});
