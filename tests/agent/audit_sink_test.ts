/** Where audit lines go (agent/audit_sink.ts): the journal's stdout, or a rotated file. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { JOURNAL_PREFIX, openAuditSink } from "../../agent/audit_sink.ts";

const line = (i: number) => JSON.stringify({ n: i, pad: "x".repeat(40) });

async function waitFor(what: string, ok: () => boolean | Promise<boolean>, ms = 3000) {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const read = (path: string) => Deno.readTextFile(path).catch(() => "");
const linesOf = (text: string) => text.split("\n").filter((l) => l !== "");

Deno.test("off: no sink", async () => {
  assert.equal(await openAuditSink({ to: "off" }, () => {}), undefined);
});

Deno.test("journal: prefixed lines on stdout, flushed on close", async () => {
  const chunks: Uint8Array[] = [];
  const sink = (await openAuditSink({ to: "journal" }, () => {}, {
    // A slow, short-writing stream: the sink has to loop.
    stdout: {
      write: async (p) => {
        await new Promise((r) => setTimeout(r, 1));
        const n = Math.min(p.length, 7);
        chunks.push(p.slice(0, n));
        return n;
      },
    },
  }))!;
  sink.write('{"a":1}');
  sink.write('{"b":2}');
  assert.equal(chunks.length, 0, "write() only queues");
  await sink.close();
  const text = new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
  assert.equal(text, `${JOURNAL_PREFIX}{"a":1}\n${JOURNAL_PREFIX}{"b":2}\n`);
});

Deno.test("a burst past the queue's bound: lines dropped, counted, logged once", async () => {
  const out: string[] = [];
  const logs: string[] = [];
  const sink = (await openAuditSink({ to: "journal" }, (l) => logs.push(l), {
    maxPendingBytes: 3 * (JOURNAL_PREFIX.length + 8),
    stdout: { write: (p) => Promise.resolve(out.push(new TextDecoder().decode(p)) && p.length) },
  }))!;
  for (let i = 0; i < 5; i++) sink.write(`{"i":${i}}`);
  await sink.close();
  assert.equal(out.join(""), [0, 1, 2].map((i) => `${JOURNAL_PREFIX}{"i":${i}}\n`).join(""));
  assert.deepEqual(logs, ["audit: 2 lines dropped: more than 42 bytes were waiting for stdout"]);
});

Deno.test("file: made with its directory (0750, 0640), flushed within a second", async () => {
  const root = await Deno.makeTempDir();
  try {
    const path = join(root, "var/log/ssm-proxy/audit.log");
    const logs: string[] = [];
    const sink = (await openAuditSink(
      { to: "file", path, maxBytes: 1 << 20, keep: 2 },
      (l) => logs.push(l),
    ))!;
    assert.equal((await Deno.stat(join(root, "var/log/ssm-proxy"))).mode! & 0o777, 0o750);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o640);
    sink.write(line(1));
    const t0 = Date.now();
    await waitFor("the line on disk", async () => (await read(path)) === line(1) + "\n", 2000);
    assert.ok(Date.now() - t0 <= 1500, "the 1 s flush, with some slack for a loaded machine");
    sink.write(line(2));
    await sink.close();
    assert.deepEqual(linesOf(await read(path)), [line(1), line(2)]);
    assert.deepEqual(logs, []);
    sink.write(line(3)); // after close: ignored, no throw
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("file rotation: at maxBytes, keeping `keep` old files, lines whole and in order", async () => {
  const root = await Deno.makeTempDir();
  try {
    const path = join(root, "audit.log");
    const maxBytes = 300;
    const sink = (await openAuditSink(
      { to: "file", path, maxBytes, keep: 3 },
      () => {},
      { flushMs: 5 },
    ))!;
    const n = 60;
    for (let i = 0; i < n; i++) {
      sink.write(line(i));
      if (i % 7 === 0) await new Promise((r) => setTimeout(r, 15)); // several flushes
    }
    await sink.close();
    const names = [...Deno.readDirSync(root)].map((e) => e.name).sort();
    assert.deepEqual(names, ["audit.log", "audit.log.1", "audit.log.2", "audit.log.3"]);
    const kept: string[] = [];
    for (const name of ["audit.log.3", "audit.log.2", "audit.log.1", "audit.log"]) {
      const text = await read(join(root, name));
      assert.ok(text.length <= maxBytes, `${name} has ${text.length} bytes`);
      assert.ok(text.endsWith("\n"));
      kept.push(...linesOf(text));
    }
    // The newest lines survive, whole and in order; a line is 57 bytes, so 5 fit in a file.
    const first = JSON.parse(kept[0]).n;
    assert.deepEqual(kept, Array.from({ length: n - first }, (_, i) => line(first + i)));
    assert.ok(kept.length >= 16 && kept.length <= 20, `${kept.length} lines kept`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("file rotation with keep 0: the file starts over", async () => {
  const root = await Deno.makeTempDir();
  try {
    const path = join(root, "audit.log");
    const sink = (await openAuditSink({ to: "file", path, maxBytes: 130, keep: 0 }, () => {}))!;
    for (let i = 0; i < 5; i++) sink.write(line(i));
    await sink.close();
    assert.deepEqual([...Deno.readDirSync(root)].map((e) => e.name), ["audit.log"]);
    assert.deepEqual(linesOf(await read(path)), [line(4)]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("an unwritable path: one log line, no throw, the agent goes on", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(root, "file"), "");
    const path = join(root, "file/audit.log"); // a directory that is a file
    const logs: string[] = [];
    const sink = (await openAuditSink(
      { to: "file", path, maxBytes: 1 << 20, keep: 2 },
      (l) => logs.push(l),
      { flushMs: 5 },
    ))!;
    assert.equal(logs.length, 1);
    assert.match(logs[0], /^audit: cannot write to .*file\/audit\.log: .*retrying/);
    for (let i = 0; i < 5; i++) {
      sink.write(line(i));
      await new Promise((r) => setTimeout(r, 15));
    }
    assert.equal(logs.length, 1, "one line, not one per retry");
    await sink.close();
    assert.match(logs[1], /^audit: 5 lines could not be written/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("disk full: lines wait, then go out whole once the file is writable", async () => {
  const root = await Deno.makeTempDir();
  try {
    const path = join(root, "audit.log");
    await Deno.symlink("/dev/full", path); // every write fails with ENOSPC
    const logs: string[] = [];
    const sink = (await openAuditSink(
      { to: "file", path, maxBytes: 1 << 20, keep: 2 },
      (l) => logs.push(l),
      { flushMs: 5, maxPendingBytes: 6 * (line(0).length + 1) + 10 },
    ))!;
    for (let i = 0; i < 10; i++) sink.write(line(i)); // 6 are kept, 4 dropped
    await waitFor("the failure logged", () => logs.length > 0);
    assert.match(logs[0], /No space left on device/);
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(logs.length, 1);
    await Deno.remove(path); // room again: the next flush makes a real file
    await waitFor("the lines written", async () => linesOf(await read(path)).length === 6);
    assert.deepEqual(linesOf(await read(path)), [0, 1, 2, 3, 4, 5].map(line));
    assert.match(logs[1], /^audit: writing to .* again; 4 lines were dropped meanwhile$/);
    assert.ok(!(await Deno.lstat(path)).isSymlink);
    await sink.close();
    assert.equal(logs.length, 2);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a file moved away (logrotate) or a directory removed: a new file at the path", async () => {
  const root = await Deno.makeTempDir();
  try {
    const dir = join(root, "logs");
    const path = join(dir, "audit.log");
    const logs: string[] = [];
    const sink = (await openAuditSink(
      { to: "file", path, maxBytes: 1 << 20, keep: 2 },
      (l) => logs.push(l),
      { flushMs: 5 },
    ))!;
    sink.write(line(1));
    await waitFor("line 1", async () => linesOf(await read(path)).length === 1);
    await Deno.rename(path, join(root, "moved.log"));
    sink.write(line(2));
    await waitFor("line 2", async () => linesOf(await read(path)).length === 1);
    assert.deepEqual(linesOf(await read(path)), [line(2)]);
    assert.deepEqual(linesOf(await read(join(root, "moved.log"))), [line(1)]);
    await Deno.remove(dir, { recursive: true });
    sink.write(line(3));
    await sink.close();
    assert.deepEqual(linesOf(await read(path)), [line(3)]);
    assert.equal((await Deno.stat(dir)).mode! & 0o777, 0o750);
    assert.deepEqual(logs, []);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
