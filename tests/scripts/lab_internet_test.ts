/**
 * The lab's "internet" (createLab({ internet: true })) and the leak counter: the public host sees
 * each requester as the vpc routes it (no NAT there), a laptop without a tunnel leaks towards it
 * and gets nothing back, the counter sees exactly that, and nothing is left afterwards.
 */
import assert from "node:assert/strict";
import { createLab, type Lab, type Role, sweepStaleLabs } from "../../scripts/lab.ts";
import { INET_LINK_VPC, INTERNET_ADDRESS } from "../../scripts/lab/internet.ts";
import { startLeakCounter } from "../../scripts/lab/leaks.ts";
import { run } from "../../scripts/lab/proc.ts";
import { e2eTest } from "../support/lab.ts";

const namespaces = async (id: string) =>
  (await run(["ip", "netns", "list"])).stdout.split("\n").filter((l) =>
    l.startsWith(`ssmp-${id}-`)
  );

/** GET the whoami page from `role`; undefined when it fails (curl's own timeout: 1 s). */
async function whoami(lab: Lab, role: Role): Promise<string | undefined> {
  const r = await lab.exec(role, [
    "curl",
    "-sS",
    "--max-time",
    "1",
    `http://${lab.internetAddress}/`,
  ]);
  return r.success ? r.stdout : undefined;
}

async function leakTables(lab: Lab, role: Role): Promise<string> {
  return (await lab.exec(role, ["nft", "list", "tables"])).stdout.trim();
}

e2eTest(
  "lab internet: whoami, echo and ping; a laptop's leak is counted, allowed traffic is not",
  async () => {
    const lab = await createLab({ internet: true, handleSignals: false });
    try {
      assert.equal(lab.internetAddress, INTERNET_ADDRESS);
      assert.equal((await namespaces(lab.id)).length, 4);
      // No NAT between the instance and the internet: it is seen by its own vpc address.
      assert.equal(await whoami(lab, "instance"), `${lab.instanceVpcAddress}\n`);
      assert.equal(await whoami(lab, "vpc"), `${INET_LINK_VPC}\n`);
      const echo = await lab.probe("instance", ["udp", INTERNET_ADDRESS, "7"], 2000);
      assert.ok(echo.ok, echo.detail);
      const ping = await lab.exec("instance", ["ping", "-c", "1", "-W", "1", INTERNET_ADDRESS]);
      assert.ok(ping.success, ping.stdout + ping.stderr);

      // As with the agent running: the instance forwards, so a leak gets as far as it can.
      await lab.exec("instance", ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
      const leaks = await startLeakCounter(lab, "laptop", { allow: [lab.instanceAddress] });
      // The same traffic with nothing allowed: the allow list is what makes the difference.
      const all = await startLeakCounter(lab, "laptop", { allow: [] });
      try {
        const allowed = await lab.exec("laptop", [
          "ping",
          "-c",
          "1",
          "-W",
          "1",
          lab.instanceAddress,
        ]);
        assert.ok(allowed.success, allowed.stdout + allowed.stderr);
        await lab.exec("laptop", [
          "curl",
          "-s",
          "--max-time",
          "1",
          `http://${lab.instanceAddress}/`,
        ]);
        assert.equal(await leaks.packets(), 0, `counted: ${await leaks.destinations()}`);
        assert.deepEqual(await all.destinations(), [lab.instanceAddress]);

        // The default route takes it out of lab0; the vpc has no way back to the laptop.
        assert.equal(await whoami(lab, "laptop"), undefined);
        assert.ok(await leaks.packets() > 0);
        assert.deepEqual(await leaks.destinations(), [INTERNET_ADDRESS]);

        // IPv6 is counted too, except link-scope traffic the kernel sends by itself.
        await lab.exec("laptop", [
          "ip",
          "-6",
          "addr",
          "add",
          "2001:db8:1::2/64",
          "dev",
          "lab0",
          "nodad",
        ]);
        await lab.exec("laptop", ["ip", "-6", "route", "add", "2001:db8::/32", "dev", "lab0"]);
        await lab.exec("laptop", ["ping", "-6", "-c", "1", "-W", "1", "2001:db8::1"]);
        assert.deepEqual(await leaks.destinations(), ["2001:db8::1", INTERNET_ADDRESS]);
      } finally {
        await leaks.stop();
        await all.stop();
      }
      assert.equal(await leakTables(lab, "laptop"), "", "leak counter table left behind");
    } finally {
      await lab.destroy();
    }
    assert.deepEqual(await namespaces(lab.id), []);
  },
);

e2eTest("lab internet: off by default; a crashed internet lab is swept with its inet", async () => {
  const plain = await createLab({ services: false, handleSignals: false });
  try {
    assert.equal(plain.internetAddress, undefined);
    assert.ok(!plain.roles.includes("inet"));
    const routes = (await plain.exec("laptop", ["ip", "-4", "route"])).stdout;
    assert.ok(!routes.includes("default"), routes);
  } finally {
    await plain.destroy();
  }
  const lab = await createLab({ internet: true, services: false, handleSignals: false });
  try {
    assert.ok((await namespaces(lab.id)).includes(lab.ns("inet")));
    const dead = new Deno.Command("true").spawn();
    await dead.status;
    await Deno.writeTextFile(`${lab.dir}/owner`, String(dead.pid));
    assert.ok((await sweepStaleLabs()).includes(lab.id));
    assert.deepEqual(await namespaces(lab.id), []);
  } finally {
    await lab.destroy();
  }
});
