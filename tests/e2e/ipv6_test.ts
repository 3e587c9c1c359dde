/**
 * IPv6 through the tunnel, in a dual-stack lab (createLab({ ipv6: true, internet: true })): the
 * agent hands the tunnel an address from its ULA pool and NATs it out of the instance's IPv6
 * uplink, so an IPv6-only host in the VPC sees the instance; TCP, UDP, ping6 and AAAA answers work
 * beside IPv4; a full tunnel takes IPv6 too and nothing leaves lab0; stop leaves no IPv6 route.
 */
import assert from "node:assert/strict";
import { createLab, type Lab, type LabProcess } from "../../scripts/lab.ts";
import { startLeakCounter } from "../../scripts/lab/leaks.ts";
import { startAgent, startEmulator, startTunnel } from "../../scripts/lab/stack.ts";
import { assertLaptopClean, e2eTest } from "../support/lab.ts";

async function run(lab: Lab, argv: string[]): Promise<string> {
  const r = await lab.exec("laptop", argv);
  assert.equal(r.code, 0, `${argv.join(" ")}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

async function routes6(lab: Lab): Promise<string> {
  return (await lab.exec("laptop", ["ip", "-6", "route", "show"])).stdout;
}

async function stop(p: LabProcess): Promise<void> {
  p.kill("SIGINT");
  assert.equal((await p.status).code, 0, p.tail());
}

e2eTest("e2e: IPv6 through the tunnel: TCP, UDP, ping6, AAAA, and a full tunnel", async (t) => {
  const lab = await createLab({ ipv6: true, internet: true, handleSignals: false });
  try {
    await startEmulator(lab);
    let agent = await startAgent(lab);
    const before6 = await routes6(lab);

    await t.step("--cidr with an IPv6 range: the IPv6-only host sees the instance", async () => {
      const tun = await startTunnel(lab, "laptop", {
        name: "v6",
        cidrs: [lab.vpcNetwork, lab.vpcNetwork6!],
      });
      const s = tun.status as { address6?: string; interface: string; cidrs: string[] };
      assert.match(s.address6 ?? "", /^fd7a:5353:5d8b::/, "a ULA address from the agent's pool");
      assert.ok(s.cidrs.includes(lab.vpcNetwork6!), s.cidrs.join(" "));
      assert.match(await routes6(lab), new RegExp(`^${lab.vpcNetwork6} dev ${s.interface} `, "m"));
      const seen = await run(lab, [
        "curl",
        "-s",
        "-m",
        "5",
        `http://[${lab.ipv6OnlyAddress}]/`,
      ]);
      assert.equal(seen.trim(), lab.instanceVpcAddress6, "NAT66 to the instance's address");
      const echo = await run(lab, [
        "sh",
        "-c",
        `echo hello6 | socat -T 3 - UDP6:[${lab.ipv6OnlyAddress}]:7`,
      ]);
      assert.equal(echo.trim(), "hello6");
      const ping = await run(lab, ["ping", "-6", "-c", "3", "-i", "0.2", lab.serviceAddress6!]);
      assert.match(ping, / 0% packet loss/);
      // AAAA through the VPC resolver (routed into the tunnel by the IPv4 range).
      const aaaa = await run(lab, [
        "dig",
        "+short",
        "+time=3",
        "AAAA",
        `@${lab.resolver}`,
        lab.ipv6OnlyName!,
      ]);
      assert.equal(aaaa.trim(), lab.ipv6OnlyAddress);
      // IPv4 still works beside it.
      assert.match(await run(lab, ["curl", "-s", "-m", "5", `http://${lab.serviceAddress}/`]), /./);
      await stop(tun.proc);
      assert.equal(await routes6(lab), before6, "no IPv6 route left");
      await assertLaptopClean(lab);
    });

    await t.step(
      "--all-traffic: IPv6 to the internet leaves via the instance, none via lab0",
      async () => {
        const leaks = await startLeakCounter(lab, "laptop", { allow: [lab.instanceAddress] });
        try {
          const tun = await startTunnel(lab, "laptop", {
            name: "all6",
            cidrs: [],
            extra: ["--all-traffic"],
          });
          const r6 = await routes6(lab);
          for (const half of ["::/1", "8000::/1"]) {
            assert.match(
              r6,
              new RegExp(`^${half.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")} dev `, "m"),
            );
          }
          const seen = await run(lab, [
            "curl",
            "-s",
            "-m",
            "5",
            `http://[${lab.internetAddress6}]/`,
          ]);
          assert.equal(seen.trim(), lab.instanceVpcAddress6);
          const seen4 = await run(lab, ["curl", "-s", "-m", "5", `http://${lab.internetAddress}/`]);
          assert.equal(seen4.trim(), lab.instanceVpcAddress);
          assert.equal(await leaks.packets(), 0, (await leaks.destinations()).join(" "));
          await stop(tun.proc);
          assert.equal(await routes6(lab), before6, "no IPv6 route left");
        } finally {
          await leaks.stop();
        }
      },
    );

    await t.step(
      "an agent without IPv6: a full tunnel blocks IPv6 instead of leaking it",
      async () => {
        agent.kill("SIGTERM");
        await agent.status;
        agent = await startAgent(lab, "ipv6: off");
        const leaks = await startLeakCounter(lab, "laptop", { allow: [lab.instanceAddress] });
        try {
          const tun = await startTunnel(lab, "laptop", {
            name: "sink6",
            cidrs: [],
            extra: ["--all-traffic"],
          });
          assert.match(
            tun.proc.tail(),
            /IPv6 is not carried \(.*\): it is blocked while the full tunnel is up/,
          );
          const r = await lab.exec("laptop", [
            "curl",
            "-s",
            "-m",
            "2",
            `http://[${lab.internetAddress6}]/`,
          ]);
          assert.notEqual(r.code, 0, "IPv6 must not get through, nor around");
          assert.equal(await leaks.packets(), 0, (await leaks.destinations()).join(" "));
          assert.equal(
            (await run(lab, ["curl", "-s", "-m", "5", `http://${lab.internetAddress}/`])).trim(),
            lab.instanceVpcAddress,
            "IPv4 still goes through",
          );
          await stop(tun.proc);
          assert.equal(await routes6(lab), before6, "no IPv6 route left");
        } finally {
          await leaks.stop();
        }
      },
    );
  } finally {
    await lab.destroy();
  }
});
