/**
 * Agentless mode end to end in network namespaces: an instance with nothing installed (only the
 * emulated SSM agent), the laptop terminating TCP itself. Each connection is an smux stream of a
 * remote-host Port session that the emulated agent dials from the instance into the lab VPC;
 * DNS goes as DNS over TCP; UDP and ping are refused at once.
 */
import assert from "node:assert/strict";
import { blobSha256 } from "../../scripts/lab/blob.ts";
import { putLabParameter } from "../../scripts/lab/parameter.ts";
import { PAGE_MARKER } from "../../scripts/lab/services.ts";
import { ssmProxy, startTunnel, tunnelStatus } from "../../scripts/lab/stack.ts";
import type { Lab } from "../../scripts/lab.ts";
import { assertLaptopClean, e2eTest, withStack } from "../support/lab.ts";
import {
  checkTransfer,
  fault,
  installFaultScripts,
  sleep,
  slowTransfer,
} from "../support/lab_faults.ts";

const BIG = 20 << 20;
/** The default fixtures' VPC is 10.99.0.0/16: its resolver (base+2) is what apps query. */
const VPC_RESOLVER = "10.99.0.2";

e2eTest("e2e: agentless tunnel carries TCP and DNS with nothing on the instance", async (t) => {
  await withStack({ agent: false, fixtures: stubResolver }, async ({ lab }) => {
    const svc = lab.serviceAddress;
    const tunnel = await startTunnel(lab, "laptop", {
      name: "al",
      cidrs: [lab.vpcNetwork],
    });

    await t.step("auto mode chose agentless and said what it carries", () => {
      assert.equal(tunnel.status.mode, "agentless");
      assert.match(tunnel.proc.tail(), /running agentless: TCP and DNS are carried/);
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

    await t.step("a closed port is refused at once", async () => {
      const r = await lab.probe("laptop", ["tcp", svc, "81"], 5000);
      assert.equal(r.detail, "refused");
    });

    await t.step("DNS through the VPC resolver's address", async () => {
      const r = await lab.probe("laptop", ["dns", VPC_RESOLVER, "db.lab.internal"]);
      assert.ok(r.ok, r.detail);
      assert.deepEqual(r.data?.addresses, [lab.dnsTable["db.lab.internal"]]);
      const nx = await lab.probe("laptop", ["dns", VPC_RESOLVER, "missing.lab.internal"]);
      assert.equal(nx.data?.rcode, 3, nx.detail);
    });

    await t.step("UDP and ping are refused at once, and counted", async () => {
      const udp = await lab.probe("laptop", ["udp", svc, "7"], 2000);
      assert.ok(!udp.ok, "a UDP datagram came back in agentless mode");
      const ping = await lab.exec("laptop", ["ping", "-c", "1", "-W", "2", svc]);
      assert.match(ping.stdout, /Packet filtered/, ping.stdout + ping.stderr);
      await new Promise((r) => setTimeout(r, 1200)); // the state file is written each second
      const s = await tunnelStatus(lab, "laptop", "al");
      assert.ok((s?.agentless?.refusedUdp ?? 0) >= 1, JSON.stringify(s?.agentless));
      assert.ok((s?.agentless?.refusedOther ?? 0) >= 1, JSON.stringify(s?.agentless));
      const text = await ssmProxy(lab, "laptop", ["status", "al"]);
      assert.match(text.stdout, /mode +agentless: TCP and DNS/);
    });

    await installFaultScripts(lab);

    await t.step("a dropped WebSocket mid-transfer: resumed, the transfer completes", async () => {
      const transfer = slowTransfer(lab, 12 << 20);
      await sleep(1500);
      await fault(lab, { action: "dropWebSocket" });
      checkTransfer(await transfer, 12 << 20);
    });

    await t.step("a session AWS ends mid-transfer resets only its connections", async () => {
      const transfer = slowTransfer(lab, 12 << 20);
      await sleep(1500);
      await fault(lab, { action: "channelClosed" });
      const r = await transfer;
      assert.ok(!r.success || !r.stdout.includes(blobSha256(12 << 20)), "the transfer survived");
      const again = await lab.probe("laptop", ["http", `http://${svc}/`, PAGE_MARKER]);
      assert.ok(again.ok, `a new connection after the session ended: ${again.detail}`);
      await fault(lab, { action: "reset" }, false);
    });

    await t.step("stop resets open connections and leaves nothing behind", async () => {
      const transfer = slowTransfer(lab, 12 << 20);
      await sleep(1500);
      const r = await ssmProxy(lab, "laptop", ["stop", "al"]);
      assert.equal(r.code, 0, r.stderr);
      const t0 = performance.now();
      const cut = await transfer;
      const ms = performance.now() - t0;
      assert.ok(!cut.success, "a transfer through a stopped tunnel succeeded");
      assert.ok(ms < 5000, `the app learned of the stop after ${Math.round(ms)} ms, not at once`);
      assert.equal((await tunnel.proc.status).code, 0, tunnel.proc.tail());
      await assertLaptopClean(lab);
    });
  });
});

e2eTest("e2e: agentless at the real agent's pace (1 KiB/ms per session)", async () => {
  await withStack({ agent: false, pacing: true, fixtures: stubResolver }, async ({ lab }) => {
    const tunnel = await startTunnel(lab, "laptop", {
      name: "paced",
      cidrs: [lab.vpcNetwork],
      extra: ["--mode", "agentless"],
    });
    const size = 3 << 20;
    const r = await lab.probe("laptop", [
      "blob",
      `http://${lab.serviceAddress}/blob?size=${size}`,
    ], 20_000);
    assert.ok(r.ok, r.detail);
    assert.equal(r.data?.sha256, blobSha256(size));
    console.log(`paced agentless download: ${r.detail}`);
    assert.equal((await ssmProxy(lab, "laptop", ["stop", "paced"])).code, 0);
    assert.equal((await tunnel.proc.status).code, 0, tunnel.proc.tail());
    await assertLaptopClean(lab);
  });
});

/**
 * The instance's own stub resolver is where agentless DNS ends up (the real agent refuses to
 * forward to the VPC resolver's reserved address); in the lab it is the vpc's server.
 */
e2eTest("e2e: agentless applies the team's rules from Parameter Store to this laptop", async () => {
  await withStack({ agent: false, fixtures: stubResolver }, async ({ lab }) => {
    const svc = lab.serviceAddress;
    // The emulator's caller is user/emulator-user: its rule lets it reach the web server only.
    await putLabParameter(
      lab,
      "laptop",
      "/ssm-proxy/policy/team",
      `rules:\n  - principals: { users: [emulator-user] }\n    allow: [${svc}/32:80/tcp]\n`,
    );
    const tunnel = await startTunnel(lab, "laptop", {
      name: "pol",
      cidrs: [lab.vpcNetwork],
      extra: ["--mode", "agentless"],
    });
    assert.match(
      tunnel.proc.tail(),
      /team policy \/ssm-proxy\/policy: 1 rule as arn:aws:iam::\d{12}:user\/emulator-user/,
    );
    const page = await lab.probe("laptop", ["http", `http://${svc}/`, PAGE_MARKER]);
    assert.ok(page.ok, page.detail);
    // Port 81 is closed on the server ("refused" without rules): the laptop refuses it first.
    const denied = await lab.probe("laptop", ["tcp", svc, "81"], 5000);
    assert.equal(denied.detail, "unreachable");
    const dns = await lab.probe("laptop", ["dns", VPC_RESOLVER, "db.lab.internal"]);
    assert.ok(dns.ok, `the resolver's DNS is allowed with any rules: ${dns.detail}`);
    await new Promise((r) => setTimeout(r, 1200)); // the state file is written each second
    const text = await ssmProxy(lab, "laptop", ["status", "pol"]);
    assert.match(text.stdout, /; [1-9]\d* refused by the team's policy/);
    tunnel.proc.kill("SIGINT");
    await tunnel.proc.status;
    await assertLaptopClean(lab);
  });
});

async function stubResolver(lab: Lab): Promise<string> {
  const file = `${lab.dir}/fixtures.yaml`;
  await Deno.writeTextFile(file, `destinations:\n  "127.0.0.53:53": "${lab.resolver}:53"\n`);
  return file;
}
