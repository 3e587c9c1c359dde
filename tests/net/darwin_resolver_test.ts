/**
 * Split DNS on macOS: /etc/resolver files (in a temp dir) carry the ssm-proxy marker with their
 * owner; only ours are ever replaced or removed, foreign files are never touched, and files left
 * by a tunnel that is gone are cleaned up.
 */
import assert from "node:assert/strict";
import { FakeDarwinLibc } from "../../ffi/darwin/fake_libc.ts";
import { markerLine, parseMarker, resolverFileName } from "../../ffi/darwin/resolver.ts";
import { UserError } from "../../src/errors.ts";
import { cleanStaleResolverFiles, darwinPlatform } from "../../src/net/darwin.ts";

const CFG = { ifname: "utun5", server: "10.0.0.2", domains: ["corp.example", "EC2.Internal."] };

function setup(alive: (o: { tunnel?: string; pid?: number }) => boolean = () => false) {
  const dir = Deno.makeTempDirSync() + "/resolver"; // apply creates it
  const net = darwinPlatform({ sys: new FakeDarwinLibc(), resolverDir: dir, isAlive: alive });
  return { dir, net };
}
const ls = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).sort();

Deno.test("apply writes one marked file per domain (0644); revert removes exactly those", async () => {
  const { dir, net } = setup();
  const state = await net.dns.apply(CFG);
  assert.deepEqual(state, {
    kind: "resolver-files",
    items: [`${dir}/corp.example`, `${dir}/ec2.internal`],
  });
  const text = Deno.readTextFileSync(`${dir}/corp.example`);
  const lines = text.split("\n");
  assert.equal(lines[0], `# Added by ssm-proxy (tunnel utun5, pid ${Deno.pid})`);
  assert.ok(lines.includes("nameserver 10.0.0.2"));
  assert.ok(lines.includes("port 53"));
  assert.equal(Deno.statSync(`${dir}/corp.example`).mode! & 0o777, 0o644);
  Deno.writeTextFileSync(`${dir}/other.example`, "nameserver 1.1.1.1\n"); // someone else's
  await net.dns.revert(state);
  assert.deepEqual(ls(dir), ["other.example"]);
  await net.dns.revert(state); // twice is fine
  assert.deepEqual((await net.dns.apply({ ...CFG, domains: [] })).kind, "none");
});

Deno.test("a foreign file for one of our domains: refused, nothing written, nothing touched", async () => {
  const { dir, net } = setup();
  Deno.mkdirSync(dir);
  Deno.writeTextFileSync(`${dir}/ec2.internal`, "nameserver 192.168.1.1\n");
  await assert.rejects(
    net.dns.apply(CFG),
    (e) =>
      e instanceof UserError &&
      e.message.includes(`${dir}/ec2.internal exists and was not written by ssm-proxy`),
  );
  assert.deepEqual(ls(dir), ["ec2.internal"]);
  assert.equal(Deno.readTextFileSync(`${dir}/ec2.internal`), "nameserver 192.168.1.1\n");
  // Revert of a state naming it (tampered, or the file was replaced since) leaves it too.
  await net.dns.revert({ kind: "resolver-files", items: [`${dir}/ec2.internal`] });
  assert.deepEqual(ls(dir), ["ec2.internal"]);
});

Deno.test("a domain served by another running tunnel is refused with its name", async () => {
  const { dir, net } = setup((o) => o.tunnel === "utun3");
  Deno.mkdirSync(dir);
  Deno.writeTextFileSync(`${dir}/corp.example`, markerLine({ tunnel: "utun3", pid: 1 }) + "\n");
  await assert.rejects(
    net.dns.apply(CFG),
    (e) =>
      e instanceof UserError && /another running ssm-proxy tunnel \(utun3, pid 1\)/.test(e.message),
  );
  assert.deepEqual(ls(dir), ["corp.example"]);
});

Deno.test("stale marked files (owner gone) are removed; live, foreign and unowned ones stay", async () => {
  const { dir } = setup();
  Deno.mkdirSync(dir);
  Deno.writeTextFileSync(
    `${dir}/dead.example`,
    markerLine({ tunnel: "utun9", pid: 999999 }) + "\n",
  );
  Deno.writeTextFileSync(`${dir}/live.example`, markerLine({ tunnel: "utun3", pid: 1 }) + "\n");
  Deno.writeTextFileSync(
    `${dir}/foreign.example`,
    "# Added by tailscaled\nnameserver 100.100.100.100\n",
  );
  Deno.writeTextFileSync(`${dir}/unowned.example`, "# Added by ssm-proxy\nnameserver 10.0.0.2\n");
  Deno.symlinkSync(`${dir}/dead.example`, `${dir}/link.example`);
  const isAlive = (o: { tunnel?: string }) => o.tunnel === "utun3";
  const removed = await cleanStaleResolverFiles({
    resolverDir: dir,
    isAlive,
    sys: new FakeDarwinLibc(),
  });
  assert.deepEqual(removed, [`${dir}/dead.example`]);
  assert.deepEqual(ls(dir), ["foreign.example", "link.example", "live.example", "unowned.example"]);
  // apply sweeps stale files too, and may take over a dead tunnel's file for the same domain.
  Deno.writeTextFileSync(
    `${dir}/corp.example`,
    markerLine({ tunnel: "utun9", pid: 999999 }) + "\n",
  );
  const net = darwinPlatform({ sys: new FakeDarwinLibc(), resolverDir: dir, isAlive });
  await net.dns.apply({ ...CFG, domains: ["corp.example"] });
  assert.match(Deno.readTextFileSync(`${dir}/corp.example`), /tunnel utun5, pid \d+/);
});

Deno.test("the default owner check: a file is stale once its utun is gone", async () => {
  const sys = new FakeDarwinLibc();
  const dir = Deno.makeTempDirSync();
  Deno.writeTextFileSync(
    `${dir}/a.example`,
    markerLine({ tunnel: "utun7", pid: Deno.pid + 1 }) + "\n",
  );
  Deno.writeTextFileSync(`${dir}/b.example`, markerLine({ tunnel: "en0", pid: Deno.pid }) + "\n");
  const removed = await cleanStaleResolverFiles({ sys, resolverDir: dir });
  assert.deepEqual(removed, [`${dir}/a.example`]); // no utun7 in the fake; b is this process
});

Deno.test("domains are validated as file names; revert ignores paths outside the directory", async () => {
  const { dir, net } = setup();
  for (const bad of ["../etc/passwd", "a/b", "", "-x.example", "a..b"]) {
    await assert.rejects(net.dns.apply({ ...CFG, domains: [bad] }), UserError, bad);
  }
  await assert.rejects(net.dns.apply({ ...CFG, server: "nope" }), UserError);
  assert.equal(resolverFileName("Corp.Example."), "corp.example");
  const outside = Deno.makeTempFileSync();
  Deno.writeTextFileSync(outside, markerLine({ tunnel: "utun5", pid: Deno.pid }) + "\n");
  await net.dns.revert({ kind: "resolver-files", items: [outside, `${dir}/../x`] });
  assert.ok(Deno.statSync(outside).isFile);
  await net.dns.revert({ kind: "systemd-resolved", items: ["utun5"] }); // not ours: no-op
});

Deno.test("marker parsing", () => {
  assert.deepEqual(parseMarker(markerLine({ tunnel: "utun5", pid: 42 }) + "\nx"), {
    tunnel: "utun5",
    pid: 42,
  });
  assert.deepEqual(parseMarker("# Added by ssm-proxy (tunnel utun5)\n"), { tunnel: "utun5" });
  assert.deepEqual(parseMarker("# Added by ssm-proxy\n"), {});
  assert.equal(parseMarker("nameserver 1.1.1.1\n# Added by ssm-proxy"), "foreign");
});
