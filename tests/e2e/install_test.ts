/**
 * From nothing to a tunnel: the instance namespace starts without ssm-proxy-agent; `start`
 * says so in one line; `start --install-agent` uploads the agent over a Session Manager shell
 * session (the emulator's pty), installs it, the unit starts it, and the tunnel carries traffic
 * into the VPC; `agent status` sees the tunnel; `agent uninstall` stops the agent and removes it.
 *
 * systemd does not run in a namespace, so the `systemctl` on the emulated shell's PATH is a
 * small stand-in that starts and stops the installed binary the way the unit would.
 */
import assert from "node:assert/strict";
import { createLab } from "../../scripts/lab.ts";
import {
  AGENT_PORT,
  agentConfig,
  REPO,
  ssmProxy,
  startEmulator,
  startTunnel,
} from "../../scripts/lab/stack.ts";
import { V8_FLAGS } from "../../src/runtime.ts";
import { assertErrorLine, assertLaptopClean, e2eTest } from "../support/lab.ts";

const SYSTEMCTL = `#!/bin/sh
# systemd stand-in for the lab: runs the installed unit's binary in the background.
B="$SSM_PROXY_INSTALL_ROOT/usr/local/bin/ssm-proxy-agent"
C="$SSM_PROXY_INSTALL_ROOT/etc/ssm-proxy/agent.yaml"
P="$FAKE_SYSTEMD/agent.pid"
echo "$*" >> "$FAKE_SYSTEMD/calls"
stop() { [ -f "$P" ] && kill "$(cat "$P")" 2>/dev/null; i=0; while [ -f "$P" ] && kill -0 "$(cat "$P")" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.2; i=$((i+1)); done; rm -f "$P"; }
case "$1" in
  restart) stop; setsid "$B" serve --config "$C" >>"$FAKE_SYSTEMD/agent.log" 2>&1 </dev/null & echo $! > "$P" ;;
  disable) [ "$2" = --now ] && stop ;;
  is-active) if [ -f "$P" ] && kill -0 "$(cat "$P")" 2>/dev/null; then echo active; else echo inactive; exit 3; fi ;;
  is-enabled) echo enabled ;;
esac
exit 0
`;

e2eTest(
  "e2e: start finds no agent, installs it over Session Manager, tunnels; uninstall removes it",
  async (t) => {
    const lab = await createLab({ laptops: 1, handleSignals: false });
    let emulator: Awaited<ReturnType<typeof startEmulator>> | undefined;
    const sysd = `${lab.dir}/systemd`;
    let ok = false;
    try {
      const root = `${lab.dir}/instance-root`;
      const bin = `${lab.dir}/fakebin`;
      await Deno.mkdir(`${root}/etc/ssm-proxy`, { recursive: true });
      await Deno.mkdir(bin);
      await Deno.mkdir(sysd);
      await Deno.writeTextFile(`${bin}/systemctl`, SYSTEMCTL, { mode: 0o755 });
      await Deno.writeTextFile(`${root}/etc/ssm-proxy/agent.yaml`, agentConfig(lab));
      const agentBinary = `${lab.dir}/ssm-proxy-agent-linux-x64`;
      await Deno.writeTextFile(
        agentBinary,
        `#!/bin/sh\nexec ${Deno.execPath()} run -A --cached-only --v8-flags=${V8_FLAGS} ${REPO}agent/main.ts "$@"\n`,
        { mode: 0o755 },
      );
      emulator = await startEmulator(lab, {
        env: {
          SSM_PROXY_INSTALL_ROOT: root,
          FAKE_SYSTEMD: sysd,
          PATH: `${bin}:${Deno.env.get("PATH")}`,
        },
      });
      const cidrs = [lab.vpcNetwork];
      /** list-instances --agents: what bastion's agent says it is. */
      const agentColumn = async () => {
        const r = await ssmProxy(lab, "laptop", ["list-instances", "--agents", "--json"]);
        assert.equal(r.code, 0, r.stderr);
        const rows = JSON.parse(r.stdout) as { name: string; agentVersion: string | null }[];
        return rows.find((x) => x.name === "bastion")?.agentVersion;
      };

      await t.step("--mode agent without an agent fails in one line naming the fix", async () => {
        // (The default, --mode auto, would run agentless instead: tests/e2e/agentless_test.ts.)
        const r = await ssmProxy(lab, "laptop", [
          "start",
          "-t",
          "name:bastion",
          "--cidr",
          cidrs[0],
          "--mode",
          "agent",
        ]);
        const line = assertErrorLine(r, /ssm-proxy-agent is not installed or not running there/);
        assert.match(
          line,
          /fix: ssm-proxy agent install --target i-\w+, or start again with --install-agent$/,
        );
        assert.equal(r.code, 5);
        await assertLaptopClean(lab);
        assert.equal(await agentColumn(), "none");
      });

      await t.step("start --install-agent installs it and the tunnel carries traffic", async () => {
        const tun = await startTunnel(lab, "laptop", {
          name: "inst",
          cidrs,
          extra: ["--install-agent", "--agent-binary", agentBinary],
          timeoutMs: 90_000,
        });
        assert.match(tun.proc.tail(), /installed ssm-proxy-agent \d/);
        assert.ok((await lab.probe("laptop", ["udp", lab.serviceAddress, "7"])).ok);
        const s = await ssmProxy(lab, "laptop", [
          "agent",
          "status",
          "-t",
          "name:bastion",
          "--json",
        ]);
        assert.equal(s.code, 0, s.stderr);
        const doc = JSON.parse(s.stdout);
        assert.equal(doc.installed, true);
        assert.equal(doc.active, "active");
        assert.equal(doc.agent?.tunnels?.length ?? doc.agent?.tunnels?.count, 1, s.stdout);
        assert.match(await agentColumn() ?? "", /^\d+\.\d+\.\d+/);
        const stop = await ssmProxy(lab, "laptop", ["stop", "inst"]);
        assert.equal(stop.code, 0, stop.stderr);
        await tun.proc.status;
        await assertLaptopClean(lab);
      });

      await t.step(
        "uninstall stops the agent and removes it, its NAT table and its state",
        async () => {
          const u = await ssmProxy(lab, "laptop", ["agent", "uninstall", "-t", "name:bastion"]);
          assert.equal(u.code, 0, u.stderr);
          assert.equal(await exists(`${root}/usr/local/bin/ssm-proxy-agent`), false);
          assert.equal(await exists(`${root}/etc/systemd/system/ssm-proxy-agent.service`), false);
          assert.equal(await exists(`${root}/etc/ssm-proxy/agent.yaml`), true, "config is kept");
          const nft = await lab.exec("instance", ["nft", "list", "tables"]);
          assert.doesNotMatch(nft.stdout, /ssm_proxy/);
          const port = await lab.exec("instance", [
            "sh",
            "-c",
            `ss -ltn | grep -c :${AGENT_PORT} || true`,
          ]);
          assert.equal(port.stdout.trim(), "0", "the agent still listens");
        },
      );
      ok = true;
    } finally {
      if (!ok) {
        if (emulator) console.error(`--- emulator (last lines)\n${emulator.tail(15)}`);
        const log = await Deno.readTextFile(`${sysd}/agent.log`).catch(() => "");
        console.error(`--- installed agent (last lines)\n${log.split("\n").slice(-15).join("\n")}`);
      }
      await Deno.readTextFile(`${sysd}/agent.pid`).then(
        (pid) => Deno.kill(Number(pid), "SIGTERM"),
        () => {},
      ).catch(() => {});
      await lab.destroy();
    }
  },
);

async function exists(p: string): Promise<boolean> {
  return await Deno.lstat(p).then(() => true, () => false);
}
