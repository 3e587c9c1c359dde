import assert from "node:assert/strict";
import fc from "fast-check";
import {
  INSTALL_SCRIPT,
  parseMarkers,
  shellQuote,
  STATUS_SCRIPT,
  UNINSTALL_SCRIPT,
} from "../../src/install/scripts.ts";

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

Deno.test("the remote scripts are valid POSIX sh", async () => {
  for (
    const [name, script] of Object.entries({ INSTALL_SCRIPT, STATUS_SCRIPT, UNINSTALL_SCRIPT })
  ) {
    const r = await sh(["-n", "-c", script]);
    assert.equal(r.code, 0, `${name}: ${r.out}`);
  }
});

Deno.test("the remote scripts pass shellcheck (when installed)", async () => {
  const has = await new Deno.Command("sh", { args: ["-c", "command -v shellcheck"] }).output();
  if (!has.success) return; // CI installs it; a bare machine may not have it
  for (
    const [name, script] of Object.entries({ INSTALL_SCRIPT, STATUS_SCRIPT, UNINSTALL_SCRIPT })
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
