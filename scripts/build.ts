/**
 * `deno task build`: compile `ssm-proxy` for every platform and `ssm-proxy-agent` for Linux,
 * then write SHA256SUMS. `deno compile` needs a `denort` runtime for each target: online it
 * downloads `denort-<target>.zip` from dl.deno.land itself; offline, point DENORT_BIN_<TARGET>
 * (e.g. DENORT_BIN_AARCH64_APPLE_DARWIN) or DENORT_BIN at an unzipped copy of it.
 *
 * A full `deno` binary (e.g. from the npm packages `@deno/<os>-<arch>`, the only runtimes our
 * build machines can fetch) is NOT a denort: the output then just runs as deno (checked with
 * 2.9.5). It still proves the module graph compiles for that target, so such builds succeed with
 * a warning and are listed in dist/NOT-RUNNABLE; the release workflow compiles online instead
 * and checks that the binary answers --version.
 *
 *   deno task build [--only TARGET[,TARGET…]] [--out dist] [--npm-runtimes]
 *
 * `--npm-runtimes` takes each target's deno binary from the npm registry (cached under
 * ~/.cache/ssm-proxy/denort) where no DENORT_BIN is given: the offline compile check.
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { V8_FLAGS } from "../src/runtime.ts";
import { VERSION } from "../src/version.ts";

interface Output {
  name: string;
  entry: string;
  target: string;
}

const CLIENT_TARGETS = [
  "aarch64-apple-darwin",
  "x86_64-apple-darwin",
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
];
const AGENT_TARGETS = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"];

const SHORT: Record<string, string> = {
  "aarch64-apple-darwin": "darwin-arm64",
  "x86_64-apple-darwin": "darwin-x64",
  "x86_64-unknown-linux-gnu": "linux-x64",
  "aarch64-unknown-linux-gnu": "linux-arm64",
};

const ROOT = new URL("..", import.meta.url).pathname;

function arg(name: string): string | undefined {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : undefined;
}

function denort(target: string): string | undefined {
  const key = `DENORT_BIN_${target.toUpperCase().replace(/-/g, "_")}`;
  return Deno.env.get(key) ?? Deno.env.get("DENORT_BIN");
}

/** The npm registry's Deno binary for a target (what `--npm-runtimes` uses as DENORT_BIN). */
const NPM_RUNTIME: Record<string, string> = {
  "aarch64-apple-darwin": "@deno/darwin-arm64",
  "x86_64-apple-darwin": "@deno/darwin-x64",
  "x86_64-unknown-linux-gnu": "@deno/linux-x64-glibc",
  "aarch64-unknown-linux-gnu": "@deno/linux-arm64-glibc",
};

/** Fetch (once, cached) the target's deno binary from the npm registry with `npm pack`. */
async function npmRuntime(target: string): Promise<string> {
  const pkg = `${NPM_RUNTIME[target]}@${Deno.version.deno}`;
  const cache = `${
    Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME")}/.cache`
  }/ssm-proxy/denort/${pkg.replace(/[@/]/g, "_")}`;
  const bin = `${cache}/package/${target.includes("windows") ? "deno.exe" : "deno"}`;
  try {
    await Deno.stat(bin);
    return bin;
  } catch { /* not cached yet */ }
  await Deno.mkdir(cache, { recursive: true });
  const run = async (cmd: string, args: string[]) => {
    const r = await new Deno.Command(cmd, { args, cwd: cache, stdout: "piped", stderr: "piped" })
      .output();
    if (!r.success) {
      throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(r.stderr).trim()}`);
    }
    return new TextDecoder().decode(r.stdout).trim();
  };
  const tgz = (await run("npm", ["pack", pkg, "--silent"])).split("\n").at(-1)!;
  await run("tar", ["xzf", tgz]);
  await Deno.chmod(bin, 0o755);
  return bin;
}

const only = arg("--only")?.split(",");
const out = arg("--out") ?? `${ROOT}dist`;
const outputs: Output[] = [
  ...CLIENT_TARGETS.map((t) => ({ name: `ssm-proxy-${SHORT[t]}`, entry: "main.ts", target: t })),
  ...AGENT_TARGETS.map((t) => ({
    name: `ssm-proxy-agent-${SHORT[t]}`,
    entry: "agent/main.ts",
    target: t,
  })),
].filter((o) => !only || only.includes(o.target) || only.includes(SHORT[o.target]));

/** A string only the full CLI carries (its REPL banner); denort has no REPL. */
const CLI_MARKER = "REPL is running with all permissions allowed";
const checked = new Map<string, boolean>();
async function isFullDeno(path: string): Promise<boolean> {
  if (!checked.has(path)) {
    checked.set(path, Buffer.from(await Deno.readFile(path)).indexOf(CLI_MARKER) >= 0);
  }
  return checked.get(path)!;
}

await Deno.mkdir(out, { recursive: true });
const sums: string[] = [];
const notRunnable: string[] = [];
let failed = 0;
for (const o of outputs) {
  const bin = denort(o.target) ??
    (Deno.args.includes("--npm-runtimes") ? await npmRuntime(o.target) : undefined);
  if (bin && await isFullDeno(bin)) {
    notRunnable.push(o.name);
    console.error(
      `WARN ${o.name}: ${bin} is a full deno binary, not denort: this output checks that the code` +
        ` compiles for ${o.target} but runs as plain deno. For a release use denort-${o.target}.zip.`,
    );
  }
  const env: Record<string, string> = {};
  if (bin) env.DENORT_BIN = bin;
  const dest = `${out}/${o.name}`;
  const t0 = performance.now();
  const r = await new Deno.Command(Deno.execPath(), {
    args: [
      "compile",
      "--allow-all",
      `--v8-flags=${V8_FLAGS}`,
      "--no-check",
      "--target",
      o.target,
      "--output",
      dest,
      `${ROOT}${o.entry}`,
    ],
    env,
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!r.success) {
    failed++;
    const err = new TextDecoder().decode(r.stderr).trim().split("\n").slice(-3).join(" | ");
    console.error(`FAIL ${o.name}: ${err}`);
    if (!bin) {
      console.error(
        `     (offline? set DENORT_BIN or DENORT_BIN_${o.target.toUpperCase().replace(/-/g, "_")})`,
      );
    }
    continue;
  }
  const data = await Deno.readFile(dest);
  const sum = createHash("sha256").update(data).digest("hex");
  sums.push(`${sum}  ${o.name}`);
  console.log(
    `ok   ${o.name} (${(data.length / 2 ** 20).toFixed(1)} MiB, ${
      ((performance.now() - t0) / 1000).toFixed(1)
    } s)`,
  );
}
await Deno.writeTextFile(`${out}/SHA256SUMS`, sums.join("\n") + "\n");
if (notRunnable.length) {
  await Deno.writeTextFile(`${out}/NOT-RUNNABLE`, notRunnable.join("\n") + "\n");
} else {
  await Deno.remove(`${out}/NOT-RUNNABLE`).catch(() => {});
}
console.log(
  `ssm-proxy ${VERSION}: ${sums.length} built, ${failed} failed; sums in ${out}/SHA256SUMS`,
);
if (failed) Deno.exit(1);
