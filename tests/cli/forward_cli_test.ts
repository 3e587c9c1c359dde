/**
 * The `ssm-proxy forward` command as a user runs it: a separate process, its output lines, exit
 * codes and signals, against the emulator.
 */
import assert from "node:assert/strict";
import { startEmulator } from "../../src/emulator/server.ts";
import { awsEnv } from "../support/aws_env.ts";
import { startDestination } from "../support/net.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const WORLD = new URL("../fixtures/emulator_world.yaml", import.meta.url).pathname;

function cli(args: string[], env: Record<string, string>) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--cached-only", MAIN, ...args],
    env: { ...env, NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

async function runCli(args: string[], env: Record<string, string>) {
  const out = await cli(args, env).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

async function withWorld(fn: (env: Record<string, string>, destPort: number) => Promise<void>) {
  const emu = await startEmulator({ port: 0, pacing: false, fixturesPath: WORLD });
  const dest = startDestination();
  try {
    await fn(awsEnv(emu.url), dest.port);
  } finally {
    await dest.close();
    await emu.close();
  }
}

/** One line on stderr, starting with "ssm-proxy:", and the expected exit code. */
function assertOneLineError(r: { code: number; stderr: string }, code: number, re: RegExp) {
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^ssm-proxy: /);
  assert.match(lines[0], re);
  assert.equal(r.code, code, r.stderr);
}

Deno.test("forward CLI: unknown, ambiguous, offline and denied targets are one clear line each", async () => {
  await withWorld(async (env, port) => {
    const base = ["forward", "--remote-port", String(port), "--target"];
    assertOneLineError(
      await runCli([...base, "name:nosuch"], env),
      4,
      /no instance matches name:nosuch/,
    );
    const amb = await runCli([...base, "name:web"], env);
    assertOneLineError(amb, 4, /i-0aaaaaaaaaaaaaaa1.*i-0aaaaaaaaaaaaaaa2/);
    assertOneLineError(
      await runCli([...base, "name:lost"], env),
      4,
      /not online in Systems Manager/,
    );
    assertOneLineError(await runCli([...base, "i-0eeeeeeeeeeeeeee1"], env), 3, /ssm:StartSession/);
  });
});

Deno.test("forward CLI: bad arguments are usage errors", async () => {
  const r = await runCli(
    ["forward", "--target", "i-0123456789abcdef0", "--remote-port", "http"],
    {},
  );
  assertOneLineError(r, 2, /invalid port "http"/);
  const t = await runCli(["forward", "--target", "bastion", "--remote-port", "80"], {
    AWS_REGION: "us-east-1",
  });
  assert.equal(t.code, 2, t.stderr);
  assert.match(t.stderr, /name:bastion/);
});

Deno.test("forward CLI: prints the local port, forwards, and Ctrl-C terminates the session and exits 0", async () => {
  const emu = await startEmulator({ port: 0, pacing: false });
  const dest = startDestination();
  try {
    const child = cli(
      ["forward", "--target", "name:bastion", "--remote-port", String(dest.port)],
      awsEnv(emu.url),
    ).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!/Local port: \d+/.test(text)) {
      const r = await reader.read();
      if (r.done) break;
      text += r.value;
    }
    const port = Number(/Local port: (\d+)/.exec(text)?.[1]);
    assert.ok(port > 0, text);
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    await c.write(new TextEncoder().encode("E" + "ping"));
    const buf = new Uint8Array(4);
    let n = 0;
    while (n < 4) n += (await c.read(buf.subarray(n))) ?? 4;
    assert.equal(new TextDecoder().decode(buf), "ping");
    c.close();
    child.kill("SIGINT");
    const status = await child.status;
    reader.releaseLock();
    await child.stdout.cancel().catch(() => {});
    const err = new TextDecoder().decode(
      (await new Response(child.stderr).arrayBuffer()) as ArrayBuffer,
    );
    assert.equal(status.code, 0, err);
    assert.match(err, /stopped \(SIGINT\); session .* terminated/);
    const sessions = emu.registry.list();
    assert.equal(sessions.length, 1);
    assert.equal(sessions[0].state, "terminated");
  } finally {
    await dest.close();
    await emu.close();
  }
});

Deno.test("forward CLI: --sessions 2 opens two sessions, carries connections, Ctrl-C ends both", async () => {
  const emu = await startEmulator({ port: 0, pacing: false });
  const dest = startDestination();
  try {
    const child = cli(
      [
        "forward",
        "--target",
        "name:bastion",
        "--remote-port",
        String(dest.port),
        "--sessions",
        "2",
      ],
      awsEnv(emu.url),
    ).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!/Local port: \d+/.test(text)) {
      const r = await reader.read();
      if (r.done) break;
      text += r.value;
    }
    assert.match(text, /^Sessions: 2 of 2$/m);
    const port = Number(/Local port: (\d+)/.exec(text)?.[1]);
    const conns = await Promise.all([1, 2].map(async (i) => {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      await c.write(new TextEncoder().encode(`Eping${i}`));
      const buf = new Uint8Array(5);
      let n = 0;
      while (n < 5) n += (await c.read(buf.subarray(n))) ?? 5;
      assert.equal(new TextDecoder().decode(buf), `ping${i}`);
      return c;
    }));
    const sessions = emu.registry.list();
    assert.equal(sessions.length, 2);
    child.kill("SIGINT");
    const status = await child.status;
    for (const c of conns) c.close();
    reader.releaseLock();
    await child.stdout.cancel().catch(() => {});
    const err = new TextDecoder().decode(
      (await new Response(child.stderr).arrayBuffer()) as ArrayBuffer,
    );
    assert.equal(status.code, 0, err);
    const line = /stopped \(SIGINT\); sessions (\S+), (\S+) terminated/.exec(err);
    assert.ok(line, err);
    assert.deepEqual([line[1], line[2]].sort(), sessions.map((s) => s.sessionId).sort());
    assert.deepEqual(emu.registry.list().map((s) => s.state), ["terminated", "terminated"]);
  } finally {
    await dest.close();
    await emu.close();
  }
});

Deno.test("forward CLI: bad --sessions and --max-sessions are usage errors before any session", async () => {
  const emu = await startEmulator({ port: 0, pacing: false });
  try {
    const base = ["forward", "--target", "i-0123456789abcdef0", "--remote-port", "80"];
    assertOneLineError(
      await runCli([...base, "--sessions", "0"], awsEnv(emu.url)),
      2,
      /--sessions "0": use auto or a number from 1 to 16/,
    );
    assertOneLineError(
      await runCli([...base, "--max-sessions", "many"], awsEnv(emu.url)),
      2,
      /--max-sessions "many"/,
    );
    assert.equal(emu.registry.list().length, 0);
  } finally {
    await emu.close();
  }
});

Deno.test("forward CLI: a local port in use fails before any session is started", async () => {
  const emu = await startEmulator({ port: 0, pacing: false });
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const r = await runCli(
      [
        "forward",
        "--target",
        "i-0123456789abcdef0",
        "--remote-port",
        "80",
        "--local-port",
        String((busy.addr as Deno.NetAddr).port),
      ],
      awsEnv(emu.url),
    );
    assertOneLineError(r, 2, /already in use/);
    assert.equal(emu.registry.list().length, 0);
  } finally {
    busy.close();
    await emu.close();
  }
});

Deno.test("CLI: --version and --help do not load the AWS SDK", async () => {
  for (const args of [["--version"], ["--help"], ["forward", "--help"]]) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", MAIN],
      stdout: "piped",
      stderr: "null",
    }).output();
    const graph = JSON.parse(new TextDecoder().decode(out.stdout));
    // Static imports of main.ts only (dynamic ones are loaded when a command runs).
    const staticNpm = JSON.stringify(
      graph.modules.find((m: { specifier: string }) => m.specifier.endsWith("main.ts")),
    );
    assert.doesNotMatch(staticNpm, /@aws-sdk/, args.join(" "));
  }
  const v = await runCli(["--version"], {});
  assert.match(v.stdout, /^ssm-proxy \d+\.\d+\.\d+/);
});
