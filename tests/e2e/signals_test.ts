/**
 * Stop signals end to end (issue 13 item 7), the client side: forward, start in the foreground
 * and eks connect --port-forward each exit 0 within 1 s of SIGINT or SIGTERM in every state,
 * having undone what they changed. The emulator and the agent: signals_servers_test.ts.
 *
 * States are made with the lab's real pieces: "AWS unreachable" is an nft drop in the laptop for
 * the emulator's port (the first call hangs: resolving the target); a handshake waits behind an
 * emulator `stall` fault; busy is a slow HTTP transfer through the command; healing is a dropped
 * WebSocket with the endpoint unreachable, so ResumeSession hangs in backoff.
 *
 * The bound is the feature's contract, so it is asserted (≤ 1000 ms from the signal to the
 * process being reaped); every measurement is printed.
 */
import assert from "node:assert/strict";
import type { LabProcess } from "../../scripts/lab.ts";
import { clientEnv, ssmProxyArgv, startTunnel, tunnelStatus } from "../../scripts/lab/stack.ts";
import { assertLaptopClean, e2eTest, withStack } from "../support/lab.ts";
import { installFaultScripts, sleep } from "../support/lab_faults.ts";
import {
  blockAws,
  boundedTwice,
  endTransfer,
  fault,
  fresh,
  makeHealing,
  portClosed,
  type Sig,
  signalAndTime,
  transfer,
  unblockAws,
} from "../support/signals.ts";

// ---- forward ------------------------------------------------------------------------------------

e2eTest("e2e signals: forward exits 0 within 1 s in every state, its port closed", async (t) => {
  await withStack({ agent: false }, async ({ lab }) => {
    await installFaultScripts(lab);
    const PORT = 18080;
    const spawn = () =>
      lab.spawn(
        "laptop",
        ssmProxyArgv([
          "forward",
          "--target",
          "name:bastion",
          "--remote-host",
          lab.serviceAddress,
          "--remote-port",
          "80",
          "--local-port",
          String(PORT),
        ]),
        clientEnv(lab, "laptop"),
        "forward",
      );
    const up = async () => {
      const p = spawn();
      await p.waitForLine(/^Local port: \d+/, 30_000);
      return p;
    };
    const check = async (what: string, p: LabProcess, sig: Sig) => {
      await signalAndTime(p, sig, `forward ${what}`);
      assert.ok(await portClosed(lab, PORT), `forward ${what}: port ${PORT} still open`);
      await unblockAws(lab);
      await fault(lab, { action: "reset" });
    };

    for (const sig of ["SIGINT", "SIGTERM"] as const) {
      await t.step(
        `${sig} while resolving the target (AWS unreachable)`,
        () =>
          boundedTwice(async () => {
            await fresh(lab);
            await blockAws(lab);
            const p = spawn();
            await sleep(2500); // deno start-up, then the first call hangs
            await check("resolving", p, sig);
          }),
      );
      await t.step(`${sig} while the session handshake waits`, () =>
        boundedTwice(async () => {
          await fresh(lab);
          await fault(lab, { action: "stall", ms: 60_000 });
          const p = spawn();
          await sleep(3500);
          assert.ok(!p.exited, p.tail());
          await check("handshake", p, sig);
        }));
      await t.step(`${sig} while up and idle`, () =>
        boundedTwice(async () => {
          await fresh(lab);
          await check("idle", await up(), sig);
        }));
      await t.step(`${sig} while a transfer runs`, () =>
        boundedTwice(async () => {
          await fresh(lab);
          const p = await up();
          const busy = transfer(lab, `http://127.0.0.1:${PORT}/blob?size=${64 << 20}`);
          await sleep(1500);
          assert.ok(!busy.exited, busy.tail());
          await check("busy", p, sig);
          await endTransfer(busy);
        }));
      await t.step(`${sig} while healing (resume hangs)`, () =>
        boundedTwice(async () => {
          await fresh(lab);
          const p = await up();
          await makeHealing(lab, p);
          await check("healing", p, sig);
        }));
    }
  });
});

// ---- start --------------------------------------------------------------------------------------

e2eTest("e2e signals: start exits 0 within 1 s in every state, the laptop clean", async (t) => {
  await withStack({}, async ({ lab }) => {
    await installFaultScripts(lab);
    const spawn = () =>
      lab.spawn(
        "laptop",
        ssmProxyArgv([
          "start",
          "--target",
          "name:bastion",
          "--name",
          "sig",
          "--cidr",
          lab.vpcNetwork,
          "--mode",
          "agent",
        ]),
        clientEnv(lab, "laptop"),
        "start sig",
      );
    const up = async () =>
      (await startTunnel(lab, "laptop", { name: "sig", cidrs: [lab.vpcNetwork] })).proc;
    const check = async (what: string, p: LabProcess, sig: Sig) => {
      await signalAndTime(p, sig, `start ${what}`);
      await unblockAws(lab);
      await fault(lab, { action: "reset" });
      await assertLaptopClean(lab);
    };

    for (const sig of ["SIGINT", "SIGTERM"] as const) {
      await t.step(
        `${sig} while resolving the target (AWS unreachable)`,
        () =>
          boundedTwice(async () => {
            await fresh(lab);
            await blockAws(lab);
            const p = spawn();
            await p.waitForLine(/resolving name:bastion/, 30_000);
            await sleep(300);
            await check("resolving", p, sig);
          }),
      );
      await t.step(
        `${sig} while the agent handshake waits (discovery done)`,
        () =>
          boundedTwice(async () => {
            await fresh(lab);
            await fault(lab, { action: "stall", ms: 60_000 });
            const p = spawn();
            await p.waitForLine(/resolving name:bastion/, 30_000);
            await sleep(1500);
            assert.ok(!p.exited, p.tail());
            await check("handshake", p, sig);
          }),
      );
      await t.step(`${sig} while up and idle`, () =>
        boundedTwice(async () => {
          await fresh(lab);
          await check("idle", await up(), sig);
        }));
      await t.step(
        `${sig} while a transfer runs through the tunnel`,
        () =>
          boundedTwice(async () => {
            await fresh(lab);
            const p = await up();
            const busy = transfer(lab, `http://${lab.serviceAddress}/blob?size=${64 << 20}`);
            await sleep(1500);
            assert.ok(!busy.exited, busy.tail());
            await check("busy", p, sig);
            await endTransfer(busy);
          }),
      );
      await t.step(`${sig} while healing (resume hangs)`, () =>
        boundedTwice(async () => {
          await fresh(lab);
          const p = await up();
          await makeHealing(lab, p);
          const s = await tunnelStatus(lab, "laptop", "sig");
          console.log(`  start healing: status ${s?.status}`);
          await check("healing", p, sig);
        }));
    }
  });
});

// ---- eks connect --port-forward -----------------------------------------------------------------

e2eTest(
  "e2e signals: eks connect --port-forward exits 0 within 1 s; kubeconfig restored",
  async (t) => {
    await withStack({ agent: false }, async ({ lab }) => {
      await installFaultScripts(lab);
      const dir = lab.dir;
      await Deno.writeTextFile(`${dir}/aws-config`, "[profile emu]\nregion = us-east-1\n");
      await Deno.writeTextFile(
        `${dir}/aws-credentials`,
        "[emu]\naws_access_key_id = AKIDLAB\naws_secret_access_key = lab-secret\n",
      );
      await Deno.writeTextFile(
        `${dir}/clusters.yaml`,
        "clusters:\n  - { name: lab, region: us-east-1, cluster_name: lab, profile: emu }\n",
      );
      const kubeconfig = `${dir}/kubeconfig`;
      const original = "apiVersion: v1\nkind: Config\n# someone else's\ncurrent-context: other\n";
      const env = {
        ...clientEnv(lab, "laptop"),
        AWS_CONFIG_FILE: `${dir}/aws-config`,
        AWS_SHARED_CREDENTIALS_FILE: `${dir}/aws-credentials`,
        KUBECONFIG: kubeconfig,
        HOME: dir,
        SSM_PROXY_EKS_STATE_DIR: `${dir}/eks-state`,
      };
      const spawn = () =>
        lab.spawn(
          "laptop",
          ssmProxyArgv([
            "eks",
            "connect",
            "lab",
            "--port-forward",
            "--clusters",
            `${dir}/clusters.yaml`,
          ]),
          env,
          "eks connect",
        );
      const leftovers = async () => {
        try {
          return (await Array.fromAsync(Deno.readDir(`${dir}/eks-state`))).map((e) => e.name)
            .filter((n) => n.endsWith(".json"));
        } catch {
          return [];
        }
      };
      const active = async () => /active: true/.test(await Deno.readTextFile(kubeconfig));

      for (const sig of ["SIGINT", "SIGTERM"] as const) {
        await t.step(
          `${sig} while connecting (AWS unreachable): kubeconfig untouched`,
          async () => {
            await Deno.writeTextFile(kubeconfig, original);
            await blockAws(lab);
            const p = spawn();
            await sleep(2500);
            await signalAndTime(p, sig, "eks connect resolving");
            await unblockAws(lab);
            assert.equal(await Deno.readTextFile(kubeconfig), original);
            assert.deepEqual(await leftovers(), []);
          },
        );
        await t.step(
          `${sig} while the session handshake waits: kubeconfig untouched`,
          () =>
            boundedTwice(async () => {
              await fresh(lab);
              await Deno.writeTextFile(kubeconfig, original);
              await fault(lab, { action: "stall", ms: 60_000 });
              const p = spawn();
              await p.waitForLine(/authenticated as/, 30_000);
              await sleep(1000);
              assert.ok(!p.exited, p.tail());
              await signalAndTime(p, sig, "eks connect handshake");
              await fault(lab, { action: "reset" });
              assert.equal(await Deno.readTextFile(kubeconfig), original);
              assert.deepEqual(await leftovers(), []);
            }),
        );
        for (const state of ["idle", "healing"] as const) {
          await t.step(
            `${sig} while ${state}: entry inactive, no state file`,
            () =>
              boundedTwice(async () => {
                await fresh(lab);
                await Deno.writeTextFile(kubeconfig, original);
                const p = spawn();
                await p.waitForLine(/is now current/, 30_000);
                assert.ok(await active(), "connect wrote an active entry");
                if (state === "healing") await makeHealing(lab, p);
                await signalAndTime(p, sig, `eks connect ${state}`);
                await unblockAws(lab);
                await fault(lab, { action: "reset" });
                assert.ok(!(await active()), "the kubeconfig entry is still active");
                assert.match(await Deno.readTextFile(kubeconfig), /# someone else's/);
                assert.deepEqual(await leftovers(), []);
                assert.ok(await portClosed(lab, Number(/localhost:(\d+)/.exec(p.output())![1])));
              }),
          );
        }
      }
    });
  },
);
