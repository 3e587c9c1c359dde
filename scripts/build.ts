/**
 * `deno task build`: compile `ssm-proxy` for every platform and `ssm-proxy-agent` for Linux,
 * then write SHA256SUMS. Works offline: `deno compile` needs a `denort` for each target, taken
 * from DENORT_BIN_<TARGET> (e.g. DENORT_BIN_AARCH64_APPLE_DARWIN) or DENORT_BIN. The npm
 * packages `@deno/<os>-<arch>` hold such binaries (a full deno binary works as denort).
 *
 *   deno task build [--only TARGET[,TARGET…]] [--out dist]
 */
import { createHash } from "node:crypto";
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

await Deno.mkdir(out, { recursive: true });
const sums: string[] = [];
let failed = 0;
for (const o of outputs) {
  const bin = denort(o.target);
  const env: Record<string, string> = {};
  if (bin) env.DENORT_BIN = bin;
  const dest = `${out}/${o.name}`;
  const t0 = performance.now();
  const r = await new Deno.Command(Deno.execPath(), {
    args: [
      "compile",
      "--allow-all",
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
console.log(
  `ssm-proxy ${VERSION}: ${sums.length} built, ${failed} failed; sums in ${out}/SHA256SUMS`,
);
if (failed) Deno.exit(1);
