/**
 * The full tunnel (`start --all-traffic`) end to end, in the lab with its "internet"
 * (createLab({ internet: true })): everything the laptop sends, HTTP, UDP, ICMP and every DNS
 * name, goes through the VPC (the public host sees the instance's address), nothing but the
 * emulator's endpoint leaves lab0, not even while the tunnel heals, and stop, or kill -9 and
 * the next command, gives the routes and resolv.conf back byte for byte, the pin included.
 */
import assert from "node:assert/strict";
import { createLab, type Lab, type LabProcess, type Role } from "../../scripts/lab.ts";
import { startLeakCounter } from "../../scripts/lab/leaks.ts";
import { must } from "../../scripts/lab/proc.ts";
import {
  clientEnv,
  EMULATOR_PORT,
  ssmProxy,
  ssmProxyArgv,
  startAgent,
  startEmulator,
  startTunnel,
  stateDir,
  stateFiles,
  tunnelStatus,
} from "../../scripts/lab/stack.ts";
import { assertErrorLine, assertLaptopClean, e2eTest, resolvConf } from "../support/lab.ts";
import { fault, installFaultScripts, sleep } from "../support/lab_faults.ts";

/** What the lab's laptops had before any tunnel: the system's nameserver (nothing answers). */
const ORIGINAL_NAMESERVER = "192.0.2.53";

e2eTest(
  "e2e: full tunnel carries everything, leaks nothing (healing too), and undoes itself",
  async (t) => {
    const lab = await createLab({ internet: true, handleSignals: false });
    const procs: [string, LabProcess | undefined][] = [];
    let ok = false;
    try {
      const emulator = await startEmulator(lab);
      // A lease store, so the agent restarted below gives the tunnel its address back.
      const agentExtra = `stateDir: ${lab.dir}/agent-state`;
      let agent = await startAgent(lab, agentExtra);
      procs.push(["emulator", emulator], ["agent", agent]);
      await installFaultScripts(lab);
      const before = await snapshot(lab);
      assert.match(before.routes, /^default via .* dev lab0/m, "the laptop's own default route");

      await t.step("--all-traffic with agentless mode or --no-dns: refused at once", async () => {
        for (const bad of [["--mode", "agentless"], ["--no-dns"]]) {
          const t0 = performance.now();
          const r = await failingStart(lab, ["--all-traffic", ...bad]);
          const line = assertErrorLine(r, /--all-traffic/);
          assert.equal(r.code, 2, `${bad.join(" ")}: exit code`);
          assert.equal(r.stderr.trim().split("\n").length, 1, `one line only:\n${r.stderr}`);
          console.log(`  ${bad.join(" ")}: ${line} (${Math.round(performance.now() - t0)} ms)`);
          assert.deepEqual(await snapshot(lab), before, "a refused start changed the laptop");
          assert.deepEqual(await stateFiles(lab, "laptop"), []);
        }
      });

      const tun = await startTunnel(lab, "laptop", {
        name: "ft",
        cidrs: [],
        extra: ["--all-traffic"],
      });
      procs.push(["start ft", tun.proc]);
      console.log(`full tunnel up in ${Math.round(tun.ms)} ms`);
      const ifname = tun.status.interface;

      await t.step("up: half-defaults on the tun, the emulator pinned outside it", async () => {
        assert.equal(tun.status.status, "up");
        const routes = (await lab.exec("laptop", ["ip", "-4", "route", "show"])).stdout;
        for (const half of ["0.0.0.0/1", "128.0.0.0/1"]) {
          assert.match(routes, new RegExp(`^${re(half)} dev ${ifname} `, "m"), routes);
        }
        // The pin: the emulator (the tunnel's AWS endpoint) the way it went before, on lab0.
        const pin =
          (await lab.exec("laptop", ["ip", "-4", "route", "show", `${lab.instanceAddress}/32`]))
            .stdout.trim();
        assert.match(pin, /dev lab0\b/, `no pin for ${lab.instanceAddress}:\n${routes}`);
        assert.doesNotMatch(pin, new RegExp(ifname));
        const state = JSON.parse(
          await Deno.readTextFile(`${stateDir(lab, "laptop")}/ft.json`),
        ) as { pins?: { cidr: string; ifname: string }[] };
        assert.deepEqual(state.pins?.map((p) => [p.cidr, p.ifname]), [
          [`${lab.instanceAddress}/32`, "lab0"],
        ]);
        assert.match(await routeGet(lab, lab.internetAddress!), new RegExp(`dev ${ifname}\\b`));
        assert.match(await routeGet(lab, lab.instanceAddress), /dev lab0\b/);
      });

      await t.step("up: HTTP, UDP and ping to the internet go out of the VPC", async () => {
        assert.equal(await whoami(lab), `${lab.instanceVpcAddress}\n`, "whoami through the tunnel");
        const echo = await lab.probe("laptop", ["udp", lab.internetAddress!, "7"], 3000);
        assert.ok(echo.ok, `UDP echo: ${echo.detail}`);
        const ping = await pingOnce(lab);
        assert.ok(ping.ok, `ping: ${ping.out}`);
      });

      await t.step(
        "up: every name is asked of the VPC resolver, never the old nameserver",
        async () => {
          assert.match(await resolvConf(lab, "laptop"), /^nameserver 127\.0\.0\.153$/m);
          const label = `ft${crypto.randomUUID().slice(0, 6)}`;
          const vpcAsked = await counter(
            lab,
            "vpc",
            "input",
            `iifname "lab0" ip daddr ${lab.resolver} udp dport 53 @th,160,${
              8 * (label.length + 1)
            } ${qnameLabel(label)}`,
          );
          const oldAsked = await counter(
            lab,
            "laptop",
            "output",
            `ip daddr ${ORIGINAL_NAMESERVER}`,
          );
          try {
            const db = await lab.exec("laptop", ["getent", "ahostsv4", "db.lab.internal"]);
            assert.ok(db.success, `getent db.lab.internal: exit ${db.code}\n${tun.proc.tail()}`);
            assert.match(db.stdout, new RegExp(`^${re(lab.dnsTable["db.lab.internal"])} `, "m"));
            // A name no one has: NXDOMAIN from the VPC resolver (the old one would time out).
            const any = await lab.exec("laptop", ["getent", "ahostsv4", `${label}.example.com`]);
            assert.equal(any.code, 2, `getent ${label}.example.com: ${any.stdout}${any.stderr}`);
            assert.ok(await vpcAsked.packets() >= 1, `the VPC resolver was not asked ${label}`);
            assert.equal(await oldAsked.packets(), 0, `${ORIGINAL_NAMESERVER} was asked`);
          } finally {
            await vpcAsked.stop();
            await oldAsked.stop();
          }
        },
      );

      await t.step("no leaks on lab0: traffic, a closed session, an agent restart", async () => {
        const leaks = await startLeakCounter(lab, "laptop", { allow: [lab.instanceAddress] });
        const oldAsked = await counter(lab, "laptop", "output", `ip daddr ${ORIGINAL_NAMESERVER}`);
        const noLeaks = async (when: string) => {
          assert.equal(
            await leaks.packets(),
            0,
            `${when}: leaked to ${await leaks.destinations()}`,
          );
          assert.equal(await oldAsked.packets(), 0, `${when}: ${ORIGINAL_NAMESERVER} was asked`);
        };
        try {
          await traffic(lab, "up");
          await noLeaks("up");

          // The emulator ends the session (agent side gone): the stripe rejoins on a new one,
          // while pings and names keep going into the tunnel.
          const first = (await tunnelStatus(lab, "laptop", "ft"))!.sessions[0];
          const during = Promise.all([
            lab.exec("laptop", ["ping", "-c", "10", "-i", "0.2", "-W", "1", lab.internetAddress!]),
            lab.exec("laptop", ["getent", "ahostsv4", "db.lab.internal"]),
          ]);
          await fault(lab, { action: "channelClosed" });
          const ms = await waitHealed(lab, 1);
          await during;
          const s = await tunnelStatus(lab, "laptop", "ft");
          assert.notEqual(s?.sessions[0], first, "a new session after channel_closed");
          console.log(`  healed ${Math.round(ms)} ms after channel_closed`);
          await traffic(lab, "after channel_closed");
          await noLeaks("after channel_closed");

          // kill -9 the agent: while it is gone, traffic and names go into the tun and no
          // further, and the emulator (where healing goes) is still reached outside it.
          agent.kill("SIGKILL");
          await agent.status;
          const t0 = performance.now();
          const [down, name, , emu] = await Promise.all([
            lab.exec("laptop", ["curl", "-s", "--max-time", "2", `http://${lab.internetAddress}/`]),
            lab.exec("laptop", ["getent", "ahostsv4", "web.lab.internal"]),
            pingOnce(lab),
            lab.probe("laptop", ["tcp", lab.instanceAddress, String(EMULATOR_PORT)], 2000),
          ]);
          console.log(`  agent down: curl exit ${down.code}, getent exit ${name.code}`);
          assert.notEqual(down.code, 0, "whoami answered with the agent gone: not through it?");
          assert.ok(emu.ok, `the emulator is not reachable while healing: ${emu.detail}`);
          assert.match(await routeGet(lab, lab.instanceAddress), /dev lab0\b/);
          await noLeaks("agent down");
          agent = await startAgent(lab, agentExtra);
          procs.push(["agent (restarted)", agent]);
          await waitHealed(lab, 2);
          console.log(
            `  back up ${Math.round(performance.now() - t0)} ms after kill -9 of the agent`,
          );
          const after = await tunnelStatus(lab, "laptop", "ft");
          assert.equal(after?.address, tun.status.address, "the agent gave the address back");
          await traffic(lab, "after the agent restart");
          await noLeaks("after the agent restart");
        } finally {
          await leaks.stop();
          await oldAsked.stop();
        }
      });

      await t.step("SIGINT: routes and resolv.conf byte for byte as before", async () => {
        tun.proc.kill("SIGINT");
        assert.equal((await tun.proc.status).code, 0, tun.proc.tail());
        assert.deepEqual(await snapshot(lab), before);
        await assertLaptopClean(lab);
      });

      await t.step("kill -9, then status: the pin and resolv.conf are undone too", async () => {
        const crash = await startTunnel(lab, "laptop", {
          name: "ft9",
          cidrs: [],
          extra: ["--all-traffic"],
        });
        procs.push(["start ft9", crash.proc]);
        crash.proc.kill("SIGKILL");
        await crash.proc.status;
        // What the crash left: the pin (it is not on the tun) and our resolv.conf.
        const left = await snapshot(lab);
        assert.match(left.routes, new RegExp(`^${re(lab.instanceAddress)} dev lab0`, "m"));
        assert.notEqual(left.resolv, before.resolv);
        assert.doesNotMatch(left.routes, /^0\.0\.0\.0\/1 /m, "the half-defaults went with the tun");
        const r = await ssmProxy(lab, "laptop", ["status"]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, /cleaned up tunnel "ft9"/);
        assert.deepEqual(await snapshot(lab), before);
        await assertLaptopClean(lab);
      });
      ok = true;
    } finally {
      if (!ok) {
        for (const [what, p] of procs) if (p) console.error(`--- ${what}\n${p.tail(25)}`);
      }
      await lab.destroy();
    }
  },
);

/**
 * The laptop's routes and resolv.conf, to compare byte for byte: IPv4 in every table, IPv6 in
 * the main one (the local table gains lab0's link-local address whenever its DAD ends).
 */
async function snapshot(lab: Lab): Promise<{ routes: string; resolv: string }> {
  const ip = (...a: string[]) => must(["ip", "-n", lab.ns("laptop"), ...a]);
  return {
    routes: await ip("-4", "route", "show", "table", "all") + await ip("-6", "route", "show"),
    resolv: await resolvConf(lab, "laptop"),
  };
}

async function routeGet(lab: Lab, address: string): Promise<string> {
  return await must(["ip", "-n", lab.ns("laptop"), "route", "get", address]);
}

/** The whoami page from the laptop: the address the internet host saw it come from. */
async function whoami(lab: Lab): Promise<string> {
  const r = await lab.exec("laptop", [
    "curl",
    "-sS",
    "--max-time",
    "5",
    `http://${lab.internetAddress}/`,
  ]);
  assert.ok(r.success, `curl ${lab.internetAddress}: ${r.stderr}`);
  return r.stdout;
}

async function pingOnce(lab: Lab): Promise<{ ok: boolean; out: string }> {
  const r = await lab.exec("laptop", ["ping", "-c", "1", "-W", "2", lab.internetAddress!]);
  return { ok: r.success, out: r.stdout + r.stderr };
}

/** HTTP, UDP, ping and a name, all of which must work. */
async function traffic(lab: Lab, when: string): Promise<void> {
  const [who, echo, ping, name] = await Promise.all([
    whoami(lab),
    lab.probe("laptop", ["udp", lab.internetAddress!, "7"], 3000),
    pingOnce(lab),
    lab.exec("laptop", ["getent", "ahostsv4", "cache.lab.internal"]),
  ]);
  assert.equal(who, `${lab.instanceVpcAddress}\n`, `${when}: whoami`);
  assert.ok(echo.ok, `${when}: UDP echo: ${echo.detail}`);
  assert.ok(ping.ok, `${when}: ping: ${ping.out}`);
  assert.match(name.stdout, new RegExp(`^${re(lab.dnsTable["cache.lab.internal"])} `, "m"), when);
}

interface Health {
  status: string;
  health?: { reconnects: number };
}

/** Milliseconds until status says up after at least `reconnects` reconnects. */
async function waitHealed(lab: Lab, reconnects: number, ms = 20_000): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    const s = await tunnelStatus(lab, "laptop", "ft") as unknown as Health | undefined;
    if (s?.status === "up" && (s.health?.reconnects ?? 0) >= reconnects) {
      return performance.now() - t0;
    }
    await sleep(100);
  }
  throw new Error(
    `not healed in ${ms} ms: ${JSON.stringify(await tunnelStatus(lab, "laptop", "ft"))}`,
  );
}

/** Packets matching `rule` at `hook` in `role`, counted in an nft table of their own. */
async function counter(
  lab: Lab,
  role: Role,
  hook: "input" | "output",
  rule: string,
): Promise<{ packets(): Promise<number>; stop(): Promise<void> }> {
  const table = `ssmp_ft_${crypto.randomUUID().slice(0, 8)}`;
  const nft = (...a: string[]) => must(["ip", "netns", "exec", lab.ns(role), "nft", ...a]);
  const script = [
    `table inet ${table} {`,
    `  counter hits { }`,
    `  chain c { type filter hook ${hook} priority 0; policy accept; ${rule} counter name hits; }`,
    `}`,
    "",
  ].join("\n");
  const file = `${lab.dir}/${table}.nft`;
  await Deno.writeTextFile(file, script);
  try {
    await nft("-f", file);
  } finally {
    await Deno.remove(file).catch(() => {});
  }
  return {
    async packets() {
      const doc = JSON.parse(await nft("-j", "list", "counter", "inet", table, "hits"));
      return doc.nftables.find((e: { counter?: unknown }) => e.counter).counter.packets;
    },
    async stop() {
      await nft("delete", "table", "inet", table).catch(() => {});
    },
  };
}

/** A DNS name's first label as it is on the wire (length byte, then the bytes), in hex. */
function qnameLabel(label: string): string {
  const bytes = [label.length, ...new TextEncoder().encode(label)];
  return `0x${bytes.map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

function re(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/** A `start` expected to fail: it must exit on its own within 30 s. */
async function failingStart(
  lab: Lab,
  extra: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = lab.spawn(
    "laptop",
    ssmProxyArgv(["start", "--target", "name:bastion", "--name", "bad", ...extra]),
    clientEnv(lab, "laptop"),
    "start (refused)",
  );
  const timer = setTimeout(() => p.kill("SIGKILL"), 30_000);
  const st = await p.status;
  clearTimeout(timer);
  assert.ok(st.signal === null, `start did not exit on its own:\n${p.tail()}`);
  return { code: st.code, stdout: "", stderr: p.output() };
}
