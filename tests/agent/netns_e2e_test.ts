/**
 * End to end in network namespaces (DESIGN §7): namespace "instance" runs the real agent (real
 * tun, nft NAT) and is joined by a veth to namespace "vpc", which runs a UDP echo server on
 * 10.198.1.2. A client inside "instance" speaks the wire protocol to the agent's loopback port
 * and sends a crafted packet from its tunnel address; the echo comes back masqueraded and
 * de-NATed. Stopping the agent must leave no tun, no nft table and ip_forward as it was.
 */
import assert from "node:assert/strict";
import { canRunNetns, lineWatcher, sh } from "./netns.ts";

const root = new URL("../../", import.meta.url).pathname;

Deno.test({
  name: "netns e2e: UDP echo through the agent's tun and nft masquerade, clean stop",
  ignore: !canRunNetns,
  async fn() {
    const tag = crypto.randomUUID().slice(0, 6);
    const inst = `ssmpa-i-${tag}`;
    const vpc = `ssmpa-v-${tag}`;
    const tmp = await Deno.makeTempDir({ prefix: "ssmpa-" });
    const procs: Deno.ChildProcess[] = [];
    const watchers: Promise<void>[] = [];
    try {
      await sh(["ip", "netns", "add", inst]);
      await sh(["ip", "netns", "add", vpc]);
      await sh([
        "ip",
        "link",
        "add",
        "eth0",
        "netns",
        inst,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        vpc,
      ]);
      for (const [ns, addr] of [[inst, "10.198.1.1/24"], [vpc, "10.198.1.2/24"]]) {
        await sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
        await sh(["ip", "-n", ns, "addr", "add", addr, "dev", "eth0"]);
        await sh(["ip", "-n", ns, "link", "set", "eth0", "up"]);
      }
      // The agent finds its uplink from the default route, as on EC2.
      await sh(["ip", "-n", inst, "route", "add", "default", "via", "10.198.1.2"]);

      const echo = new Deno.Command("ip", {
        args: [
          "netns",
          "exec",
          vpc,
          Deno.execPath(),
          "run",
          "-A",
          "--unstable-net",
          `${root}tests/agent/e2e/udp_echo.ts`,
          "10.198.1.2",
          "7000",
        ],
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      procs.push(echo);
      const echoOut = lineWatcher(echo.stdout);
      watchers.push(echoOut.done);
      await echoOut.waitFor(/ready/, 20_000);

      const config = `${tmp}/agent.yaml`;
      // runtimeDir: the status file stays in the test's directory, not the host's /run.
      await Deno.writeTextFile(
        config,
        `listen: 127.0.0.1:7797\nnat: nft\nresolver: 10.198.1.2\nruntimeDir: ${tmp}/run\n`,
      );
      const agent = new Deno.Command("ip", {
        args: [
          "netns",
          "exec",
          inst,
          Deno.execPath(),
          "run",
          "-A",
          `${root}agent/main.ts`,
          "serve",
          "--config",
          config,
        ],
        stdout: "null",
        stderr: "piped",
      }).spawn();
      procs.push(agent);
      const agentErr = lineWatcher(agent.stderr);
      watchers.push(agentErr.done);
      await agentErr.waitFor(/listening on/, 20_000);
      assert.match(agentErr.log.join("\n"), /NAT nft via eth0/);

      const tunName = /tun (\S+) 100\.64\.0\.1\/16/.exec(agentErr.log.join("\n"))?.[1];
      assert.ok(tunName, agentErr.log.join("\n"));
      assert.equal(
        (await sh(["ip", "netns", "exec", inst, "cat", "/proc/sys/net/ipv4/ip_forward"])).out
          .trim(),
        "1",
      );
      assert.match(
        (await sh(["ip", "netns", "exec", inst, "nft", "list", "table", "ip", "ssm_proxy"])).out,
        /masquerade/,
      );

      const client = await sh([
        "ip",
        "netns",
        "exec",
        inst,
        Deno.execPath(),
        "run",
        "-A",
        `${root}tests/agent/e2e/client.ts`,
        "7797",
        "10.198.1.2",
        "7000",
      ]);
      const result = JSON.parse(client.out.trim().split("\n").at(-1)!);
      assert.equal(result.welcome.address, "100.64.0.2");
      assert.equal(result.welcome.peer, "100.64.0.1");
      assert.equal(result.welcome.resolver, "10.198.1.2");
      assert.deepEqual(
        [result.reply.src, result.reply.dst, result.reply.srcPort, result.reply.dstPort],
        ["10.198.1.2", "100.64.0.2", 7000, 40000],
      );
      assert.equal(
        result.reply.payload,
        "10.198.1.1|hello-vpc",
        "the VPC saw the masqueraded source",
      );

      agent.kill("SIGTERM");
      const status = await agent.status;
      procs.splice(procs.indexOf(agent), 1);
      assert.equal(status.code, 0, agentErr.log.join("\n"));
      assert.equal(
        (await sh(["ip", "netns", "exec", inst, "nft", "list", "table", "ip", "ssm_proxy"], false))
          .ok,
        false,
      );
      assert.doesNotMatch(
        (await sh(["ip", "-n", inst, "-o", "link"])).out,
        new RegExp(`${tunName}[:@]`),
      );
      assert.equal(
        (await sh(["ip", "netns", "exec", inst, "cat", "/proc/sys/net/ipv4/ip_forward"])).out
          .trim(),
        "0",
      );
    } finally {
      for (const p of procs) {
        try {
          p.kill("SIGKILL");
        } catch { /* exited */ }
        await p.status;
      }
      await Promise.allSettled(watchers);
      await sh(["ip", "netns", "del", inst], false);
      await sh(["ip", "netns", "del", vpc], false);
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
