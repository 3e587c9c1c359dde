/**
 * `ssm-proxy agent install` of a release-sized agent through the emulator with pacing on, with
 * the upload in 1 and in 4 parallel shell sessions: the emulator, and each install, in a process
 * of its own as in real use. Prints a table and a JSON line.
 *
 * The binary is generated, not built (a `deno compile` per run is minutes): a #! stub that
 * answers `--version` and `unit` as the agent does, padded to a release agent's size with bytes
 * of the Deno runtime itself, so it compresses like the real thing (a release agent is 25-40 MB
 * gzip'd, README). BENCH_INSTALL_MB sets the size; BENCH_INSTALL_ROUNDS how many times each
 * variant runs (the fastest counts: this measures the install, not the machine's other load).
 */
const ROOT = new URL("..", import.meta.url).pathname;
const TARGET = "i-0123456789abcdef0";

const FAKE_SYSTEMCTL = `#!/bin/sh
case "$1" in is-active) echo active ;; is-enabled) echo enabled ;; esac
exit 0
`;

export interface InstallBench {
  binaryBytes: number;
  /** Wall time of the whole `agent install --force` (best of the rounds), per session count. */
  oneSessionMs: number;
  fourSessionsMs: number;
  /** fourSessionsMs / oneSessionMs. */
  ratio: number;
  rounds: number;
}

async function writeAgent(path: string, size: number): Promise<void> {
  const head = new TextEncoder().encode(
    `#!/bin/sh\ncase "$1" in --version) echo ssm-proxy-agent 0.0.0-bench ;; unit) echo '[Unit]' ;; esac\nexit 0\n`,
  );
  const runtime = await Deno.readFile(Deno.execPath());
  const out = new Uint8Array(size);
  out.set(head);
  for (let at = head.length; at < size; at += runtime.length) {
    out.set(runtime.subarray(0, Math.min(runtime.length, size - at)), at);
  }
  await Deno.writeFile(path, out, { mode: 0o755 });
}

async function waitListening(child: Deno.ChildProcess): Promise<string> {
  const lines = child.stdout.pipeThrough(new TextDecoderStream());
  let seen = "";
  for await (const chunk of lines) {
    seen += chunk;
    const m = /emulator listening on (\S+)/.exec(seen);
    if (m) {
      // Keep draining so the emulator never blocks on a full pipe.
      (async () => {
        for await (const _ of lines) { /* discard */ }
      })().catch(() => {});
      return m[1];
    }
  }
  throw new Error(`the emulator exited before listening: ${seen}`);
}

async function install(url: string, binary: string, parallel: number): Promise<number> {
  const t = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--cached-only",
      `${ROOT}main.ts`,
      "agent",
      "install",
      "-t",
      TARGET,
      "--binary",
      binary,
      "--force",
      "--parallel",
      String(parallel),
    ],
    env: {
      AWS_ENDPOINT_URL: url,
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: "AKIDEMULATOR",
      AWS_SECRET_ACCESS_KEY: "emulator-secret",
      AWS_EC2_METADATA_DISABLED: "true",
      AWS_CONFIG_FILE: "/nonexistent/aws-config",
      AWS_SHARED_CREDENTIALS_FILE: "/nonexistent/aws-credentials",
    },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  const ms = performance.now() - t;
  if (!out.success) {
    throw new Error(
      `agent install --parallel ${parallel} failed:\n${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return ms;
}

export async function benchInstall(): Promise<InstallBench> {
  const mb = Number(Deno.env.get("BENCH_INSTALL_MB") ?? 72);
  const rounds = Math.max(1, Number(Deno.env.get("BENCH_INSTALL_ROUNDS") ?? 2));
  const dir = await Deno.makeTempDir({ prefix: "ssmp-bench-install-" });
  let emu: Deno.ChildProcess | undefined;
  try {
    for (const d of ["root", "bin", "tmp"]) await Deno.mkdir(`${dir}/${d}`);
    await Deno.writeTextFile(`${dir}/bin/systemctl`, FAKE_SYSTEMCTL, { mode: 0o755 });
    const binary = `${dir}/ssm-proxy-agent-linux-x64`;
    const binaryBytes = Math.round(mb * 1e6);
    await writeAgent(binary, binaryBytes);
    const port = 20000 + Math.floor(Math.random() * 20000);
    emu = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--cached-only",
        `${ROOT}main.ts`,
        "emulator",
        "--listen",
        `127.0.0.1:${port}`,
      ],
      // Shell sessions inherit this: the install lands in `root`, systemd is a stand-in.
      env: {
        SSM_PROXY_INSTALL_ROOT: `${dir}/root`,
        TMPDIR: `${dir}/tmp`,
        PATH: `${dir}/bin:${Deno.env.get("PATH")}`,
      },
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const url = await waitListening(emu);
    const best = { 1: Infinity, 4: Infinity } as Record<1 | 4, number>;
    for (let r = 0; r < rounds; r++) {
      for (const n of [1, 4] as const) best[n] = Math.min(best[n], await install(url, binary, n));
    }
    return {
      binaryBytes,
      oneSessionMs: best[1],
      fourSessionsMs: best[4],
      ratio: best[4] / best[1],
      rounds,
    };
  } finally {
    if (emu) {
      try {
        emu.kill("SIGTERM");
      } catch { /* gone */ }
      await emu.status;
    }
    await Deno.remove(dir, { recursive: true });
  }
}

export function installRows(b: InstallBench): [string, string, string][] {
  const mb = `${(b.binaryBytes / 1e6).toFixed(0)} MB agent`;
  return [
    [`agent install, pacing on, 1 session (${mb})`, `${(b.oneSessionMs / 1000).toFixed(1)} s`, ""],
    [
      `agent install, pacing on, 4 sessions (${mb})`,
      `${(b.fourSessionsMs / 1000).toFixed(1)} s (${(b.ratio * 100).toFixed(0)} % of 1 session)`,
      "<= 35 %",
    ],
  ];
}

if (import.meta.main) {
  const b = await benchInstall();
  for (const r of installRows(b)) console.log(`${r[0]}: ${r[1]}${r[2] ? ` (target ${r[2]})` : ""}`);
  console.log(JSON.stringify({ install: b }));
}
