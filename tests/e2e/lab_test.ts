/** The lab itself: topology, services, and that it always removes its namespaces. */
import assert from "node:assert/strict";
import { createLab, sweepStaleLabs } from "../../scripts/lab.ts";
import { run } from "../../scripts/lab/proc.ts";
import { PAGE_MARKER } from "../../scripts/lab/services.ts";
import { e2eTest } from "../support/lab.ts";

const namespaces = async (id: string) =>
  (await run(["ip", "netns", "list"])).stdout.split("\n").filter((l) =>
    l.startsWith(`ssmp-${id}-`)
  );

e2eTest(
  "e2e lab: services answer inside the vpc, laptops reach the instance, destroy removes all",
  async () => {
    const lab = await createLab({ laptops: 2, handleSignals: false });
    try {
      assert.equal((await namespaces(lab.id)).length, 4);
      const svc = lab.serviceAddress;
      for (
        const args of [["http", `http://${svc}/`, PAGE_MARKER], [
          "blob",
          `http://${svc}/blob?size=1000003`,
        ], [
          "dns",
          svc,
          "db.lab.internal",
        ], ["udp", svc, "7"]]
      ) {
        const r = await lab.probe("vpc", args);
        assert.ok(r.ok, `${args[0]}: ${r.detail}`);
      }
      // Nothing routes the VPC from a laptop until a tunnel does.
      const r = await lab.probe("laptop", ["tcp", svc, "80"], 1000);
      assert.ok(!r.ok, r.detail);
      // The second laptop reaches the emulator's address through the instance.
      const ping = await lab.exec("laptop2", ["ping", "-c", "1", "-W", "2", lab.instanceAddress]);
      assert.ok(ping.success, ping.stdout + ping.stderr);
    } finally {
      await lab.destroy();
    }
    assert.deepEqual(await namespaces(lab.id), []);
    assert.ok(!(await Deno.stat(lab.dir).then(() => true, () => false)), "lab dir left behind");
  },
);

e2eTest("e2e lab: a lab whose owner died is swept by the next run", async () => {
  const lab = await createLab({ services: false, handleSignals: false });
  try {
    const dead = new Deno.Command("true").spawn();
    await dead.status;
    await Deno.writeTextFile(`${lab.dir}/owner`, String(dead.pid));
    const removed = await sweepStaleLabs();
    assert.ok(removed.includes(lab.id));
    assert.deepEqual(await namespaces(lab.id), []);
  } finally {
    await lab.destroy();
  }
});
