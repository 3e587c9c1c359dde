/**
 * `start --target name:bastion` and nothing else, in network namespaces: the routes come from the
 * VPC (its CIDR and a peering route), the DNS domains from its private hosted zone, and the
 * laptop's resolv.conf (no systemd-resolved here) points at ssm-proxy's forwarder until the
 * tunnel ends, however it ends.
 */
import assert from "node:assert/strict";
import { PAGE_MARKER } from "../../scripts/lab/services.ts";
import { clientEnv, ssmProxy, ssmProxyArgv, startTunnel } from "../../scripts/lab/stack.ts";
import {
  addPeeredNetwork,
  peered,
  peeredHost,
  zeroConfigWorld,
} from "../../scripts/lab/zero_config.ts";
import {
  assertErrorLine,
  assertLaptopClean,
  e2eTest,
  LAB_RESOLV_CONF,
  resolvConf,
  withStack,
} from "../support/lab.ts";

e2eTest(
  "e2e: start with only --target discovers routes and DNS, and undoes resolv.conf",
  async (t) => {
    await withStack({ fixtures: zeroConfigWorld }, async ({ lab }) => {
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

      await t.step("status says which domains go to which resolver, and how", async () => {
        const r = await ssmProxy(lab, "laptop", ["status", "zc"]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(
          r.stdout,
          new RegExp(
            `dns +lab\\.internal, ec2\\.internal -> ${
              lab.resolver.replaceAll(".", "\\.")
            } \\(/etc/resolv\\.conf -> ssm-proxy's forwarder\\)`,
          ),
        );
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
  await withStack({ fixtures: zeroConfigWorld }, async ({ lab }) => {
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

e2eTest(
  "e2e: start NAME uses the saved tunnel, else the team's, and stop NAME ends it",
  async (t) => {
    await withStack({ fixtures: zeroConfigWorld }, async ({ lab }) => {
      await addPeeredNetwork(lab);
      const config = `${lab.dir}/config.yaml`;
      await Deno.writeTextFile(
        config,
        `# saved by hand\ntunnels:\n  lab:\n    target: name:bastion\n    cidrs: [${lab.vpcNetwork}]\n    dns_domains: [lab.internal]\n`,
      );

      await t.step("the local entry: its routes and domains, flags still win", async () => {
        const r = await ssmProxy(lab, "laptop", ["start", "lab", "--config", config, "--dry-run"]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, new RegExp(`tunnel "lab" from ${config}:3`));
        assert.match(
          r.stdout,
          new RegExp(`route +${lab.vpcNetwork.replaceAll(".", "\\.")} +--cidr`),
        );
        assert.doesNotMatch(r.stdout, /via pcx-/);
        assert.match(r.stdout, /dns +lab\.internal +--dns-domain/);
        const o = await ssmProxy(lab, "laptop", [
          "start",
          "lab",
          "--config",
          config,
          "--dry-run",
          "--no-dns",
        ]);
        assert.equal(o.code, 0, o.stderr);
        assert.match(o.stdout, /dns +off: --no-dns/);
      });

      await t.step("the team's entry from Parameter Store when there is no local one", async () => {
        const r = await ssmProxy(lab, "laptop", [
          "start",
          "team-lab",
          "--config",
          config,
          "--dry-run",
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, /tunnel "team-lab" from \/ssm-proxy\/tunnels\/team-lab/);
        assert.match(r.stdout, new RegExp(`route +${lab.vpcNetwork.replaceAll(".", "\\.")} +vpc-`));
        assert.match(r.stdout, /excluded by --exclude/);
        assert.doesNotMatch(r.stdout, new RegExp(`route +${peered(lab).replaceAll(".", "\\.")}`));
        assert.match(r.stdout, /dns +off: --no-dns/);
      });

      await t.step("an unknown name without --target is one usage line", async () => {
        const r = await ssmProxy(lab, "laptop", ["start", "nope", "--config", config]);
        assertErrorLine(r, /no saved tunnel named "nope"/);
        assert.equal(r.code, 2);
      });

      await t.step("start lab for real, then stop lab", async () => {
        const proc = lab.spawn(
          "laptop",
          ssmProxyArgv(["start", "lab", "--config", config]),
          clientEnv(lab, "laptop"),
          "start lab",
        );
        await proc.waitForLine(/tunnel "lab" up:/, 45_000);
        const page = await lab.probe("laptop", [
          "http",
          `http://${lab.serviceAddress}/`,
          PAGE_MARKER,
        ]);
        assert.ok(page.ok, page.detail);
        assert.equal((await ssmProxy(lab, "laptop", ["stop", "lab"])).code, 0);
        assert.equal((await proc.status).code, 0, proc.tail());
        await assertLaptopClean(lab);
      });
    });
  },
);
