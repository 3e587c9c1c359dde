/**
 * ffi/linux/pty.ts: the winsize encoder (golden bytes, any OS) and, on Linux, a real pty with a
 * child that owns it as its controlling terminal, resize, backpressured writes and group kill.
 */
import assert from "node:assert/strict";
import {
  decodeWinsize,
  encodeWinsize,
  killProcessGroup,
  LinuxPty,
  spawnOnPty,
} from "../../ffi/linux/pty.ts";

const linux = Deno.build.os === "linux";
const dec = new TextDecoder();
const enc = new TextEncoder();

Deno.test("pty: struct winsize is rows, cols, xpixel, ypixel as host-order u16", () => {
  assert.deepEqual([...encodeWinsize(80, 24)], [24, 0, 80, 0, 0, 0, 0, 0]);
  assert.deepEqual([...encodeWinsize(300, 100)], [100, 0, 0x2c, 1, 0, 0, 0, 0]);
  assert.deepEqual([...encodeWinsize(70000, -1)], [0, 0, 0xff, 0xff, 0, 0, 0, 0]);
  assert.deepEqual(decodeWinsize(encodeWinsize(132, 43)), { cols: 132, rows: 43 });
});

/** Reads until `pred(text so far)` holds; the text accumulated is returned. */
async function readUntil(pty: LinuxPty, pred: (s: string) => boolean, ms = 5000) {
  let text = "";
  const deadline = Date.now() + ms;
  while (!pred(text)) {
    if (Date.now() > deadline) throw new Error(`timed out; got ${JSON.stringify(text)}`);
    const r = await pty.read(100);
    if (r instanceof Uint8Array) text += dec.decode(r, { stream: true });
    else if (r !== "timeout") break;
  }
  return text;
}

Deno.test({
  name: "pty: the child has it as controlling tty; TIOCSWINSZ shows in stty size",
  ignore: !linux,
  async fn() {
    const pty = LinuxPty.open();
    assert.match(pty.path, /^\/dev\/pts\/\d+$/);
    pty.setSize(100, 40);
    assert.deepEqual(pty.getSize(), { cols: 100, rows: 40 });
    const child = spawnOnPty(pty, [
      "sh",
      "-c",
      'test -t 0 && echo "tty:yes"; stty size; echo "term:$TERM"; read x; echo "got:$x"',
    ], { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", TERM: "dumb" });
    let text = await readUntil(pty, (s) => s.includes("term:"));
    assert.match(text, /tty:yes/);
    assert.match(text, /40 100/);
    assert.ok(await pty.write(enc.encode("hello\n")));
    text = await readUntil(pty, (s) => s.includes("got:hello"));
    assert.equal((await child.status).code, 0);
    pty.releaseSlave();
    // After the exit and with our slave fd gone, the master reports the hang-up.
    let r = await pty.read(1000);
    while (r instanceof Uint8Array) r = await pty.read(1000);
    assert.equal(r, "hangup");
    pty.close();
    assert.equal(await pty.read(10), "closed");
  },
});

Deno.test({
  name: "pty: a program that does not read holds writes back; nothing is lost",
  ignore: !linux,
  async fn() {
    const pty = LinuxPty.open();
    const child = spawnOnPty(pty, ["sh", "-c", "stty -echo; echo R; sleep 0.3; wc -c"], {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    });
    await readUntil(pty, (s) => s.includes("R"));
    const line = enc.encode("x".repeat(99) + "\n");
    const total = new Uint8Array(300 * 1024);
    for (let o = 0; o < total.length; o += line.length) {
      total.set(line.subarray(0, total.length - o), o);
    }
    total[total.length - 1] = 0x0a;
    const t0 = Date.now();
    const output = readUntil(pty, (s) => /\d+\s*$/.test(s.trim()) && s.includes("\n"), 10_000);
    assert.ok(await pty.write(total));
    // The kernel holds far less than 300 KiB, so the write waited for the reader.
    assert.ok(Date.now() - t0 >= 200, `write returned after ${Date.now() - t0} ms`);
    assert.ok(await pty.write(new Uint8Array([0x04])));
    assert.match(await output, new RegExp(`\\b${total.length}\\b`));
    await child.status;
    pty.close();
  },
});

Deno.test({
  name: "pty: killProcessGroup ends the shell and its children; close wakes a pending read",
  ignore: !linux,
  async fn() {
    const pty = LinuxPty.open();
    const child = spawnOnPty(pty, ["sh", "-c", "sleep 1000 & sleep 1000"], {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    });
    const pending = pty.read(5000);
    await new Promise((r) => setTimeout(r, 100));
    killProcessGroup(child.pid);
    const status = await child.status;
    assert.equal(status.signal, "SIGKILL");
    const t0 = Date.now();
    pty.close();
    assert.equal(await pending, "closed");
    assert.ok(Date.now() - t0 < 1000);
  },
});
