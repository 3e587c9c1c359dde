/**
 * Stop signals end to end, the server side (issue 13 item 7): `ssm-proxy emulator` exits 0 within
 * 1 s of SIGINT/SIGTERM when idle, after serving Port and shell sessions and while serving them
 * (no shell process outlives it); `ssm-proxy-agent serve` likewise, idle, busy and with a
 * connection that never says HELLO, its tun and NAT removed. The client side is signals_test.ts.
 */
import assert from "node:assert/strict";
import {
  clientEnv,
  ssmProxyArgv,
  startAgent,
  startEmulator,
  startTunnel,
} from "../../scripts/lab/stack.ts";
import { assertLaptopClean, e2eTest, type Stack, withStack } from "../support/lab.ts";
import { installFaultScripts, sleep } from "../support/lab_faults.ts";
import { endTransfer, signalAndTime, transfer } from "../support/signals.ts";

// ---- emulator -----------------------------------------------------------------------------------

e2eTest(
  "e2e signals: the emulator exits 0 within 1 s after serving each kind of session",
  async (t) => {
    await withStack({}, async (s: Stack) => {
      const { lab } = s;
      await installFaultScripts(lab);
      let emulator = s.emulator;
      const restart = async () => {
        emulator = await startEmulator(lab);
      };
      const shellSessions = async () =>
        (await lab.exec("instance", ["pgrep", "-f", "sleep 3127"])).stdout.trim();

      await t.step("SIGTERM when idle", async () => {
        await signalAndTime(emulator, "SIGTERM", "emulator idle");
        await restart();
      });
      await t.step(
        "SIGINT after serving a Port session (tunnel stopped)",
        async () => {
          const tun = await startTunnel(lab, "laptop", { name: "e1", cidrs: [lab.vpcNetwork] });
          await signalAndTime(tun.proc, "SIGINT", "start (to end its sessions)");
          await signalAndTime(emulator, "SIGINT", "emulator after Port");
          await restart();
        },
      );
      await t.step(
        "SIGTERM with a Port session open (tunnel up, transfer running)",
        async () => {
          const tun = await startTunnel(lab, "laptop", { name: "e2", cidrs: [lab.vpcNetwork] });
          const busy = transfer(lab, `http://${lab.serviceAddress}/blob?size=${64 << 20}`);
          await sleep(1500);
          assert.ok(!busy.exited, busy.tail());
          await signalAndTime(emulator, "SIGTERM", "emulator during Port");
          await signalAndTime(tun.proc, "SIGTERM", "start while healing after the emulator left");
          await endTransfer(busy);
          await assertLaptopClean(lab);
          await restart();
        },
      );
      for (const sig of ["SIGTERM", "SIGINT"] as const) {
        await t.step(
          `${sig} after agent install and status (shell sessions served)`,
          async () => {
            // agent status only reads (install would write to this machine without an install root,
            // tests/e2e/install_test.ts); its shell session is the kind install uses.
            const r = await lab.exec(
              "laptop",
              ssmProxyArgv(["agent", "status", "-t", "name:bastion", "--json"]),
              clientEnv(lab, "laptop"),
            );
            assert.ok(r.code === 0 || r.code === 3, r.stdout + r.stderr);
            await signalAndTime(emulator, sig, "emulator after a shell session");
            await restart();
          },
        );
      }
      await t.step(
        "SIGTERM with a shell session running a program: no process left",
        async () => {
          const script = `${lab.dir}/shell_client.ts`;
          await Deno.writeTextFile(
            script,
            `import { RemoteScript } from "${new URL(
              "../../src/install/remote.ts",
              import.meta.url,
            )}";
await RemoteScript.start({}, "i-0123456789abcdef0", "sleep 3127");
await new Promise(() => {});
`,
          );
          const client = lab.spawn(
            "laptop",
            [
              Deno.execPath(),
              "run",
              "-A",
              "--config",
              `${new URL("../../deno.json", import.meta.url).pathname}`,
              script,
            ],
            clientEnv(lab, "laptop"),
            "shell client",
          );
          for (let i = 0; i < 100 && !(await shellSessions()); i++) await sleep(100);
          assert.ok(await shellSessions(), `no shell session started:\n${emulator.tail()}`);
          await signalAndTime(emulator, "SIGTERM", "emulator during a shell session");
          assert.equal(
            await shellSessions(),
            "",
            "the shell session's process outlived the emulator",
          );
          client.kill("SIGKILL");
          await client.status;
        },
      );
    });
  },
);

// ---- ssm-proxy-agent serve ----------------------------------------------------------------------

e2eTest("e2e signals: ssm-proxy-agent serve exits 0 within 1 s, idle and busy", async (t) => {
  await withStack({}, async (s: Stack) => {
    const { lab } = s;
    await installFaultScripts(lab);
    let agent = s.agent;
    const nftTables = async () =>
      (await lab.exec("instance", ["nft", "list", "tables"])).stdout.includes("ssm_proxy");
    const tunGone = async () =>
      !/ssmp\d/.test((await lab.exec("instance", ["ip", "-o", "link", "show"])).stdout);

    await t.step("SIGINT when idle", async () => {
      await signalAndTime(agent, "SIGINT", "agent idle");
      assert.ok(!(await nftTables()), "NAT rules left");
      assert.ok(
        await tunGone(),
        `tun left: ${(await lab.exec("instance", ["ip", "-o", "link", "show"])).stdout}`,
      );
      agent = await startAgent(lab);
    });
    await t.step("SIGTERM with a tunnel carrying a transfer", async () => {
      const tun = await startTunnel(lab, "laptop", { name: "a1", cidrs: [lab.vpcNetwork] });
      const busy = transfer(lab, `http://${lab.serviceAddress}/blob?size=${64 << 20}`);
      await sleep(1500);
      assert.ok(!busy.exited, busy.tail());
      await signalAndTime(agent, "SIGTERM", "agent busy");
      assert.ok(!(await nftTables()), "NAT rules left");
      assert.ok(
        await tunGone(),
        `tun left: ${(await lab.exec("instance", ["ip", "-o", "link", "show"])).stdout}`,
      );
      await signalAndTime(tun.proc, "SIGTERM", "start after its agent left");
      await endTransfer(busy);
      await assertLaptopClean(lab);
      agent = await startAgent(lab);
    });
    await t.step("SIGTERM with a connection that never says HELLO", async () => {
      const hold = lab.spawn(
        "instance",
        ["socat", "-u", "TCP:127.0.0.1:7797", "STDOUT"],
        {},
        "silent client",
      );
      await sleep(500);
      await signalAndTime(agent, "SIGTERM", "agent with a silent connection");
      hold.kill("SIGKILL");
      await hold.status;
    });
  });
});
