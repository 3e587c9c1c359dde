import assert from "node:assert/strict";
import { decodeMallinfo2, mallocInfo, mallocTrim } from "../../ffi/linux/malloc.ts";

const linux = Deno.build.os === "linux";

Deno.test("decodeMallinfo2 reads held, in-use and free bytes from struct mallinfo2", () => {
  const raw = new Uint8Array(80);
  const v = new DataView(raw.buffer);
  const fields = [1000, 1, 2, 3, 500, 0, 0, 1200, 300, 7];
  fields.forEach((x, i) => v.setBigUint64(i * 8, BigInt(x), true));
  assert.deepEqual(decodeMallinfo2(raw), { heldBytes: 1500, inUseBytes: 1200, freeBytes: 300 });
});

Deno.test({
  name: "mallocInfo and mallocTrim work against this glibc",
  ignore: !linux,
  fn() {
    const info = mallocInfo();
    assert.ok(info, "glibc's mallinfo2 is there");
    assert.ok(info.inUseBytes > 0 && info.heldBytes >= info.inUseBytes);
    assert.equal(typeof mallocTrim(), "boolean");
  },
});

/**
 * The real effect, in a child so that its garbage is its own: free 60 MB of small backing stores
 * (malloc'd, below the mmap threshold), then keepMemoryTrimmed() must hand most of it back.
 */
Deno.test({
  name: "keepMemoryTrimmed gives freed malloc memory back to the OS",
  ignore: !linux,
  async fn() {
    const runtime = new URL("../../src/runtime.ts", import.meta.url).href;
    const malloc = new URL("../../ffi/linux/malloc.ts", import.meta.url).href;
    const script = `
      import { keepMemoryTrimmed } from ${JSON.stringify(runtime)};
      import { mallocInfo } from ${JSON.stringify(malloc)};
      const rss = () => Number(/RssAnon:\\s+(\\d+)/.exec(Deno.readTextFileSync("/proc/self/status"))[1]) / 1024;
      let keep = [];
      for (let i = 0; i < 60000; i++) keep.push(new Uint8Array(1024).fill(1));
      keep = [];
      globalThis.gc();
      await new Promise((r) => setTimeout(r, 200));
      const before = { rss: rss(), free: mallocInfo().freeBytes / 2 ** 20 };
      const stop = keepMemoryTrimmed(60_000);
      await new Promise((r) => setTimeout(r, 300));
      stop();
      console.log(JSON.stringify({ before, after: { rss: rss(), free: mallocInfo().freeBytes / 2 ** 20 } }));
    `;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--v8-flags=--expose-gc", script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const r = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
    assert.ok(r.before.free > 40, `60 MB freed shows as free malloc memory: ${JSON.stringify(r)}`);
    assert.ok(r.before.rss - r.after.rss > 30, `most of it returned: ${JSON.stringify(r)}`);
  },
});
