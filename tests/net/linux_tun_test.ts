/**
 * linuxPlatform() against the real kernel, inside throwaway namespaces. This file is both the test
 * (run by `deno test`) and the script the test runs inside each namespace (`deno run`, where
 * import.meta.main is true and the scenario named by the first argument runs).
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { UserError } from "../../src/errors.ts";
import { linuxPlatform } from "../../src/net/linux.ts";
import { RouteExistsError } from "../../src/net/types.ts";
import { inNetns, ip, linkExists, netnsAvailable, withNetns } from "../support/netns.ts";

// ---- helpers for crafting packets -------------------------------------------------------------

function checksum(b: Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < b.length; i += 2) sum += (b[i] << 8) | b[i + 1];
  if (b.length & 1) sum += b[b.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

interface Udp {
  src: Uint8Array;
  dst: Uint8Array;
  sport: number;
  dport: number;
  payload: Uint8Array;
}

function parseUdp(p: Uint8Array): Udp | undefined {
  if (p.length < 28 || p[0] >> 4 !== 4 || p[9] !== 17) return undefined;
  const ihl = (p[0] & 0xf) * 4;
  const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const len = dv.getUint16(ihl + 4);
  return {
    src: p.slice(12, 16),
    dst: p.slice(16, 20),
    sport: dv.getUint16(ihl),
    dport: dv.getUint16(ihl + 2),
    payload: p.slice(ihl + 8, ihl + len),
  };
}

/** An IPv4/UDP packet with valid IP and UDP checksums. */
function buildUdp(u: Udp): Uint8Array<ArrayBuffer> {
  const total = 28 + u.payload.length;
  const p = new Uint8Array(total);
  const dv = new DataView(p.buffer);
  p[0] = 0x45;
  dv.setUint16(2, total);
  dv.setUint16(6, 0x4000); // DF
  p[8] = 64;
  p[9] = 17;
  p.set(u.src, 12);
  p.set(u.dst, 16);
  dv.setUint16(10, checksum(p.subarray(0, 20)));
  dv.setUint16(20, u.sport);
  dv.setUint16(22, u.dport);
  dv.setUint16(24, 8 + u.payload.length);
  p.set(u.payload, 28);
  const pseudo = new Uint8Array(12 + 8 + u.payload.length);
  pseudo.set(u.src, 0);
  pseudo.set(u.dst, 4);
  pseudo[9] = 17;
  new DataView(pseudo.buffer).setUint16(10, 8 + u.payload.length);
  pseudo.set(p.subarray(20), 12);
  dv.setUint16(26, checksum(pseudo) || 0xffff);
  return p;
}

const ipText = (b: Uint8Array) => Array.from(b).join(".");

// ---- scenarios (run inside a namespace) --------------------------------------------------------

async function basic(): Promise<void> {
  const net = linuxPlatform();
  const tun = await net.openTun({
    name: "ssmpt0",
    mtu: 1400,
    address: "10.199.0.2",
    peer: "10.199.0.1",
    prefixLength: 32,
  });
  assert.equal(tun.name, "ssmpt0");
  assert.ok(tun.index > 0);
  const [link] = JSON.parse(await ip("-j", "addr", "show", "dev", "ssmpt0"));
  assert.equal(link.mtu, 1400);
  assert.ok(link.flags.includes("UP"), `flags ${link.flags}`);
  const v4 = link.addr_info.filter((a: { family: string }) => a.family === "inet");
  assert.deepEqual(
    v4.map((
      a: { local: string; address: string; prefixlen: number },
    ) => [a.local, a.address, a.prefixlen]),
    [["10.199.0.2", "10.199.0.1", 32]],
  );
  assert.equal(link.addr_info.filter((a: { family: string }) => a.family === "inet6").length, 0);

  // Routes: add, read back, duplicate, delete twice.
  await net.routes.add("10.199.5.0/24", tun.name);
  assert.deepEqual(await net.routes.get("10.199.5.9"), {
    interface: "ssmpt0",
    gateway: undefined,
    source: "10.199.0.2",
  });
  assert.equal((await net.routes.get("10.199.0.1"))?.interface, "ssmpt0"); // peer host route
  await assert.rejects(net.routes.add("10.199.5.0/24", tun.name), RouteExistsError);
  await net.routes.delete("10.199.5.0/24", tun.name);
  assert.equal(await net.routes.get("10.199.5.9"), undefined); // no default route in the netns
  await net.routes.delete("10.199.5.0/24", tun.name);
  await net.routes.delete("10.199.5.0/24", "ssmpt-none"); // interface gone: nothing to do
  await assert.rejects(net.routes.add("10.199.6.0/24", "ssmpt-none"), UserError);
  await net.routes.add("10.199.5.0/24", tun.name);

  // A datagram out through the tun, and a crafted reply back in.
  const sock = dgram.createSocket("udp4");
  await new Promise<void>((r) => sock.bind(0, "10.199.0.2", r));
  const got = new Promise<[string, string, number]>((resolve) =>
    sock.once("message", (m, rinfo) => resolve([m.toString(), rinfo.address, rinfo.port]))
  );
  sock.send("ping", 9999, "10.199.5.9");
  let seen: Udp | undefined;
  const deadline = Date.now() + 5000;
  while (!seen && Date.now() < deadline) {
    for (const p of await tun.read(500)) {
      const u = parseUdp(p); // anything else (IPv6 chatter, if any) is skipped
      if (u && ipText(u.dst) === "10.199.5.9" && u.dport === 9999) seen = u;
    }
  }
  assert.ok(seen, "the datagram never reached the tun");
  assert.equal(new TextDecoder().decode(seen.payload), "ping");
  const reply = buildUdp({
    src: seen.dst,
    dst: seen.src,
    sport: seen.dport,
    dport: seen.sport,
    payload: new TextEncoder().encode("pong"),
  });
  assert.equal(tun.write(reply), true);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error("no reply on the socket")), 3000);
  });
  try {
    assert.deepEqual(await Promise.race([got, timeout]), ["pong", "10.199.5.9", 9999]);
  } finally {
    clearTimeout(timer);
    sock.close();
  }

  // Close while a read is pending: the read resolves promptly, the interface disappears.
  const pending = tun.read(10_000);
  const t0 = Date.now();
  tun.close();
  assert.deepEqual(await pending, []);
  assert.ok(Date.now() - t0 < 1000, `pending read took ${Date.now() - t0} ms to end`);
  const links = await ip("-j", "link", "show");
  assert.ok(!links.includes('"ssmpt0"'), "ssmpt0 still exists after close");
  assert.equal(tun.write(reply), false);
  assert.deepEqual(await tun.read(10), []);
  console.log("basic ok");
}

async function errors(): Promise<void> {
  const net = linuxPlatform();
  const cfg = { mtu: 1300, address: "100.64.0.1", peer: "100.64.0.2", prefixLength: 16 };
  // Agent style: a /16 on-link pool through the peer; kernel-numbered name.
  const tun = await net.openTun(cfg);
  assert.match(tun.name, /^ssmp\d+$/);
  assert.equal((await net.routes.get("100.64.9.9"))?.interface, tun.name);
  // The same name again, while the first is open → one clear line.
  await assert.rejects(net.openTun({ ...cfg, name: tun.name }), (e: Error) => {
    assert.ok(e instanceof UserError, String(e));
    assert.match(e.message, /already in use/);
    return true;
  });
  // A name held by a non-TUN device.
  await assert.rejects(net.openTun({ ...cfg, name: "lo" }), /already in use/);
  tun.close();
  // DNS without systemd-resolved, and a resolv.conf that cannot be replaced: one line, nothing
  // left behind (the forwarder closed, no backup). Never the real /etc/resolv.conf.
  const stateDir = await Deno.makeTempDir({ prefix: "ssmpt-dns-" });
  await assert.rejects(
    linuxPlatform({
      resolvedDir: "/nonexistent/ssmpt",
      resolvConf: "/nonexistent/ssmpt/resolv.conf",
      stateDir,
    }).dns.apply({ ifname: "lo", server: "10.199.0.53", domains: ["ec2.internal"] }),
    (e: Error) =>
      e instanceof UserError && /^cannot replace \/nonexistent\/ssmpt\/resolv.conf/.test(e.message),
  );
  assert.deepEqual([...Deno.readDirSync(stateDir)], []);
  Deno.listen({ hostname: "127.0.0.153", port: 53 }).close(); // released
  await Deno.remove(stateDir);
  console.log("errors ok");
}

if (import.meta.main) {
  const scenarios: Record<string, () => Promise<void>> = { basic, errors };
  await scenarios[Deno.args[0]]();
}

// ---- tests ----------------------------------------------------------------------------------

const linux = Deno.build.os === "linux";

function requireNetns(): void {
  const a = netnsAvailable();
  if (!a.ok) throw new Error(`these tests need root and /dev/net/tun on Linux: ${a.why}`);
}

for (const name of ["basic", "errors"]) {
  Deno.test({
    name: `linux tun in a namespace: ${name}`,
    ignore: !linux,
    async fn() {
      requireNetns();
      await withNetns([name.slice(0, 4)], async (ns) => {
        const o = await inNetns(ns, import.meta.url, [name]);
        assert.equal(o.code, 0, `scenario ${name} failed:\n${o.stdout}\n${o.stderr}`);
        assert.match(o.stdout, new RegExp(`${name} ok`));
        assert.equal(await linkExists(ns, "ssmpt0"), false);
      });
    },
  });
}

Deno.test({
  name: "netPlatform() loads the Linux platform lazily",
  ignore: !linux,
  async fn() {
    const { netPlatform } = await import("../../src/net/platform.ts");
    const p = await netPlatform();
    assert.equal(typeof p.openTun, "function");
    assert.equal(typeof p.routes.get, "function");
    await p.dns.revert({ kind: "none", items: [] });
  },
});
