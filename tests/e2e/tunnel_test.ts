/**
 * The data path end to end in network namespaces: laptop → ssm-proxy → emulated Session Manager
 * → ssm-proxy-agent → the lab VPC, and back. One lab for all steps (building it is the slow part).
 */
import assert from "node:assert/strict";
import { blobSha256 } from "../../scripts/lab/blob.ts";
import { PAGE_MARKER } from "../../scripts/lab/services.ts";
import { footprint, ssmProxy, startTunnel } from "../../scripts/lab/stack.ts";
import { agentCounter, assertLaptopClean, e2eTest, withStack } from "../support/lab.ts";

const METADATA = "169.254.169.254";
const BIG = 20 << 20;

e2eTest(
  "e2e: tunnel carries TCP, UDP, ICMP and DNS; agent refuses metadata and spoofing",
  async (t) => {
    await withStack({}, async ({ lab, agent }) => {
      const svc = lab.serviceAddress;
      // Route the metadata address into the tunnel too, so refusing it is the agent's job.
      let cidrs = [lab.vpcNetwork, `${METADATA}/32`];
      let tunnel;
      try {
        tunnel = await startTunnel(lab, "laptop", { name: "e2e", cidrs });
      } catch (e) {
        // A client that refuses to route link-local at all is also right: it must say so in one line.
        const msg = (e as Error).message;
        assert.match(msg, /ssm-proxy: .*169\.254/, `start failed for another reason:\n${msg}`);
        console.log(
          `client refuses to route ${METADATA}: ${
            msg.split("\n").find((l) => l.includes("169.254"))
          }`,
        );
        cidrs = [lab.vpcNetwork];
        tunnel = await startTunnel(lab, "laptop", { name: "e2e", cidrs });
      }
      assert.match(tunnel.status.address, /^100\.64\./);
      assert.equal(tunnel.status.mode, "agent", "auto mode must pick the agent when it answers");
      const spoof = `10.98.${lab.x}.1`;
      const seen = await instanceCounters(lab, {
        spoof,
        metadata: METADATA,
        pool: "100.64.0.0/16",
      });

      await t.step("HTTP page", async () => {
        const r = await lab.probe("laptop", ["http", `http://${svc}/`, PAGE_MARKER]);
        assert.ok(r.ok, r.detail);
      });

      await t.step("TCP: 20 MB HTTP body, SHA-256 checked", async () => {
        const r = await lab.probe("laptop", ["blob", `http://${svc}/blob?size=${BIG}`], 10_000);
        assert.ok(r.ok, r.detail);
        assert.equal(r.data?.bytes, BIG);
        assert.equal(r.data?.sha256, blobSha256(BIG));
      });

      await t.step("UDP echo", async () => {
        const r = await lab.probe("laptop", ["udp", svc, "7"]);
        assert.ok(r.ok, r.detail);
      });

      await t.step("ICMP echo (ping)", async () => {
        const r = await lab.exec("laptop", ["ping", "-c", "3", "-i", "0.2", "-W", "2", svc]);
        assert.ok(r.success, r.stdout + r.stderr);
        assert.match(r.stdout, /3 received/);
      });

      await t.step("DNS through the tunnel to the VPC resolver", async () => {
        const r = await lab.probe("laptop", ["dns", lab.resolver, "db.lab.internal"]);
        assert.ok(r.ok, r.detail);
        assert.deepEqual(r.data?.addresses, [lab.dnsTable["db.lab.internal"]]);
        const nx = await lab.probe("laptop", ["dns", lab.resolver, "missing.lab.internal"]);
        assert.equal(nx.data?.rcode, 3, nx.detail);
      });

      await t.step("metadata address refused", async () => {
        if (!cidrs.includes(`${METADATA}/32`)) {
          return; // the client refused to route it (asserted above)
        }
        const r = await lab.probe("laptop", ["tcp", METADATA, "80"], 2000);
        // The agent answers ICMP administratively prohibited: the connect fails at once.
        assert.equal(r.detail, "unreachable", `connect to ${METADATA}: ${r.detail}`);
        assert.equal(
          await seen("metadata"),
          0,
          "a packet to the metadata address reached the instance",
        );
      });

      await t.step("spoofed source dropped", async () => {
        // A socket bound to another local address: the kernel routes it into the tun with a
        // source that is not the tunnel's, which the client or the agent must drop.
        await lab.exec("laptop", ["ip", "addr", "add", `${spoof}/32`, "dev", "lo"]);
        const r = await lab.probe("laptop", ["udp", svc, "7", spoof], 2000);
        assert.ok(!r.ok, `a packet from ${spoof} came back through the tunnel`);
        const control = await lab.probe("laptop", ["udp", svc, "7"]);
        assert.ok(control.ok, `the tunnel's own address stopped working: ${control.detail}`);
        assert.equal(await seen("spoof"), 0, `a packet from ${spoof} reached the instance`);
        assert.ok((await seen("pool")) > 0, "the counting rule saw no tunnel traffic at all");
        await lab.exec("laptop", ["ip", "addr", "del", `${spoof}/32`, "dev", "lo"]);
      });

      await lab.exec("instance", ["nft", "delete", "table", "ip", "ssmp_lab_probe"]);

      await t.step("stop leaves nothing behind in the laptop", async () => {
        const r = await ssmProxy(lab, "laptop", ["stop", "e2e"]);
        assert.equal(r.code, 0, r.stderr);
        const st = await tunnel.proc.status;
        assert.equal(st.code, 0, tunnel.proc.tail());
        await assertLaptopClean(lab);
      });

      await t.step("agent counted the refusals and removed its tun and NAT on stop", async () => {
        await agent.stop(10_000);
        const out = agent.output();
        const spoofed = agentCounter(out, "spoofed");
        const denied = agentCounter(out, "denied");
        assert.ok(
          spoofed !== undefined && denied !== undefined,
          `no counters in the agent's output:\n${out}`,
        );
        assert.ok(spoofed >= 1, `spoofed=${spoofed}`);
        if (cidrs.includes(`${METADATA}/32`)) assert.ok(denied >= 1, `denied=${denied}`);
        const fp = await footprint(lab, "instance");
        assert.deepEqual(fp.links, ["lap0", "lo", "vpc0"], "interfaces left in instance");
        assert.equal(fp.nft, "", "nft rules left in instance");
        const fwd = await lab.exec("instance", ["sysctl", "-n", "net.ipv4.ip_forward"]);
        assert.equal(fwd.stdout.trim(), "0", "ip_forward not restored");
      });
    });
  },
);

/**
 * Counting rules in the instance's prerouting (ahead of everything): packets the agent writes to
 * its tun pass here, so a zero count proves a packet never left the ssm-proxy path. The counts
 * come from nft, independent of the agent's own counters.
 */
async function instanceCounters(
  lab: import("../../scripts/lab.ts").Lab,
  o: { spoof: string; metadata: string; pool: string },
): Promise<(what: "spoof" | "metadata" | "pool") => Promise<number>> {
  const rules = `table ip ssmp_lab_probe {
  chain pre {
    type filter hook prerouting priority -400; policy accept;
    ip saddr ${o.spoof} counter comment "spoof"
    ip daddr ${o.metadata} counter comment "metadata"
    ip saddr ${o.pool} counter comment "pool"
  }
}
`;
  const file = `${lab.dir}/probe.nft`;
  await Deno.writeTextFile(file, rules);
  const r = await lab.exec("instance", ["nft", "-f", file]);
  assert.ok(r.success, r.stderr);
  return async (what) => {
    const out =
      (await lab.exec("instance", ["nft", "list", "table", "ip", "ssmp_lab_probe"])).stdout;
    const m = new RegExp(`counter packets (\\d+) bytes \\d+ comment "${what}"`).exec(out);
    assert.ok(m, `no counter "${what}" in:\n${out}`);
    return Number(m[1]);
  };
}
