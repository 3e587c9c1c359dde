/**
 * Two laptops on one agent at once: each has its own tunnel (own state, own address from the
 * pool), both carry traffic at the same time, and stopping one leaves the other working.
 */
import assert from "node:assert/strict";
import { ssmProxy, startTunnel } from "../../scripts/lab/stack.ts";
import { assertLaptopClean, e2eTest, withStack } from "../support/lab.ts";

e2eTest(
  "e2e: two laptops share one agent, with different addresses, at the same time",
  async (t) => {
    await withStack({ laptops: 2 }, async ({ lab }) => {
      const [a, b] = lab.laptops.map((l) => l.role);
      const svc = lab.serviceAddress;
      const [ta, tb] = await Promise.all([
        startTunnel(lab, a, { name: "multi", cidrs: [lab.vpcNetwork] }),
        startTunnel(lab, b, { name: "multi", cidrs: [lab.vpcNetwork] }),
      ]);

      await t.step("they get different tunnel addresses", () => {
        assert.match(ta.status.address, /^100\.64\./);
        assert.match(tb.status.address, /^100\.64\./);
        assert.notEqual(ta.status.address, tb.status.address);
      });

      await t.step("both carry traffic simultaneously", async () => {
        const size = 5 << 20;
        const results = await Promise.all([
          lab.probe(a, ["blob", `http://${svc}/blob?size=${size}`], 10_000),
          lab.probe(b, ["blob", `http://${svc}/blob?size=${size}`], 10_000),
          lab.probe(a, ["udp", svc, "7"]),
          lab.probe(b, ["dns", lab.resolver, "db.lab.internal"]),
        ]);
        for (const r of results) assert.ok(r.ok, r.detail);
      });

      await t.step("stopping one leaves the other working", async () => {
        const r = await ssmProxy(lab, a, ["stop", "multi"]);
        assert.equal(r.code, 0, r.stderr);
        await ta.proc.status;
        await assertLaptopClean(lab, a);
        const still = await lab.probe(b, ["http", `http://${svc}/`, "ssm-proxy lab"]);
        assert.ok(still.ok, still.detail);
        const r2 = await ssmProxy(lab, b, ["stop", "multi"]);
        assert.equal(r2.code, 0, r2.stderr);
        await tb.proc.status;
        await assertLaptopClean(lab, b);
      });
    });
  },
);
