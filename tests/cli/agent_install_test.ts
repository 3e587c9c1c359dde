/**
 * `ssm-proxy agent install|status|uninstall` as a user runs them: the real CLI process against
 * the emulator, whose emulated SSM agent runs the install script with `sh -c` on a real pty.
 * Everything lands under a temporary SSM_PROXY_INSTALL_ROOT; systemd does not run here, so a
 * `systemctl` stand-in on the shell's PATH records what it is asked to do.
 *
 * The uploaded "binary" is the real agent behind a #! wrapper, padded with a few MB of random
 * text after its `exec` line, so the upload is big and incompressible like a real one.
 */
import assert from "node:assert/strict";
import { type Emulator, startEmulator } from "../../src/emulator/server.ts";
import type { EmulatedSession } from "../../src/emulator/sessions.ts";
import { PART_SCRIPT } from "../../src/install/scripts.ts";
import { awsEnv } from "../support/aws_env.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const AGENT_MAIN = new URL("../../agent/main.ts", import.meta.url).pathname;

const HOSTILE_NAME = `x'; touch PWNED; echo '$(touch PWNED2)`;

const FIXTURES = `account: "111122223333"
callerArn: arn:aws:iam::111122223333:user/dev
userId: AIDADEV000000000000001
instances:
  - id: i-0123456789abcdef0
    name: bastion
    privateIp: 10.99.0.10
  - id: i-0fedcba9876543210
    name: ${JSON.stringify(HOSTILE_NAME)}
    tags: { Role: "$(touch PWNED3)" }
    privateIp: 10.99.0.11
`;

const FAKE_SYSTEMCTL = `#!/bin/sh
# Records its arguments; is-active/is-enabled answer as a healthy unit would.
echo "$*" >> "$SYSTEMCTL_LOG"
case "$1" in
  is-active) echo active ;;
  is-enabled) echo enabled ;;
esac
exit 0
`;

interface World {
  env: Record<string, string>;
  root: string;
  dir: string;
  /** The shell's TMPDIR, where installs keep their parts: empty after every install. */
  tmp: string;
  binary: string;
  log: string;
  url: string;
  emu: Emulator;
  /** The part-upload sessions started so far, in order. */
  parts: EmulatedSession[];
  /** Called as each part session is created, before its client connects. */
  onPart?: (s: EmulatedSession, n: number) => void;
}

async function withWorld(fn: (w: World) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "ssmp-install-" });
  const root = `${dir}/root`;
  const bin = `${dir}/bin`;
  const tmp = `${dir}/tmp`;
  await Deno.mkdir(root);
  await Deno.mkdir(bin);
  await Deno.mkdir(tmp);
  const log = `${dir}/systemctl.log`;
  await Deno.writeTextFile(`${bin}/systemctl`, FAKE_SYSTEMCTL, { mode: 0o755 });
  await Deno.writeTextFile(`${dir}/fixtures.yaml`, FIXTURES);
  const binary = `${dir}/agent $(touch PWNED4) 'x`;
  await writeAgent(binary, 3 << 20);
  const emu = await startEmulator({
    port: 0,
    pacing: false,
    fixturesPath: `${dir}/fixtures.yaml`,
    agent: { shellInitialWaitMs: 0, shellCwd: dir },
    shellEnv: {
      SSM_PROXY_INSTALL_ROOT: root,
      SYSTEMCTL_LOG: log,
      PATH: `${bin}:${Deno.env.get("PATH")}`,
      // The shell runs in `dir`, where PWNED* would appear if anything were injected.
      HOME: dir,
      TMPDIR: tmp,
    },
  });
  const w: World = {
    env: { ...awsEnv(emu.url), NO_COLOR: "1" },
    root,
    dir,
    tmp,
    binary,
    log,
    url: emu.url,
    emu,
    parts: [],
  };
  // Sees each session as StartSession creates it, so a fault can be aimed at one part.
  const start = emu.registry.start.bind(emu.registry);
  emu.registry.start = (target, doc, params) => {
    const grant = start(target, doc, params);
    const s = emu.registry.get(grant.SessionId)!;
    if (params.command?.[0] === PART_SCRIPT) {
      w.parts.push(s);
      w.onPart?.(s, w.parts.length);
    }
    return grant;
  };
  try {
    await fn(w);
    assert.deepEqual([...Deno.readDirSync(tmp)], [], "an install left its temporary files");
    for (const f of ["PWNED", "PWNED2", "PWNED3", "PWNED4"]) {
      for (const where of [dir, root, Deno.cwd()]) {
        assert.equal(await exists(`${where}/${f}`), false, `${where}/${f}: a value was run`);
      }
    }
  } finally {
    await emu.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function writeAgent(path: string, padding: number) {
  const head = `#!/bin/sh\nexec ${Deno.execPath()} run -A --cached-only ${AGENT_MAIN} "$@"\n`;
  const random = new Uint8Array(padding * 3 / 4);
  for (let i = 0; i < random.length; i += 65536) {
    crypto.getRandomValues(random.subarray(i, i + 65536));
  }
  const { Buffer } = await import("node:buffer");
  const pad = Buffer.from(random).toString("base64").replace(/(.{100})/g, "# $1\n");
  await Deno.writeTextFile(path, head + pad + "\n", { mode: 0o755 });
}

async function exists(p: string): Promise<boolean> {
  return await Deno.lstat(p).then(() => true, () => false);
}

async function run(w: World, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--cached-only", MAIN, ...args],
    env: w.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

async function sha(path: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

const BIN = "usr/local/bin/ssm-proxy-agent";
const UNIT = "etc/systemd/system/ssm-proxy-agent.service";

Deno.test("agent install: upload through the pty, verified, installed, unit enabled; re-install skipped", async () => {
  await withWorld(async (w) => {
    const r = await run(w, [
      "agent",
      "install",
      "--target",
      "i-0123456789abcdef0",
      "--binary",
      w.binary,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /linux x64, ssm-proxy-agent not installed/);
    assert.match(r.stderr, /uploading 100%/);
    assert.match(
      r.stderr,
      /verified SHA-256 on the instance and installed ssm-proxy-agent \d.* over 4 sessions, /,
    );
    assert.match(r.stderr, /enabled and running/);
    assert.equal(w.parts.length, 4, "the default splits the upload across 4 sessions");
    assert.deepEqual(await Deno.readFile(`${w.root}/${BIN}`), await Deno.readFile(w.binary));
    assert.equal((await Deno.stat(`${w.root}/${BIN}`)).mode! & 0o777, 0o755);
    const unit = await Deno.readTextFile(`${w.root}/${UNIT}`);
    const expected = await Deno.readTextFile(
      new URL("../../scripts/ssm-proxy-agent.service", import.meta.url),
    );
    assert.equal(unit, expected, "the unit is the one the installed binary carries");
    assert.deepEqual(
      (await Deno.readTextFile(w.log)).trim().split("\n").filter((l) => !l.startsWith("is-")),
      ["daemon-reload", "enable ssm-proxy-agent", "restart ssm-proxy-agent"],
    );
    assert.deepEqual(await leftovers(w.root), []);

    const again = await run(w, [
      "agent",
      "install",
      "--target",
      "name:bastion",
      "--binary",
      w.binary,
    ]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /already runs this ssm-proxy-agent .* nothing to do/);
    assert.doesNotMatch(again.stderr, /uploading/);
    assert.equal(w.parts.length, 4, "a skipped install opens no part session");
    assert.equal(
      (await Deno.readTextFile(w.log)).match(/restart/g)?.length,
      1,
      "a skipped install does not restart the agent",
    );
  });
});

/** Arms the emulator's corruptInput fault (corrupt.ts) on one part session's upload. */
function corrupt(w: World, s: EmulatedSession) {
  // Past the part's header line: inside its base64.
  w.emu.mgs.faults.corruptInput(5_000, s.sessionId);
}

/** Ends a part session the way AWS would, while its client waits on it. */
function kill(w: World, s: EmulatedSession) {
  // Held still long enough that it cannot finish first.
  w.emu.mgs.faults.stall(600, s.sessionId);
  setTimeout(() => w.emu.registry.terminate(s.sessionId, "killed by the test"), 200);
}

Deno.test("agent install: a corrupted part is caught by its SHA-256 and sent again; the result is byte-exact", async () => {
  await withWorld(async (w) => {
    w.onPart = (s, n) => n === 2 && corrupt(w, s);
    const r = await run(w, ["agent", "install", "-t", "i-0123456789abcdef0", "--binary", w.binary]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /part \d of 4 failed \(.*the upload arrived corrupted.*\); trying it again/,
    );
    assert.match(r.stderr, /over 4 sessions, .*, 1 part sent twice\)/);
    assert.equal(w.parts.length, 5);
    assert.deepEqual(await Deno.readFile(`${w.root}/${BIN}`), await Deno.readFile(w.binary));
  });
});

Deno.test("agent install: a part corrupted twice is one line, and nothing is left half-installed", async () => {
  await withWorld(async (w) => {
    // An earlier version is installed; the failed upload must leave it exactly as it was.
    const old = `${w.dir}/old-agent`;
    await writeAgent(old, 1000);
    assert.equal(
      (await run(w, ["agent", "install", "-t", "i-0123456789abcdef0", "--binary", old])).code,
      0,
    );
    const before = await sha(`${w.root}/${BIN}`);
    const unitBefore = await Deno.readTextFile(`${w.root}/${UNIT}`);
    w.parts.length = 0;
    w.onPart = (s) => corrupt(w, s);
    const r = await run(w, ["agent", "install", "-t", "i-0123456789abcdef0", "--binary", w.binary]);
    assert.equal(r.code, 5, r.stderr);
    const last = r.stderr.trim().split("\n").at(-1)!;
    assert.match(
      last,
      /^ssm-proxy: on i-0123456789abcdef0: the upload arrived corrupted \(part \d of 4: .*\); it failed again when retried; nothing was installed$/,
    );
    assert.doesNotMatch(r.stderr, /internal error|\n\s+at /);
    assert.equal(await sha(`${w.root}/${BIN}`), before);
    assert.equal(await Deno.readTextFile(`${w.root}/${UNIT}`), unitBefore);
    assert.deepEqual(await leftovers(w.root), []);
  });
});

Deno.test("agent install: a part whose session dies is sent again; dying twice installs nothing", async () => {
  await withWorld(async (w) => {
    w.onPart = (s, n) => n === 3 && kill(w, s);
    const ok = await run(w, [
      "agent",
      "install",
      "-t",
      "i-0123456789abcdef0",
      "--binary",
      w.binary,
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /part \d of 4 failed .*; trying it again/);
    assert.deepEqual(await Deno.readFile(`${w.root}/${BIN}`), await Deno.readFile(w.binary));

    await Deno.remove(`${w.root}/${BIN}`);
    const dead = new Set<number>();
    w.parts.length = 0;
    // The first part session, and the one that retries its part.
    w.onPart = (s, n) => {
      if (n === 1 || (n > 4 && dead.size === 1)) {
        dead.add(n);
        kill(w, s);
      }
    };
    const r = await run(w, ["agent", "install", "-t", "i-0123456789abcdef0", "--binary", w.binary]);
    assert.equal(r.code, 5, r.stderr);
    assert.equal(dead.size, 2);
    const last = r.stderr.trim().split("\n").at(-1)!;
    assert.match(
      last,
      /^ssm-proxy: .*; part 1 of 4 failed again when retried; nothing was installed$/,
    );
    assert.doesNotMatch(r.stderr, /internal error|\n\s+at /);
    assert.equal(await exists(`${w.root}/${BIN}`), false);
    assert.deepEqual(await leftovers(w.root), []);
  });
});

Deno.test("agent install --parallel 1: one part session, byte-exact; out-of-range N refused", async () => {
  await withWorld(async (w) => {
    const r = await run(w, [
      "agent",
      "install",
      "-t",
      "i-0123456789abcdef0",
      "--binary",
      w.binary,
      "--parallel",
      "1",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, / over 1 session, /);
    assert.equal(w.parts.length, 1);
    assert.deepEqual(await Deno.readFile(`${w.root}/${BIN}`), await Deno.readFile(w.binary));
    for (const n of ["0", "17", "x"]) {
      const bad = await run(w, ["agent", "install", "-t", "i-0", "--parallel", n]);
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(bad.stderr.trim(), /--parallel wants a whole number of sessions from 1 to 16/);
    }
  });
});

Deno.test("agent status and uninstall; hostile names and tags are never run", async () => {
  await withWorld(async (w) => {
    const none = await run(w, ["agent", "status", "-t", "i-0123456789abcdef0", "--json"]);
    assert.equal(none.code, 0, none.stderr);
    assert.equal(JSON.parse(none.stdout).installed, false);

    // Found by its hostile Name tag, and by a hostile tag value: both are API parameters only.
    const byName = await run(w, [
      "agent",
      "install",
      "-t",
      `name:${HOSTILE_NAME}`,
      "--binary",
      w.binary,
    ]);
    assert.equal(byName.code, 0, byName.stderr);
    const byTag = await run(w, ["agent", "status", "-t", "tag:Role=$(touch PWNED3)"]);
    assert.equal(byTag.code, 0, byTag.stderr);
    assert.match(
      byTag.stdout,
      /i-0fedcba9876543210 .*: ssm-proxy-agent \S+, service active, enabled/,
    );

    const s = await run(w, ["agent", "status", "-t", "i-0fedcba9876543210", "--json"]);
    const doc = JSON.parse(s.stdout);
    assert.equal(doc.installed, true);
    assert.match(doc.version, /^ssm-proxy-agent \d/);
    assert.equal(doc.active, "active");

    const u = await run(w, ["agent", "uninstall", "-t", "i-0fedcba9876543210"]);
    assert.equal(u.code, 0, u.stderr);
    assert.match(u.stderr, /uninstalled from i-0fedcba9876543210/);
    assert.equal(await exists(`${w.root}/${BIN}`), false);
    assert.equal(await exists(`${w.root}/${UNIT}`), false);
    assert.match(await Deno.readTextFile(w.log), /disable --now ssm-proxy-agent/);
    const again = await run(w, ["agent", "uninstall", "-t", "i-0fedcba9876543210"]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /not installed on i-0fedcba9876543210; nothing to remove/);

    const bad = await run(w, [
      "agent",
      "install",
      "-t",
      "name:$(touch PWNED)",
      "--binary",
      w.binary,
    ]);
    assert.equal(bad.code, 4, bad.stderr);
  });
});

/** Staging files or temporary files the installer must never leave behind. */
async function leftovers(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = `${d}/${e.name}`;
      if (e.isDirectory) await walk(p);
      else if (e.name.endsWith(".new")) out.push(p);
    }
  };
  await walk(root);
  return out;
}

Deno.test("agent install: a session AWS ends part-way is one line, and nothing is installed", async () => {
  await withWorld(async (w) => {
    const res = await fetch(`${w.url}/_emulator/faults`, {
      method: "POST",
      body: JSON.stringify({ action: "maxSessionDuration", ms: 300 }),
    });
    await res.body?.cancel();
    assert.ok(res.ok);
    const r = await run(w, ["agent", "install", "-t", "i-0123456789abcdef0", "--binary", w.binary]);
    assert.equal(r.code, 5, `exit ${r.code}: ${r.stderr}`);
    const last = r.stderr.trim().split("\n").at(-1)!;
    assert.match(
      last,
      /^ssm-proxy: .*(closed by AWS|ended unexpectedly|timed out or was terminated)/,
      r.stderr,
    );
    assert.doesNotMatch(r.stderr, /internal error|\n\s+at /);
    assert.equal(await exists(`${w.root}/${BIN}`), false);
    assert.deepEqual(await leftovers(w.root), []);
  });
});
