/**
 * Split DNS through linuxPlatform() without systemd-resolved, for real (scenario.ts says how):
 * apply and revert, symlinks, bind mounts, kill -9, two tunnels, a file rewritten meanwhile, no
 * file at all. This file is both the test and the script run inside (import.meta.main).
 */
import assert from "node:assert/strict";
import { UserError } from "../../src/errors.ts";
import { replaceFile } from "../../src/dns/resolv_file.ts";
import { decode, query, tcpAsk, udpAsk } from "./support.ts";
import {
  assertPort53Free,
  bytes,
  CFG,
  crashedChild,
  dir,
  enc,
  mount,
  ORIGINAL,
  platform,
  runScenario,
  scenarioTests,
  text,
  withServers,
} from "./scenario.ts";

async function roundtrip(): Promise<void> {
  const path = `${dir}/resolv.conf`;
  Deno.writeFileSync(path, enc(ORIGINAL), { mode: 0o640 });
  Deno.chmodSync(path, 0o640);
  const ino = Deno.statSync(path).ino;
  await withServers(async () => {
    const state = await platform().dns.apply(CFG);
    assert.equal(state.kind, "resolv-conf");
    assert.deepEqual(state.items, [`${dir}/state/dns-backup${path.replace(/\//g, "_")}`]);
    assert.notEqual(Deno.statSync(path).ino, ino, "replaced by rename, not rewritten");
    const ours = text(path);
    assert.match(ours, /^# Written by ssm-proxy/);
    assert.match(
      ours,
      /\nsearch corp\.example\noptions edns0 ndots:2\nnameserver 127\.0\.0\.153\n$/,
    );
    assert.deepEqual(Deno.readDirSync(dir).map((e) => e.name).toArray().sort(), [
      "resolv.conf",
      "state",
    ], "no temp file left");
    // Real queries to the address now in resolv.conf: the zone to .2, the rest to .3.
    const a = await udpAsk("127.0.0.153", 53, query(7, "db.corp.example"));
    assert.deepEqual(decode(a!).answers.map((x) => x.address), ["10.1.0.5"]);
    const b = await udpAsk("127.0.0.153", 53, query(8, "www.example.com"));
    assert.deepEqual(decode(b!).answers.map((x) => x.address), ["93.184.0.1"]);
    const [c] = await tcpAsk("127.0.0.153", 53, [query(9, "db.corp.example")]);
    assert.deepEqual(decode(c).answers.map((x) => x.address), ["10.1.0.5"]);
    await platform().dns.revert(state);
    assert.deepEqual(bytes(path), enc(ORIGINAL));
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o640);
    assert.deepEqual(Deno.readDirSync(`${dir}/state`).toArray(), [], "backup removed");
    assertPort53Free();
    await platform().dns.revert(state); // twice is harmless
    assert.deepEqual(bytes(path), enc(ORIGINAL));
  });
  console.log("roundtrip ok");
}

async function symlink(): Promise<void> {
  const path = `${dir}/resolv.conf`;
  Deno.mkdirSync(`${dir}/run`);
  Deno.writeTextFileSync(`${dir}/run/resolv.conf`, ORIGINAL);
  Deno.symlinkSync("run/resolv.conf", path);
  const state = await platform().dns.apply(CFG);
  assert.ok(Deno.lstatSync(path).isFile, "the symlink itself was replaced");
  assert.equal(text(`${dir}/run/resolv.conf`), ORIGINAL, "its target untouched");
  assert.match(text(path), /nameserver 127\.0\.0\.153\n$/);
  await platform().dns.revert(state);
  assert.ok(Deno.lstatSync(path).isSymlink);
  assert.equal(Deno.readLinkSync(path), "run/resolv.conf");
  assert.equal(text(`${dir}/run/resolv.conf`), ORIGINAL);
  assertPort53Free();
  console.log("symlink ok");
}

async function bindMount(): Promise<void> {
  // Like `ip netns exec`: etc/resolv.conf is a bind mount of netns/resolv.conf.
  Deno.mkdirSync(`${dir}/etc`);
  Deno.mkdirSync(`${dir}/netns`);
  const src = `${dir}/netns/resolv.conf`;
  const target = `${dir}/etc/resolv.conf`;
  Deno.writeTextFileSync(src, ORIGINAL);
  Deno.writeTextFileSync(target, "");
  await mount(src, target);
  // The file edge alone: the rename fails with EBUSY, the fallback writes through the mount.
  assert.equal(await replaceFile(target, enc("nameserver 10.9.9.9\n")), "in-place");
  assert.equal(text(src), "nameserver 10.9.9.9\n");
  Deno.writeTextFileSync(src, ORIGINAL);
  // Through the platform: rewritten in place, saying why, and restored exactly.
  const state = await platform(target).dns.apply(CFG);
  assert.match(text(src), /# Rewritten in place, not replaced: this file is a mount point/);
  assert.match(text(src), /nameserver 127\.0\.0\.153\n$/);
  await platform(target).dns.revert(state);
  assert.deepEqual(bytes(src), enc(ORIGINAL));
  // A symlink to a mounted file is written through (replacing the link would miss the mount).
  Deno.symlinkSync(target, `${dir}/link`);
  const viaLink = await platform(`${dir}/link`).dns.apply(CFG);
  assert.ok(Deno.lstatSync(`${dir}/link`).isSymlink);
  assert.match(text(src), /nameserver 127\.0\.0\.153\n$/);
  await platform(`${dir}/link`).dns.revert(viaLink);
  assert.deepEqual(bytes(src), enc(ORIGINAL));
  assert.equal(Deno.readLinkSync(`${dir}/link`), target);
  console.log("bindmount ok");
}

async function crash(): Promise<void> {
  const path = `${dir}/resolv.conf`;
  Deno.writeTextFileSync(path, ORIGINAL);
  // kill -9, then the next command's cleanupStale reverts the recorded state.
  const state = await crashedChild();
  assert.match(text(path), /nameserver 127\.0\.0\.153/);
  await platform().dns.revert(state);
  assert.deepEqual(bytes(path), enc(ORIGINAL));
  // kill -9 before the state was recorded: the next apply finds the stale backup and restores
  // the original first, so it never backs up the dead tunnel's file as "the original".
  await crashedChild();
  const again = await platform().dns.apply(CFG);
  assert.match(text(path), new RegExp(`pid ${Deno.pid}\\)`));
  await platform().dns.revert(again);
  assert.deepEqual(bytes(path), enc(ORIGINAL));
  console.log("crash ok");
}

async function twoTunnels(): Promise<void> {
  const path = `${dir}/resolv.conf`;
  Deno.writeTextFileSync(path, ORIGINAL);
  const state = await platform().dns.apply(CFG);
  const ours = text(path);
  await assert.rejects(
    platform().dns.apply({ ...CFG, domains: ["other.example"] }),
    (e: Error) =>
      e instanceof UserError && /only one tunnel at a time can use --dns-domain/.test(e.message),
  );
  assert.equal(text(path), ours);
  await platform().dns.revert(state);
  assert.deepEqual(bytes(path), enc(ORIGINAL));
  // Our file with its backup gone (e.g. state dir lost): refused, not backed up as the original.
  Deno.writeTextFileSync(path, ours);
  await assert.rejects(platform().dns.apply(CFG), /backup of the original is gone/);
  assert.equal(text(path), ours);
  console.log("two ok");
}

async function rewritten(): Promise<void> {
  const path = `${dir}/resolv.conf`;
  Deno.writeTextFileSync(path, ORIGINAL);
  const state = await platform().dns.apply(CFG);
  // A DHCP client writes its own file while the tunnel runs.
  Deno.writeTextFileSync(`${path}.dhcp`, "nameserver 10.8.8.8\n");
  Deno.renameSync(`${path}.dhcp`, path);
  await platform().dns.revert(state);
  assert.equal(text(path), "nameserver 10.8.8.8\n", "theirs left alone");
  assert.deepEqual(Deno.readDirSync(`${dir}/state`).toArray(), []);
  assertPort53Free();
  console.log("rewritten ok");
}

async function absent(): Promise<void> {
  const path = `${dir}/resolv.conf`;
  const state = await platform().dns.apply(CFG);
  assert.match(text(path), /nameserver 127\.0\.0\.153\n$/);
  assert.doesNotMatch(text(path), /# previous/);
  await platform().dns.revert(state);
  assert.throws(() => Deno.lstatSync(path), Deno.errors.NotFound);
  console.log("absent ok");
}

if (import.meta.main) {
  await runScenario({
    roundtrip,
    symlink,
    bindmount: bindMount,
    crash,
    two: twoTunnels,
    rewritten,
    absent,
  });
}

scenarioTests(
  import.meta.url,
  ["roundtrip", "symlink", "bindmount", "crash", "two", "rewritten", "absent"],
  (name, _out, err) => {
    if (name === "rewritten") {
      assert.match(
        err,
        /resolv\.conf was changed by another program since ssm-proxy wrote it: leaving it as it is/,
      );
    }
  },
);
