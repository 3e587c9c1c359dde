/**
 * After a crash and a reboot: the state dir (tmpfs) is empty, our resolv.conf is still in /etc,
 * and the original comes back from the copy inside it; a live owner's file, or one not ours, is
 * never touched. Real files, processes and mounts in namespaces (scenario.ts); a reboot is
 * faked by clearing the state dir and bind-mounting a new boot id over /proc's.
 */
import assert from "node:assert/strict";
import { recoverDns } from "../../src/net/linux.ts";
import { backupFile, recoverResolvConf, type Recovery } from "../../src/dns/restore.ts";
import { encodeEmbedded, ownerPid } from "../../src/dns/resolv_conf.ts";
import {
  bytes,
  CFG,
  crashedChild,
  dir,
  enc,
  mount,
  ORIGINAL,
  platform,
  runningChild,
  runScenario,
  scenarioTests,
  text,
  withServers,
} from "./scenario.ts";

/** What a reboot does to us: /run cleared (the backup gone), and a new boot id. */
async function reboot(): Promise<void> {
  await Deno.remove(`${dir}/state`, { recursive: true }).catch(() => {});
  const id = `${dir}/boot_id.${crypto.randomUUID()}`;
  Deno.writeTextFileSync(id, `${crypto.randomUUID()}\n`);
  await mount(id, "/proc/sys/kernel/random/boot_id"); // this mount namespace only
}

function recover(path = `${dir}/resolv.conf`): Promise<Recovery> & { lines: string[] } {
  const lines: string[] = [];
  const p = recoverResolvConf({ path, stateDir: `${dir}/state`, log: (l) => lines.push(l) });
  return Object.assign(p, { lines });
}

async function rebooted(): Promise<void> {
  const path = `${dir}/resolv.conf`;
  const write = () => {
    Deno.writeFileSync(path, enc(ORIGINAL), { mode: 0o640 });
    Deno.chmodSync(path, 0o640);
  };
  const exact = () => {
    assert.deepEqual(bytes(path), enc(ORIGINAL));
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o640);
    const left = Deno.readDirSync(`${dir}/state`).toArray().map((e) => e.name);
    assert.deepEqual(left, [], "no backup left");
  };

  // Not ours: never touched.
  Deno.mkdirSync(`${dir}/state`);
  write();
  assert.deepEqual(await recover(), { kind: "none" });
  exact();
  // Not even with our copy lines pasted in (without our header, nothing says the file is ours).
  const pasted = ORIGINAL + encodeEmbedded({ original: { kind: "absent" } }).join("\n") + "\n";
  Deno.writeTextFileSync(path, pasted);
  assert.deepEqual(await recover(), { kind: "none" });
  assert.equal(text(path), pasted);
  write();

  // The owner runs: untouched, even with its backup gone.
  const live = await runningChild();
  const ours = bytes(path);
  const pid = ownerPid(text(path))!;
  await Deno.remove(backupFile(`${dir}/state`, path));
  const r1 = recover();
  assert.deepEqual(await r1, { kind: "live", pid });
  assert.deepEqual(r1.lines, []);
  assert.deepEqual(bytes(path), ours);
  // It dies: same boot, no backup, so the copy inside the file puts the original back.
  await live.kill();
  const r2 = recover();
  assert.deepEqual(await r2, { kind: "restored", pid, from: "copy" });
  assert.deepEqual(r2.lines, [
    `restored ${path} left by ssm-proxy (pid ${pid}) which no longer runs, and whose backup was gone`,
  ]);
  exact();
  assert.deepEqual(await recover(), { kind: "none" }, "twice is harmless");
  exact();

  // Through the platform's revert (cleanupStale with a state whose backup is gone).
  const state = await crashedChild();
  await Deno.remove(state.items[0]);
  await platform().dns.revert(state);
  exact();

  // A file of ours from before it carried the original: reported, left, and apply refuses.
  const old = await crashedChild();
  await Deno.remove(old.items[0]);
  const stripped = text(path).split("\n").filter((l) => !l.startsWith("# ssm-proxy-original:"));
  Deno.writeTextFileSync(path, stripped.join("\n"));
  const r3 = recover();
  assert.equal((await r3).kind, "no-copy");
  assert.match(r3.lines[0], /holds no copy of the original: put back the nameserver lines/);
  await assert.rejects(platform().dns.apply(CFG), /backup of the original is gone/);
  assert.equal(text(path), stripped.join("\n"));
  write();

  // A backup under the name releases before this one used (*.json) is still read.
  const legacy = await crashedChild();
  Deno.renameSync(legacy.items[0], `${legacy.items[0]}.json`);
  assert.equal((await recover()).kind, "restored");
  exact();

  // A reboot with the owner's pid taken by some other process: the boot id tells.
  const before = await runningChild();
  const pid2 = ownerPid(text(path))!;
  await reboot();
  const r4 = recover();
  assert.deepEqual(await r4, { kind: "restored", pid: pid2, from: "copy" });
  assert.deepEqual(r4.lines, [
    `restored ${path} left by ssm-proxy (pid ${pid2}) before a reboot`,
  ]);
  exact();
  await before.kill();

  // start after a reboot: apply restores first, then backs up the real original.
  await crashedChild();
  await reboot();
  await withServers(async () => {
    const again = await platform().dns.apply(CFG);
    assert.equal(ownerPid(text(path)), Deno.pid);
    await platform().dns.revert(again);
  });
  exact();

  // The exported entry point for start/stop/status, on the same files.
  await crashedChild();
  await reboot();
  assert.equal(
    (await recoverDns({ resolvConf: path, stateDir: `${dir}/state` })).kind,
    "restored",
  );
  exact();
  console.log("reboot ok");
}

async function rebootedLinks(): Promise<void> {
  const path = `${dir}/resolv.conf`;
  Deno.mkdirSync(`${dir}/run`);
  Deno.writeTextFileSync(`${dir}/run/resolv.conf`, ORIGINAL);
  Deno.symlinkSync("run/resolv.conf", path);
  await crashedChild();
  assert.ok(Deno.lstatSync(path).isFile);
  await reboot();
  assert.equal((await recover()).kind, "restored");
  assert.equal(Deno.readLinkSync(path), "run/resolv.conf", "the same symlink back");
  assert.equal(text(`${dir}/run/resolv.conf`), ORIGINAL, "its target untouched");
  // No resolv.conf at all before: none after.
  Deno.removeSync(path);
  await crashedChild();
  await reboot();
  assert.equal((await recover()).kind, "restored");
  assert.throws(() => Deno.lstatSync(path), Deno.errors.NotFound);
  console.log("reboot-links ok");
}

if (import.meta.main) await runScenario({ reboot: rebooted, "reboot-links": rebootedLinks });

scenarioTests(import.meta.url, ["reboot", "reboot-links"], (name, _out, err) => {
  if (name === "reboot") {
    // apply's recovery prints its line (to stderr, like every notice).
    assert.match(
      err,
      /ssm-proxy: restored \S+resolv\.conf left by ssm-proxy \(pid \d+\) before a reboot\n/,
    );
  }
});
