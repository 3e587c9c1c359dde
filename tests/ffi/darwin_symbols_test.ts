/**
 * The darwin symbol table's declarations, exercised against glibc on Linux (all but __error exist
 * there): the 9-argument ioctl/fcntl reach the kernel intact, `read` into a subarray honours its
 * byteOffset (the utun reader relies on it), and poll with a u32 nfds works. This proves the
 * declarations are well-formed for Deno's FFI; the Apple arm64 stack slot itself needs a Mac.
 */
import assert from "node:assert/strict";
import { DARWIN_SYMBOLS } from "../../ffi/libc.ts";

const LINUX_SIOCGIFMTU = 0x8921n;

Deno.test({
  name: "DARWIN_SYMBOLS declarations work through Deno FFI (on glibc)",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const { __error: _, ...symbols } = DARWIN_SYMBOLS;
    const lib = Deno.dlopen("libc.so.6", symbols);
    const s = lib.symbols;
    try {
      const fd = s.socket(2, 2, 0);
      assert.ok(fd >= 0);
      const ifr = new Uint8Array(40);
      ifr.set(new TextEncoder().encode("lo"));
      assert.equal(s.ioctl(fd, LINUX_SIOCGIFMTU, ifr, 0n, 0n, 0n, 0n, 0n, ifr), 0);
      assert.equal(new DataView(ifr.buffer).getInt32(16, true), 65536);
      const fl = s.fcntl(fd, 3, 0n, 0n, 0n, 0n, 0n, 0n, 0n);
      assert.ok(fl >= 0);
      assert.equal(s.fcntl(fd, 4, BigInt(fl | 0x800), 0n, 0n, 0n, 0n, 0n, BigInt(fl | 0x800)), 0);
      assert.equal(s.fcntl(fd, 3, 0n, 0n, 0n, 0n, 0n, 0n, 0n) & 0x800, 0x800);
      s.close(fd);

      const fds = new Uint8Array(8);
      assert.equal(s.pipe(fds), 0);
      const dv = new DataView(fds.buffer);
      const [r, w] = [dv.getInt32(0, true), dv.getInt32(4, true)];
      assert.equal(Number(s.write(w, new Uint8Array([7, 8, 9]), 3n)), 3);
      const pfd = new Uint8Array(8);
      new DataView(pfd.buffer).setInt32(0, r, true);
      new DataView(pfd.buffer).setInt16(4, 1, true);
      assert.equal(await s.poll_nb(pfd, 1, 1000), 1);
      const arena = new Uint8Array(16);
      assert.equal(Number(s.read(r, arena.subarray(5), 3n)), 3);
      assert.deepEqual(Array.from(arena.subarray(4, 9)), [0, 7, 8, 9, 0]);
      s.close(r);
      s.close(w);
      assert.equal(s.if_nametoindex(new TextEncoder().encode("lo\0")), 1);
      assert.ok(s.getpid() === Deno.pid);
    } finally {
      lib.close();
    }
  },
});
