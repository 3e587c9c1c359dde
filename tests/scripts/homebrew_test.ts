import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  assetName,
  formula,
  type FormulaInput,
  homepageOf,
  PLATFORMS,
  readBinaries,
} from "../../scripts/homebrew.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const BASE = "https://github.com/acme/ssm-proxy/releases/download/v1.2.3";

function input(): FormulaInput {
  return {
    version: "1.2.3",
    baseUrl: BASE,
    homepage: "https://github.com/acme/ssm-proxy",
    binaries: PLATFORMS.map((p, i) => ({
      os: p.os,
      arch: p.arch,
      file: assetName(p.os, p.arch),
      sha256: String(i).repeat(64),
    })),
  };
}

/** The lines between `open` and its matching `end`, by indentation. */
function blockOf(text: string, open: string): string {
  const lines = text.split("\n");
  const start = lines.findIndex((l) => l.trim() === open);
  assert.ok(start >= 0, `no "${open}"`);
  const indent = lines[start].match(/^ */)![0];
  const end = lines.findIndex((l, i) => i > start && l === `${indent}end`);
  return lines.slice(start + 1, end).join("\n");
}

Deno.test("formula: macOS and Linux, arm and intel, each with its own url and sha256", () => {
  const text = formula(input());
  assert.match(text, /^class SsmProxy < Formula$/m);
  assert.match(text, /^ {2}version "1\.2\.3"$/m);
  assert.match(text, /^ {2}homepage "https:\/\/github\.com\/acme\/ssm-proxy"$/m);
  const desc = text.match(/^ {2}desc "(.*)"$/m)?.[1] ?? "";
  assert.ok(desc.length > 0 && desc.length < 80 && !/^(a|an|the) /i.test(desc), desc);
  const macos = blockOf(text, "on_macos do");
  const linux = blockOf(text, "on_linux do");
  const expect = (block: string, os: string, arch: string, sha: string) => {
    const inner = blockOf(block, arch === "arm64" ? "on_arm do" : "on_intel do");
    assert.match(inner, new RegExp(`url "${BASE}/ssm-proxy-${os}-${arch}"`));
    assert.match(inner, new RegExp(`sha256 "${sha}"`));
  };
  expect(macos, "darwin", "arm64", "0".repeat(64));
  expect(macos, "darwin", "x64", "1".repeat(64));
  expect(linux, "linux", "x64", "2".repeat(64));
  expect(linux, "linux", "arm64", "3".repeat(64));
  const install = blockOf(text, "def install");
  assert.match(install, /bin\.install binary => "ssm-proxy"/);
  assert.match(install, /generate_completions_from_executable\(bin\/"ssm-proxy", "completion"\)/);
  assert.match(blockOf(text, "test do"), /ssm-proxy --version/);
  assert.doesNotMatch(text, /agent-linux/, "agent binaries go to instances, not into the formula");
  assert.equal(text.match(/^\s*url /gm)?.length, 4);
});

Deno.test("formula: Linux left out when not built; bad input refused", () => {
  const i = input();
  i.binaries = i.binaries.filter((b) => b.os === "darwin");
  const text = formula(i);
  assert.doesNotMatch(text, /on_linux/);
  assert.throws(() => formula({ ...i, version: "v1.2" }), /not X\.Y\.Z/);
  assert.throws(
    () => formula({ ...i, binaries: [{ ...i.binaries[0], sha256: "abc" }] }),
    /64 hex/,
  );
  assert.throws(() => formula({ ...i, binaries: [] }), /no ssm-proxy binaries/);
});

Deno.test("homepageOf: the repository of a GitHub release download URL", () => {
  assert.equal(homepageOf(BASE), "https://github.com/acme/ssm-proxy");
  assert.equal(homepageOf("https://example.com/dl/v1"), undefined);
});

Deno.test("homebrew.ts: hashes the built binaries in dist and writes dist/ssm-proxy.rb", async () => {
  const dist = await Deno.makeTempDir({ prefix: "ssmp-brew-" });
  try {
    const want: Record<string, string> = {};
    for (const p of PLATFORMS) {
      const data = new TextEncoder().encode(`binary for ${p.os}-${p.arch}\n`);
      await Deno.writeFile(`${dist}/${assetName(p.os, p.arch)}`, data);
      want[assetName(p.os, p.arch)] = createHash("sha256").update(data).digest("hex");
    }
    // The agent is built into the same dist: it must not end up in the formula.
    await Deno.writeTextFile(`${dist}/ssm-proxy-agent-linux-x64`, "agent");
    const bins = await readBinaries(dist);
    assert.deepEqual(Object.fromEntries(bins.map((b) => [b.file, b.sha256])), want);

    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${ROOT}scripts/homebrew.ts`, "--base-url", BASE, "--dist", dist],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
    const text = await Deno.readTextFile(`${dist}/ssm-proxy.rb`);
    for (const [file, sha] of Object.entries(want)) {
      assert.match(text, new RegExp(`url "${BASE}/${file}"\\n\\s+sha256 "${sha}"`), file);
    }
    assert.doesNotMatch(text, /ssm-proxy-agent/);
    assert.match(text, /homepage "https:\/\/github\.com\/acme\/ssm-proxy"/);

    await Deno.remove(`${dist}/ssm-proxy-darwin-x64`);
    const missing = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${ROOT}scripts/homebrew.ts`, "--base-url", BASE, "--dist", dist],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(missing.code, 1);
    assert.match(new TextDecoder().decode(missing.stderr), /ssm-proxy-darwin-x64/);
  } finally {
    await Deno.remove(dist, { recursive: true });
  }
});

const hasRuby = new Deno.Command("sh", { args: ["-c", "command -v ruby"], stdout: "null" })
  .outputSync().success;

Deno.test({
  name: "formula: ruby -c accepts it",
  ignore: !hasRuby,
  fn: async () => {
    const file = await Deno.makeTempFile({ suffix: ".rb" });
    try {
      await Deno.writeTextFile(file, formula(input()));
      const r = await new Deno.Command("ruby", { args: ["-c", file], stdout: "piped" }).output();
      assert.equal(r.code, 0);
      assert.match(new TextDecoder().decode(r.stdout), /Syntax OK/);
    } finally {
      await Deno.remove(file);
    }
  },
});
