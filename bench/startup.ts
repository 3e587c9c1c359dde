/** Cold start of `ssm-proxy --help` and `--version` (median of N runs, code cache warm). */
const ROOT = new URL("..", import.meta.url).pathname;

async function median(args: string[], n = 11): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--cached-only", `${ROOT}main.ts`, ...args],
      stdout: "null",
      stderr: "null",
    }).output();
    if (!out.success) throw new Error(`ssm-proxy ${args.join(" ")} failed`);
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(n / 2)];
}

export async function benchStartup() {
  await median(["--help"], 2); // fill the code cache
  return { helpMs: await median(["--help"]), versionMs: await median(["--version"]) };
}

if (import.meta.main) {
  const r = await benchStartup();
  console.log(
    `startup: --help ${r.helpMs.toFixed(0)} ms, --version ${
      r.versionMs.toFixed(0)
    } ms (median of 11)`,
  );
  console.log(JSON.stringify({ startup: r }));
}
