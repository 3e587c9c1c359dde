/**
 * The utun device against the fake libc: creation call sequence, the batched nonblocking reader
 * (sync reads until EAGAIN, poll only when idle, nfds_t u32 = 2), header strip/add, close waking a
 * pending read, and EBUSY fallback to "kernel picks".
 */
import assert from "node:assert/strict";
import { DARWIN_E, OsError } from "../../ffi/libc.ts";
import { FakeDarwinLibc } from "../../ffi/darwin/fake_libc.ts";
import { UtunDevice, utunUnit } from "../../ffi/darwin/utun.ts";
import * as C from "../../ffi/darwin/constants.ts";

const v4 = (n: number) => new Uint8Array([0x45, 0, 0, 20, n, 0, 0, 0, 64, 17, 0, 0]);
const frame = (p: Uint8Array, af = 2) => new Uint8Array([0, 0, 0, af, ...p]);

Deno.test("utun creation: PF_SYSTEM socket, CTLIOCGINFO, connect unit 0, name, nonblocking", () => {
  const sys = new FakeDarwinLibc();
  const dev = UtunDevice.open(sys, "ssmp%d");
  assert.equal(dev.name, "utun5");
  assert.equal(dev.index, 24);
  assert.deepEqual(sys.names, [
    "socket",
    "ioctl CTLIOCGINFO",
    "connect",
    "getsockopt",
    "fcntl",
    "fcntl",
    "fcntl",
    "if_nametoindex",
    "pipe",
  ]);
  const [sock, ctl, conn, opt, getfl, setfl, setfd] = sys.calls;
  assert.deepEqual([sock.domain, sock.type, sock.protocol], [32, 2, 2]);
  assert.equal(ctl.ninthIsArg, true); // pointer 3rd and 9th (os-ffi §2.3)
  assert.deepEqual(ctl.middle, [0n, 0n, 0n, 0n, 0n]);
  assert.deepEqual([conn.scLen, conn.scId, conn.scUnit, conn.len], [32, 0x0a, 0, 32]);
  assert.deepEqual([opt.level, opt.opt], [C.SYSPROTO_CONTROL, C.UTUN_OPT_IFNAME]);
  assert.deepEqual([getfl.cmd, setfl.cmd, setfl.value, setfd.cmd, setfd.value], [
    3,
    4,
    2 | 4,
    2,
    1,
  ]);
  for (const f of [getfl, setfl, setfd]) assert.equal(f.ninthIsArg, true);
  dev.close();
  assert.deepEqual(sys.openFds, []);
  assert.equal(sys.ifs.has("utun5"), false);
});

Deno.test("utunN asks for that unit; a busy unit falls back to the kernel's pick", () => {
  assert.equal(utunUnit("utun7"), 7);
  assert.equal(utunUnit("ssmp%d"), undefined);
  const sys = new FakeDarwinLibc();
  const a = UtunDevice.open(sys, "utun7");
  assert.equal(a.name, "utun7");
  const b = UtunDevice.open(sys, "utun3"); // taken by "another VPN"
  assert.equal(b.name, "utun5");
  const units = sys.calls.filter((c) => c.name === "connect").map((c) => c.scUnit);
  assert.deepEqual(units, [8, 4, 0]);
  a.close();
  b.close();
  assert.deepEqual(sys.openFds, []);
});

Deno.test("EBUSY every time: gives up after 3 attempts with the fd closed", () => {
  const sys = new FakeDarwinLibc();
  for (let i = 0; i < 3; i++) sys.fail("connect", DARWIN_E.EBUSY);
  assert.throws(() => UtunDevice.open(sys), (e) => e instanceof OsError && e.code === "EBUSY");
  assert.deepEqual(sys.openFds, []);
});

Deno.test("EPERM (not root) surfaces as an OsError from connect, nothing left open", () => {
  const sys = new FakeDarwinLibc();
  sys.root = false;
  assert.throws(
    () => UtunDevice.open(sys),
    (e) => e instanceof OsError && e.code === "EPERM" && e.call.startsWith("connect"),
  );
  assert.deepEqual(sys.openFds, []);
});

Deno.test("the fake enforces the variadic contract: a different 9th argument is EFAULT", () => {
  const sys = new FakeDarwinLibc();
  const fd = sys.socket(32, 2, 2);
  const buf = new Uint8Array(100);
  assert.equal(
    sys.ioctl(fd, BigInt(C.CTLIOCGINFO), buf, 0n, 0n, 0n, 0n, 0n, new Uint8Array(100)),
    -1,
  );
  assert.equal(sys.errno(), 14);
});

Deno.test("read: one batch of sync reads until EAGAIN, headers stripped, no poll", async () => {
  const sys = new FakeDarwinLibc();
  const dev = UtunDevice.open(sys);
  for (let i = 1; i <= 3; i++) sys.inject("utun5", frame(v4(i)));
  sys.inject("utun5", frame(new Uint8Array([0x60, 0, 0, 0]), 30));
  sys.calls.length = 0;
  const got = await dev.read(1000);
  assert.deepEqual(got.map((p) => Array.from(p)), [
    ...[1, 2, 3].map((i) => Array.from(v4(i))),
    [0x60, 0, 0, 0],
  ]);
  assert.deepEqual(sys.names, ["read", "read", "read", "read", "read"]); // 4 packets + EAGAIN
  dev.close();
});

Deno.test("read when idle: nonblocking poll on [utun, wake pipe] with nfds 2, [] on timeout", async () => {
  const sys = new FakeDarwinLibc();
  const dev = UtunDevice.open(sys);
  sys.calls.length = 0;
  const got = await dev.read(30);
  assert.deepEqual(got, []);
  const polls = sys.calls.filter((c) => c.name === "poll");
  assert.ok(polls.length >= 1);
  assert.equal(polls[0].nfds, 2);
  assert.equal((polls[0].fds as number[]).length, 2);
  dev.close();
});

Deno.test("a packet arriving during the poll is returned; close() wakes a pending read", async () => {
  const sys = new FakeDarwinLibc();
  const dev = UtunDevice.open(sys);
  const pending = dev.read(5000);
  setTimeout(() => sys.inject("utun5", frame(v4(9))), 10);
  const got = await pending;
  assert.deepEqual(Array.from(got[0]), Array.from(v4(9)));

  const t0 = Date.now();
  const second = dev.read(5000);
  setTimeout(() => dev.close(), 10);
  assert.deepEqual(await second, []);
  assert.ok(Date.now() - t0 < 1000, "close must wake the poll, not wait it out");
  assert.deepEqual(sys.openFds, []); // the reader released the fds after waking
  assert.deepEqual(await dev.read(10), []);
});

Deno.test("write adds the big-endian family; drops (false) on EAGAIN/ENOBUFS or non-IP", () => {
  const sys = new FakeDarwinLibc();
  const dev = UtunDevice.open(sys);
  assert.equal(dev.write(v4(1)), true);
  assert.equal(dev.write(new Uint8Array([0x60, 1, 2, 3])), true);
  assert.deepEqual(
    sys.sent.get("utun5")!.map((f) => Array.from(f.subarray(0, 5))),
    [[0, 0, 0, 2, 0x45], [0, 0, 0, 30, 0x60]],
  );
  assert.equal(dev.write(new Uint8Array([0x10, 0])), false);
  sys.fail("write", DARWIN_E.EAGAIN);
  assert.equal(dev.write(v4(2)), false);
  sys.fail("write", DARWIN_E.ENOBUFS);
  assert.equal(dev.write(v4(3)), false);
  sys.fail("write", 9);
  assert.throws(() => dev.write(v4(4)), OsError);
  dev.close();
  assert.equal(dev.write(v4(5)), false);
});
