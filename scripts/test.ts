/**
 * `deno task test`: format check, lint, type check, then every test. Ends with the plain
 * `N passed, N failed` line CI reads (each check counts as one). Extra args go to `deno test`.
 */
const NO_COLOR = { ...Deno.env.toObject(), NO_COLOR: "1" };

async function run(args: string[], capture = false): Promise<{ ok: boolean; out: string }> {
  const p = new Deno.Command(Deno.execPath(), {
    args,
    env: NO_COLOR,
    stdout: capture ? "piped" : "inherit",
    stderr: capture ? "piped" : "inherit",
  }).spawn();
  if (!capture) return { ok: (await p.status).success, out: "" };
  // Stream test output through while keeping a copy for the summary.
  const dec = new TextDecoder();
  let out = "";
  const pipe = async (r: ReadableStream<Uint8Array>, w: typeof Deno.stdout) => {
    for await (const c of r) {
      out += dec.decode(c, { stream: true });
      await w.write(c);
    }
  };
  await Promise.all([pipe(p.stdout, Deno.stdout), pipe(p.stderr, Deno.stderr)]);
  return { ok: (await p.status).success, out };
}

let passed = 0;
let failed = 0;
const failures: string[] = [];

for (
  const [name, args] of [
    ["deno fmt --check", ["fmt", "--check"]],
    ["deno lint", ["lint"]],
    ["deno check", ["check", "main.ts", "src/", "agent/", "ffi/", "tests/", "scripts/", "bench/"]],
  ] as const
) {
  console.log(`\n== ${name}`);
  const r = await run([...args]);
  if (r.ok) passed++;
  else {
    failed++;
    failures.push(name);
  }
}

console.log("\n== deno test");
const t = await run(["test", "-A", "--no-check", "tests/", ...Deno.args], true);
const m = /(\d+) passed[^|]*\|\s*(\d+) failed/.exec(
  t.out.split("\n").reverse().find((l) => /passed.*failed/.test(l)) ?? "",
);
if (m) {
  passed += Number(m[1]);
  failed += Number(m[2]);
  if (Number(m[2]) > 0) failures.push("deno test");
} else {
  failed++;
  failures.push("deno test (no summary line)");
}
if (!t.ok && !failures.includes("deno test")) failures.push("deno test");

if (failures.length) console.log(`\nfailed: ${failures.join(", ")}`);
console.log(`${passed} passed, ${failed} failed`);
Deno.exit(failures.length ? 1 : 0);
