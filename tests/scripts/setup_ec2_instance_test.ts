/**
 * scripts/setup-ec2-instance.sh: syntax, shellcheck (when installed), and the plan it prints
 * with --dry-run (which changes nothing, needs no root and downloads nothing).
 */
import assert from "node:assert/strict";

const SCRIPT = new URL("../../scripts/setup-ec2-instance.sh", import.meta.url).pathname;

async function sh(cmd: string, args: string[]) {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

async function hasShellcheck(): Promise<boolean> {
  try {
    return (await sh("shellcheck", ["--version"])).code === 0;
  } catch {
    return false;
  }
}

async function withBinary(fn: (path: string, sum: string) => Promise<void>) {
  const path = await Deno.makeTempFile({ prefix: "ssm-proxy-agent-" });
  const bytes = new TextEncoder().encode("#!/bin/sh\necho fake agent\n");
  await Deno.writeFile(path, bytes);
  const sum = Array.from(
    new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  try {
    await fn(path, sum);
  } finally {
    await Deno.remove(path);
  }
}

Deno.test("setup-ec2-instance.sh: bash -n and shellcheck are clean", async () => {
  const n = await sh("bash", ["-n", SCRIPT]);
  assert.equal(n.code, 0, n.stderr);
  if (await hasShellcheck()) {
    const s = await sh("shellcheck", [SCRIPT]);
    assert.equal(s.code, 0, s.stdout + s.stderr);
  } else {
    console.warn("shellcheck not installed: skipped");
  }
  const head = await Deno.readTextFile(SCRIPT);
  assert.match(head, /^#!\/usr\/bin\/env bash\n/);
  assert.match(head, /\nset -euo pipefail\n/);
});

Deno.test("setup-ec2-instance.sh --dry-run: local file, checked sum, arm64", async () => {
  await withBinary(async (bin, sum) => {
    const r = await sh("bash", [
      SCRIPT,
      "--dry-run",
      "--file",
      bin,
      "--sha256",
      sum,
      "--arch",
      "aarch64",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "");
    // The unit would be written by the binary into the script's temporary directory.
    const lines = r.stdout.trim().split("\n").map((l) =>
      l.replace(/ \/tmp\/\S+\/ssm-proxy-agent\.service /, " WORK/ssm-proxy-agent.service ")
    );
    assert.deepEqual(lines, [
      "plan: architecture aarch64 (asset ssm-proxy-agent-linux-arm64)",
      `plan: agent binary from ${bin}`,
      `plan: check SHA-256 ${sum}`,
      "plan: install /usr/local/bin/ssm-proxy-agent",
      "plan: install /etc/systemd/system/ssm-proxy-agent.service from the binary (ssm-proxy-agent unit)",
      "plan: systemctl daemon-reload; systemctl enable --now ssm-proxy-agent",
      "plan: check amazon-ssm-agent is running and the instance has an instance profile",
      `ok: SHA-256 of ${bin} matches`,
      `would run: install -D -m 0755 ${bin} /usr/local/bin/ssm-proxy-agent`,
      "would run: install -D -m 0644 WORK/ssm-proxy-agent.service /etc/systemd/system/ssm-proxy-agent.service",
      "would run: systemctl daemon-reload",
      "would run: systemctl enable --now ssm-proxy-agent",
      "dry run: nothing was changed",
    ]);
  });
});

Deno.test("setup-ec2-instance.sh --dry-run: release URL with SHA256SUMS, x86_64", async () => {
  // Nothing is fetched in a dry run: the URL is never contacted.
  const base = "https://releases.example.invalid/v1.2.3";
  const r = await sh("bash", [SCRIPT, "--dry-run", "--url", `${base}/`, "--arch", "x86_64"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^plan: architecture x86_64 \(asset ssm-proxy-agent-linux-x64\)$/m);
  assert.match(r.stdout, new RegExp(`^plan: check SHA-256 against ${base}/SHA256SUMS$`, "m"));
  assert.match(
    r.stdout,
    new RegExp(
      `^would run: download ${base}/ssm-proxy-agent-linux-x64 \\S+/ssm-proxy-agent-linux-x64$`,
      "m",
    ),
  );
  assert.match(
    r.stdout,
    new RegExp(`^would run: download ${base}/SHA256SUMS \\S+/SHA256SUMS$`, "m"),
  );
  assert.match(r.stdout, /^would run: systemctl enable --now ssm-proxy-agent$/m);
});

Deno.test("setup-ec2-instance.sh: wrong sum, bad arch and bad arguments fail with one line", async () => {
  await withBinary(async (bin) => {
    const wrong = await sh("bash", [
      SCRIPT,
      "--dry-run",
      "--file",
      bin,
      "--sha256",
      "0".repeat(64),
    ]);
    assert.equal(wrong.code, 1);
    assert.match(
      wrong.stderr,
      /^setup-ec2-instance\.sh: error: SHA-256 mismatch for .*: expected 0{64}, got [0-9a-f]{64}/,
    );
    assert.equal(wrong.stderr.trim().split("\n").length, 1);
    assert.doesNotMatch(wrong.stdout, /would run: install/);

    const arch = await sh("bash", [SCRIPT, "--dry-run", "--file", bin, "--arch", "s390x"]);
    assert.equal(arch.code, 1);
    assert.match(arch.stderr, /unsupported architecture s390x/);
  });
  const cases: [string[], RegExp][] = [
    [[], /give --file PATH or --url BASE/],
    [["--file", "a", "--url", "b"], /not both/],
    [["--url", "u", "--sha256", "xyz"], /64 hex digits/],
    [["--bogus"], /unknown argument: --bogus/],
    [["--file"], /--file needs a value/],
  ];
  for (const [args, re] of cases) {
    const r = await sh("bash", [SCRIPT, "--dry-run", ...args]);
    assert.equal(r.code, 2, args.join(" "));
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split("\n").length, 1);
  }
  const missing = await sh("bash", [SCRIPT, "--dry-run", "--file", "/nonexistent/agent"]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /--file \/nonexistent\/agent: no such file/);
});
