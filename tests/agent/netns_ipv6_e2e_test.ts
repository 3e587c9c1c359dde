/**
 * IPv6 end to end in network namespaces: "instance" runs the real agent (real tun, nft NAT and
 * NAT66, real sysctls) with a dual-stack uplink veth to "vpc", a host at 2001:db8:1::2 that also
 * holds fd00:ec2::254 (standing in for the instance metadata service). A client asking for IPv6
 * gets echo and UDP answers masqueraded to the uplink's address, a spoofed source and the
 * metadata address go nowhere; stopping restores the sysctls, and `cleanup` removes the NAT a
 * stop with a state dir keeps.
 */
import assert from "node:assert/strict";
import { agentCli, canRunNetns, inNetns, lineWatcher, sh, startAgentIn } from "./netns.ts";
import { eventually } from "./helpers.ts";
import type { AgentStatus } from "../../agent/status.ts";

const VPC6 = "2001:db8:1::2";
const UPLINK6 = "2001:db8:1::1";
const METADATA6 = "fd00:ec2::254";

Deno.test({
  name: "netns e2e: IPv6 echo and UDP through NAT66; spoof and metadata refused; clean stop",
  ignore: !canRunNetns,
  async fn() {
    const tag = crypto.randomUUID().slice(0, 6);
    const inst = `ssmpa6-i-${tag}`;
    const vpc = `ssmpa6-v-${tag}`;
    const tmp = await Deno.makeTempDir({ prefix: "ssmpa6-" });
    const procs: Deno.ChildProcess[] = [];
    const watchers: Promise<void>[] = [];
    const inInst = (...args: string[]) => sh(["ip", "netns", "exec", inst, ...args], false);
    const sysctls = async () =>
      (await inInst(
        "cat",
        "/proc/sys/net/ipv6/conf/all/forwarding",
        "/proc/sys/net/ipv6/conf/eth0/accept_ra",
        "/proc/sys/net/ipv4/ip_forward",
      )).out.split("\n").filter(Boolean);
    const tables = async () => (await inInst("nft", "list", "tables")).out.trim();
    try {
      await sh(["ip", "netns", "add", inst]);
      await sh(["ip", "netns", "add", vpc]);
      await sh(
        ["ip", "link", "add", "eth0", "netns", inst, "type", "veth", "peer", "name", "eth0"]
          .concat(["netns", vpc]),
      );
      for (
        const [ns, v4, v6] of [[inst, "10.198.1.1/24", `${UPLINK6}/64`], [
          vpc,
          "10.198.1.2/24",
          `${VPC6}/64`,
        ]]
      ) {
        await sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
        await sh(["ip", "-n", ns, "addr", "add", v4, "dev", "eth0"]);
        await sh(["ip", "-n", ns, "-6", "addr", "add", v6, "dev", "eth0", "nodad"]);
        await sh(["ip", "-n", ns, "link", "set", "eth0", "up"]);
      }
      await sh(["ip", "-n", vpc, "-6", "addr", "add", `${METADATA6}/128`, "dev", "eth0", "nodad"]);
      await sh(["ip", "-n", inst, "route", "add", "default", "via", "10.198.1.2"]);
      await sh(["ip", "-n", inst, "-6", "route", "add", "default", "via", VPC6]);
      // As on EC2: the uplink takes router advertisements (the trap forwarding must avoid).
      await inInst("sysctl", "-qw", "net.ipv6.conf.eth0.accept_ra=1");
      assert.deepEqual(await sysctls(), ["0", "1", "0"]);

      const echoes: ReturnType<typeof lineWatcher>[] = [];
      for (const addr of [VPC6, METADATA6]) {
        const [cmd, ...args] = inNetns(vpc, "tests/agent/e2e/udp_echo.ts", [addr, "7000"], [
          "-A",
          "--unstable-net",
        ]);
        const p = new Deno.Command(cmd, { args, stdout: "piped", stderr: "inherit" }).spawn();
        procs.push(p);
        const out = lineWatcher(p.stdout);
        watchers.push(out.done);
        echoes.push(out);
        await out.waitFor(/ready/, 20_000);
      }
      const [echo, metadataEcho] = echoes;

      // Run 1: no state dir, so stopping removes the NAT rules itself.
      const config = `${tmp}/agent.yaml`;
      await Deno.writeTextFile(
        config,
        `listen: 127.0.0.1:7797\nnat: nft\nresolver: 10.198.1.2\nruntimeDir: ${tmp}/run\n`,
      );
      let agent = await startAgentIn(inst, config);
      procs.push(agent.child);
      watchers.push(agent.err.done);
      const log = agent.err.log.join("\n");
      assert.match(log, /NAT nft via eth0.*; IPv6 fd7a:5353:5d8b::1\/48 NAT66$/m);
      const tunName = /tun (\S+) 100\.64\.0\.1\/16/.exec(log)?.[1];
      assert.ok(tunName, log);
      assert.deepEqual(await sysctls(), ["1", "2", "1"], "forwarding on, accept_ra 2 first");
      assert.match(
        (await inInst("ip", "-6", "addr", "show", "dev", tunName)).out,
        /inet6 fd7a:5353:5d8b::1\/48/,
      );
      assert.match(
        (await inInst("nft", "list", "table", "ip6", "ssm_proxy")).out,
        /ip6 saddr fd7a:5353:5d8b::\/48 oifname "eth0" masquerade/,
      );

      const client = await sh(
        inNetns(inst, "tests/agent/e2e/client6.ts", ["7797", VPC6, "7000", METADATA6]),
      );
      const r = JSON.parse(client.out.trim().split("\n").at(-1)!);
      assert.deepEqual(
        [r.welcome.address, r.welcome.address6, r.welcome.peer6],
        ["100.64.0.2", "fd7a:5353:5d8b::2", "fd7a:5353:5d8b::1"],
      );
      assert.deepEqual(
        [r.echo.type, r.echo.src, r.echo.dst, r.echo.payload, r.echo.checksumOk],
        [129, VPC6, "fd7a:5353:5d8b::2", "ping6", true],
        "an echo reply, de-NATed to the tunnel's address",
      );
      assert.deepEqual(
        [r.udp.src, r.udp.dst, r.udp.srcPort, r.udp.dstPort, r.udp.checksumOk],
        [VPC6, "fd7a:5353:5d8b::2", 7000, 40000, true],
      );
      assert.equal(r.udp.payload, `${UPLINK6}|hello-v6`, "the VPC saw the uplink's address");
      assert.deepEqual(
        r.late,
        [{
          src: "fd7a:5353:5d8b::1",
          dst: "fd7a:5353:5d8b::2",
          checksumOk: true,
          type: 1,
          code: 1,
        }],
        "the metadata packet is answered by the agent (administratively prohibited), " +
          "the spoofed one not at all",
      );
      assert.ok(
        echo.log.every((l) => l === "ready" || l === `got ${UPLINK6}`),
        echo.log.join("\n"),
      );
      assert.deepEqual(metadataEcho.log, ["ready"], "fd00:ec2::254 never saw a packet");
      const counters = await eventually(
        async () => {
          const s = JSON.parse(await Deno.readTextFile(`${tmp}/run/status.json`)) as AgentStatus;
          return s.counters.spoofed === 1 && s.counters.denied === 1 ? s.counters : undefined;
        },
        5000,
        "spoofed=1 denied=1 in the status file",
      );
      assert.equal(counters.notIpv4, 0);

      agent.child.kill("SIGTERM");
      assert.equal((await agent.child.status).code, 0, agent.err.log.join("\n"));
      procs.splice(procs.indexOf(agent.child), 1);
      assert.deepEqual(await sysctls(), ["0", "1", "0"], "sysctls as they were");
      assert.equal(await tables(), "", "no nft table left");

      // Run 2: a state dir keeps the NAT rules at stop; `cleanup` removes both tables.
      await Deno.writeTextFile(config, `stateDir: ${tmp}/state\n`, { append: true });
      agent = await startAgentIn(inst, config);
      procs.push(agent.child);
      watchers.push(agent.err.done);
      agent.child.kill("SIGTERM");
      assert.equal((await agent.child.status).code, 0, agent.err.log.join("\n"));
      procs.splice(procs.indexOf(agent.child), 1);
      assert.deepEqual(await sysctls(), ["0", "1", "0"]);
      assert.match(await tables(), /table ip6 ssm_proxy/);
      const cleaned = await agentCli(
        ["cleanup", "--config", config, "--runtime-dir", `${tmp}/run`],
        inst,
      );
      assert.ok(cleaned.ok, cleaned.out);
      assert.match(cleaned.stdout, /^removed nft table ip ssm_proxy$/m);
      assert.match(cleaned.stdout, /^removed nft table ip6 ssm_proxy$/m);
      assert.equal(await tables(), "", "cleanup leaves no nft table");
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
