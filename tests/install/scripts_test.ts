import assert from "node:assert/strict";
import fc from "fast-check";
import { Buffer } from "node:buffer";
import {
  CLEANUP_SCRIPT,
  INSTALL_SCRIPT,
  parseMarkers,
  PART_SCRIPT,
  shellQuote,
  STATUS_SCRIPT,
  UNINSTALL_SCRIPT,
} from "../../src/install/scripts.ts";
import { gzip, sha256Hex } from "../../src/install/payload.ts";

async function sh(args: string[], stdin?: string): Promise<{ code: number; out: string }> {
  const p = new Deno.Command("sh", {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = p.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const r = await p.output();
  return {
    code: r.code,
    out: new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr),
  };
}

Deno.test("shellQuote: sh gets back exactly the string, whatever it holds", async () => {
  const hostile = [
    "",
    "'",
    "a'b",
    "$(touch /tmp/ssmp-pwned)",
    "`id`",
    "; rm -rf /",
    "a\nb",
    "\\'\\",
    "*",
    "-n",
    "é ✓",
  ];
  for (const s of hostile) {
    const r = await sh(["-c", `printf %s ${shellQuote(s)}`]);
    assert.equal(r.out, s);
  }
  await fc.assert(
    fc.asyncProperty(
      fc.string({ unit: "binary", maxLength: 40 }).filter((s) => !s.includes("\0")),
      async (s) => {
        const r = await sh(["-c", `printf %s ${shellQuote(s)}`]);
        assert.equal(r.out, s);
      },
    ),
    { numRuns: 60 },
  );
});

const SCRIPTS = { INSTALL_SCRIPT, PART_SCRIPT, CLEANUP_SCRIPT, STATUS_SCRIPT, UNINSTALL_SCRIPT };

Deno.test("the remote scripts are valid POSIX sh", async () => {
  for (
    const [name, script] of Object.entries(SCRIPTS)
  ) {
    const r = await sh(["-n", "-c", script]);
    assert.equal(r.code, 0, `${name}: ${r.out}`);
  }
});

Deno.test("the remote scripts pass shellcheck (when installed)", async () => {
  const has = await new Deno.Command("sh", { args: ["-c", "command -v shellcheck"] }).output();
  if (!has.success) return; // CI installs it; a bare machine may not have it
  for (
    const [name, script] of Object.entries(SCRIPTS)
  ) {
    const r = await sh(["-c", "shellcheck -s sh -S warning -"], script);
    assert.equal(r.code, 0, `${name}:\n${r.out}`);
  }
});

Deno.test("the install script embeds no value: the checksum line is validated before use", async () => {
  // Run it for real against a root where nothing is installed, answering with hostile lines:
  // each must be refused by the script itself, with nothing written.
  const root = await Deno.makeTempDir();
  try {
    for (const line of ["$(touch x) 1", "abc 12", `${"a".repeat(64)} 1;id`, "`id` 3"]) {
      const r = await runInstall(root, `${line}\n`);
      assert.match(r, /__SSMP_FAIL__ bad (checksum|size) line/, r);
    }
    const left = [...Deno.readDirSync(root)];
    assert.deepEqual(left, []);
    const r = await runInstall(root, "skip\n");
    assert.match(r, /__SSMP_SKIPPED__/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

async function runInstall(root: string, input: string): Promise<string> {
  const p = new Deno.Command("sh", {
    args: ["-c", INSTALL_SCRIPT],
    cwd: root,
    env: { SSM_PROXY_INSTALL_ROOT: root },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = p.stdin.getWriter();
  await w.write(new TextEncoder().encode(input));
  await w.close();
  const r = await p.output();
  return new TextDecoder().decode(r.stdout);
}

Deno.test("parseMarkers: pty CRLF, split lines, noise kept apart", () => {
  const a = parseMarkers("noise\r\n__SSMP_ARCH__ x86_64\r\n__SSMP_REA");
  assert.deepEqual(a.markers, [{ word: "ARCH", text: "x86_64" }]);
  assert.deepEqual(a.other, ["noise"]);
  const b = parseMarkers(a.rest + "DY__ \r\n__SSMP_DONE__\n");
  assert.deepEqual(b.markers, [{ word: "READY", text: "" }, { word: "DONE", text: "" }]);
  assert.equal(b.rest, "");
  // Something that only looks like a marker in the middle of a line is not one.
  assert.deepEqual(parseMarkers("x __SSMP_FAIL__ y\n").markers, []);
});

/** A script on pipes, answered line by line as its markers arrive (a pty needs ^D; a pipe EOF). */
class Script {
  #p: Deno.ChildProcess;
  #w: WritableStreamDefaultWriter<Uint8Array>;
  #lines: AsyncIterator<string>;
  #buf = "";
  #it: AsyncIterator<Uint8Array>;
  out: string[] = [];

  constructor(script: string, env: Record<string, string>) {
    this.#p = new Deno.Command("sh", {
      args: ["-c", script],
      env,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#w = this.#p.stdin.getWriter();
    this.#it = this.#p.stdout[Symbol.asyncIterator]();
    this.#lines = this.#read();
  }

  async *#read(): AsyncGenerator<string> {
    const dec = new TextDecoder();
    for (;;) {
      const r = await this.#it.next();
      if (r.done) break;
      this.#buf += dec.decode(r.value);
      const parts = this.#buf.split("\n");
      this.#buf = parts.pop()!;
      yield* parts;
    }
  }

  /** The text of the next `word` marker; other markers pass, FAIL throws. */
  async expect(word: string): Promise<string> {
    for (;;) {
      const r = await this.#lines.next();
      if (r.done) throw new Error(`ended before ${word}: ${this.out.join(" / ")}`);
      this.out.push(r.value);
      const m = parseMarkers(r.value + "\n").markers[0];
      if (m?.word === "FAIL") throw new Error(`FAIL ${m.text}`);
      if (m?.word === word) return m.text;
    }
  }

  async write(text: string | Uint8Array): Promise<void> {
    await this.#w.write(typeof text === "string" ? new TextEncoder().encode(text) : text);
  }

  /** Closes its input and collects the rest of its output into `out`. */
  async end(): Promise<void> {
    await this.#w.close().catch(() => {});
    for (;;) {
      const r = await this.#lines.next();
      if (r.done) break;
      this.out.push(r.value);
    }
    await this.#p.status;
    await this.#p.stderr.cancel();
  }
}

const FAKE_SYSTEMCTL = `#!/bin/sh
case "$1" in is-active) echo active ;; esac
exit 0
`;

async function world() {
  const dir = await Deno.makeTempDir({ prefix: "ssmp-scripts-" });
  await Deno.mkdir(`${dir}/root`);
  await Deno.mkdir(`${dir}/bin`);
  await Deno.mkdir(`${dir}/tmp`);
  await Deno.writeTextFile(`${dir}/bin/systemctl`, FAKE_SYSTEMCTL, { mode: 0o755 });
  const env = {
    PATH: `${dir}/bin:${Deno.env.get("PATH")}`,
    SSM_PROXY_INSTALL_ROOT: `${dir}/root`,
    TMPDIR: `${dir}/tmp`,
  };
  return { dir, env };
}

/** A runnable "agent": answers --version and unit, then random bytes sh never reaches. */
function fakeAgent(size: number): Uint8Array<ArrayBuffer> {
  const head = new TextEncoder().encode(
    `#!/bin/sh\ncase "$1" in --version) echo ssm-proxy-agent 9.9.9 ;; unit) echo '[Unit]' ;; esac\nexit 0\n`,
  );
  const out = new Uint8Array(size);
  out.set(head);
  for (let i = head.length; i < size; i += 65536) {
    crypto.getRandomValues(out.subarray(i, Math.min(size, i + 65536)));
  }
  return out;
}

async function sendPart(
  env: Record<string, string>,
  line: string,
  slice: Uint8Array<ArrayBuffer>,
): Promise<Script> {
  const s = new Script(PART_SCRIPT, env);
  await s.expect("READY");
  await s.write(`${line}\n`);
  await s.expect("SEND");
  const b64 = Buffer.from(slice).toString("base64").replace(/(.{76})/g, "$1\n");
  await s.write(b64 + "\n");
  return s;
}

Deno.test("install and part scripts: parts joined in order, each and the whole checked, byte-exact", async () => {
  const { dir, env } = await world();
  try {
    const bin = fakeAgent(300_001);
    // The parts are slices of the binary's one gzip stream.
    const gz = await gzip(bin);
    const cuts = [0, 100_000, 200_000, gz.length];
    const slices = [0, 1, 2].map((i) => gz.slice(cuts[i], cuts[i + 1]));
    const hashes = await Promise.all(slices.map(sha256Hex));
    const c = new Script(INSTALL_SCRIPT, env);
    for (const w of ["ARCH", "CURRENT", "VERSION", "SYSTEMD"]) await c.expect(w);
    const t = await c.expect("DIR");
    assert.match(t, new RegExp(`^${dir}/tmp/ssm-proxy\\.`));
    await c.expect("READY");
    await c.write(`${await sha256Hex(bin)} ${bin.length} ${hashes.join(" ")}\n`);
    assert.equal(await c.expect("PARTS"), "3");
    // Out of order on purpose: the join follows the part numbers, not arrival.
    for (const i of [2, 0, 1]) {
      const p = await sendPart(env, `${t} ${i + 1} 3 ${hashes[i]}`, slices[i]);
      await p.end();
      assert.match(p.out.join("\n"), new RegExp(`__SSMP_PART__ ${hashes[i]}`));
    }
    await c.write("join\n");
    assert.equal(await c.expect("INSTALLED"), "ssm-proxy-agent 9.9.9");
    await c.expect("ACTIVE");
    await c.expect("DONE");
    await c.end();
    assert.deepEqual(await Deno.readFile(`${dir}/root/usr/local/bin/ssm-proxy-agent`), bin);
    assert.deepEqual([...Deno.readDirSync(`${dir}/tmp`)], [], "the temporary directory is gone");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("part script: a corrupted part is refused and removed; abort leaves nothing", async () => {
  const { dir, env } = await world();
  try {
    const bin = fakeAgent(50_000);
    const gz = await gzip(bin);
    const c = new Script(INSTALL_SCRIPT, env);
    const t = await c.expect("DIR");
    await c.expect("READY");
    const h = await sha256Hex(gz);
    await c.write(`${await sha256Hex(bin)} ${bin.length} ${h}\n`);
    await c.expect("PARTS");
    const bad = gz.slice();
    bad[40_000] ^= 1;
    const p = await sendPart(env, `${t} 1 1 ${h}`, bad);
    await p.end();
    assert.match(
      p.out.join("\n"),
      new RegExp(
        `__SSMP_FAIL__ the upload arrived corrupted \\(part 1 of 1: ${gz.length} bytes, SHA-256 [0-9a-f]{64}, expected`,
      ),
    );
    assert.deepEqual([...Deno.readDirSync(t)].map((e) => e.name), [".ssm-proxy-install"]);
    await c.write("abort\n");
    await c.expect("ABORTED");
    await c.end();
    assert.deepEqual([...Deno.readDirSync(`${dir}/tmp`)], []);
    assert.deepEqual([...Deno.readDirSync(`${dir}/root`)], [], "nothing installed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("install script: a join with a part missing installs nothing", async () => {
  const { dir, env } = await world();
  try {
    const bin = fakeAgent(20_000);
    const gz = await gzip(bin);
    const [a, b] = [gz.slice(0, 10_000), gz.slice(10_000)];
    const c = new Script(INSTALL_SCRIPT, env);
    const t = await c.expect("DIR");
    await c.expect("READY");
    await c.write(
      `${await sha256Hex(bin)} ${bin.length} ${await sha256Hex(a)} ${await sha256Hex(b)}\n`,
    );
    await c.expect("PARTS");
    await (await sendPart(env, `${t} 1 2 ${await sha256Hex(a)}`, a)).end();
    await c.write("join\n");
    await assert.rejects(
      c.expect("INSTALLED"),
      /FAIL part 2 of 2 never arrived; nothing was installed/,
    );
    await c.end();
    assert.deepEqual([...Deno.readDirSync(`${dir}/tmp`)], []);
    assert.deepEqual([...Deno.readDirSync(`${dir}/root`)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("install script: parts that each check out but do not unpack install nothing", async () => {
  const { dir, env } = await world();
  try {
    const bin = fakeAgent(20_000);
    const gz = await gzip(bin);
    // The digests the client sent match what arrives, but the stream is cut short: only the
    // unpacking can tell.
    const short = gz.slice(0, gz.length - 100);
    const c = new Script(INSTALL_SCRIPT, env);
    const t = await c.expect("DIR");
    await c.expect("READY");
    await c.write(`${await sha256Hex(bin)} ${bin.length} ${await sha256Hex(short)}\n`);
    await c.expect("PARTS");
    await (await sendPart(env, `${t} 1 1 ${await sha256Hex(short)}`, short)).end();
    await c.write("join\n");
    await assert.rejects(
      c.expect("INSTALLED"),
      /FAIL the upload arrived corrupted \(gzip: .*\); nothing was installed/,
    );
    await c.end();
    assert.deepEqual([...Deno.readDirSync(`${dir}/tmp`)], []);
    assert.deepEqual([...Deno.readDirSync(`${dir}/root`)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("part and cleanup scripts refuse any directory that is not an install's own", async () => {
  const { dir, env } = await world();
  try {
    const victim = `${dir}/tmp/ssm-proxy.victim`;
    await Deno.mkdir(victim);
    await Deno.writeTextFile(`${victim}/keep`, "x");
    const h = "a".repeat(64);
    for (
      const d of [
        "$(touch PWNED)",
        "/tmp/../etc",
        "relative/ssm-proxy.x",
        `${dir}/tmp/other`,
        `${dir}/tmp/ssm-proxy.x;id`,
        victim, // no marker file: not made by an install
      ]
    ) {
      const p = new Script(PART_SCRIPT, env);
      await p.expect("READY");
      await p.write(`${d} 1 1 ${h}\n`);
      await assert.rejects(p.expect("SEND"), /FAIL (bad directory line|the install's temporary)/);
      await p.end();
      const k = new Script(CLEANUP_SCRIPT, env);
      await k.expect("READY");
      await k.write(`${d}\n`);
      await k.end();
    }
    for (const line of [`${victim} 1 1 ${"g".repeat(64)}`, `${victim} x 1 ${h}`, `${victim} 1 1`]) {
      const p = new Script(PART_SCRIPT, env);
      await p.expect("READY");
      await p.write(`${line}\n`);
      await assert.rejects(p.expect("SEND"), /FAIL bad part line/);
      await p.end();
    }
    assert.equal(await Deno.readTextFile(`${victim}/keep`), "x");
    assert.equal([...Deno.readDirSync(Deno.cwd())].some((e) => e.name === "PWNED"), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
