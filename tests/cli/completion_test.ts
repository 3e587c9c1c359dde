/**
 * Shell completion: the tree walk (pure), then each shell running the generated script for real.
 * Dynamic values come from `ssm-proxy __complete`, run through a wrapper on PATH that is this
 * checkout's main.ts, with a temp config and state directory.
 */
import assert from "node:assert/strict";
import { Command } from "@commander-js/extra-typings";
import { buildProgram } from "../../src/cli/program.ts";
import { commandTree, flatten, type OptionSpec } from "../../src/cli/completion/tree.ts";
import { completionScript } from "../../src/cli/completion/mod.ts";
import { fishq } from "../../src/cli/completion/fish.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const MAIN = `${ROOT}main.ts`;

function has(cmd: string): boolean {
  try {
    return new Deno.Command("sh", { args: ["-c", `command -v ${cmd}`], stdout: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

async function run(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command(cmd, { args, env, cwd: ROOT, stdout: "piped", stderr: "piped" })
    .output();
  const d = new TextDecoder();
  return { code: r.code, out: d.decode(r.stdout), err: d.decode(r.stderr) };
}

/** A temp world: `ssm-proxy` on PATH, a config with tunnels and clusters, two state files. */
async function world() {
  const dir = await Deno.makeTempDir({ prefix: "ssmp-compl-" });
  await Deno.mkdir(`${dir}/bin`);
  await Deno.writeTextFile(
    `${dir}/bin/ssm-proxy`,
    `#!/bin/sh\nexec "${Deno.execPath()}" run -A --quiet "${MAIN}" "$@"\n`,
    { mode: 0o755 },
  );
  await Deno.writeTextFile(
    `${dir}/config.yaml`,
    [
      "tunnels:",
      "  prod:",
      "    target: i-0123456789abcdef0",
      "  staging:",
      "    target: name:bastion",
      "clusters:",
      "  - name: orders",
      "    region: eu-west-1",
      "    cluster_name: orders-eks",
      "    profile: dev",
      "    environment: dev",
      "    direct_connect: false",
      "",
    ].join("\n"),
  );
  await Deno.mkdir(`${dir}/state`);
  for (const name of ["db", "web"]) {
    await Deno.writeTextFile(`${dir}/state/${name}.json`, JSON.stringify({ name, pid: 1 }));
  }
  for (const shell of ["bash", "zsh", "fish"] as const) {
    await Deno.writeTextFile(`${dir}/c.${shell}`, completionScript(shell, buildProgram()));
  }
  const env = {
    PATH: `${dir}/bin:${Deno.env.get("PATH")}`,
    HOME: dir,
    SSM_PROXY_CONFIG: `${dir}/config.yaml`,
    SSM_PROXY_STATE_DIR: `${dir}/state`,
    NO_COLOR: "1",
  };
  return { dir, env, cleanup: () => Deno.remove(dir, { recursive: true }) };
}

function find(tree: ReturnType<typeof commandTree>, path: string) {
  const c = flatten(tree).find((c) => c.path.join(" ") === path);
  assert.ok(c, `no command "${path}" in the tree`);
  return c;
}

function opt(options: OptionSpec[], long: string): OptionSpec {
  const o = options.find((o) => o.long === long);
  assert.ok(o, `no ${long}`);
  return o;
}

Deno.test("tree: a commander program's commands, flags, choices and files, parents' flags inherited", () => {
  const p = new Command().name("x").option("--profile <name>", "profile").version(
    "1",
    "-V, --version",
  );
  const sub = p.command("grp").description("a group");
  sub.command("leaf").description("a leaf")
    .argument("<shell>", "shell").option("-c, --config <file>", "file")
    .option("--color <c>", "color").option("--quiet", "quiet");
  sub.commands[0].options.at(-2)!.choices(["red", "blue"]);
  p.command("secret", { hidden: true });
  const tree = commandTree(p);
  assert.deepEqual(tree.subcommands.map((c) => c.name), ["grp", "help"]);
  const leaf = find(tree, "grp leaf");
  assert.equal(leaf.description, "a leaf");
  assert.deepEqual(opt(leaf.options, "--config"), {
    long: "--config",
    short: "-c",
    description: "file",
    value: { kind: "files" },
  });
  assert.deepEqual(opt(leaf.options, "--color").value, {
    kind: "choices",
    values: ["red", "blue"],
  });
  assert.deepEqual(opt(leaf.options, "--quiet").value, { kind: "none" });
  assert.deepEqual(opt(leaf.options, "--profile").value, { kind: "free" });
  assert.ok(opt(leaf.options, "--help"));
  assert.ok(!leaf.options.some((o) => o.long === "--version"), "--version is the program's only");
  assert.ok(tree.options.some((o) => o.long === "--version"));
  assert.deepEqual(leaf.args, [{ kind: "free" }]);
  // The implicit help command completes its siblings.
  assert.deepEqual(find(tree, "help").args, [{ kind: "choices", values: ["grp"] }]);
});

Deno.test("tree: ssm-proxy's own commands, with the dynamic arguments and fixed values", () => {
  const tree = commandTree(buildProgram());
  const paths = flatten(tree).map((c) => c.path.join(" "));
  for (
    const p of [
      "start",
      "stop",
      "status",
      "eks connect",
      "eks token",
      "eks disconnect",
      "agent install",
      "agent status",
      "agent uninstall",
      "completion",
      "config show",
      "config check",
      "config publish",
      "config pull",
    ]
  ) assert.ok(paths.includes(p), p);
  assert.ok(!paths.includes("__complete"), "__complete is hidden");
  assert.deepEqual(find(tree, "start").args[0], { kind: "dynamic", source: "tunnels" });
  assert.deepEqual(find(tree, "status").args[0], { kind: "dynamic", source: "tunnels" });
  assert.deepEqual(find(tree, "stop").args[0], { kind: "dynamic", source: "running" });
  assert.deepEqual(find(tree, "eks connect").args[0], { kind: "dynamic", source: "clusters" });
  assert.deepEqual(find(tree, "config publish").args[0], { kind: "dynamic", source: "tunnels" });
  assert.deepEqual(find(tree, "completion").args[0], {
    kind: "choices",
    values: ["bash", "zsh", "fish"],
  });
  const start = find(tree, "start");
  assert.deepEqual(opt(start.options, "--mode").value, {
    kind: "choices",
    values: ["agent", "agentless", "auto"],
  });
  for (
    const [path, flag] of [
      ["eks connect", "--config"],
      ["eks connect", "--clusters"],
      ["eks connect", "--kubeconfig"],
      ["start", "--agent-binary"],
      ["emulator", "--fixtures"],
      ["agent install", "--binary"],
    ]
  ) assert.deepEqual(opt(find(tree, path).options, flag).value, { kind: "files" }, flag);
  assert.equal(opt(start.options, "--target").short, "-t");
  assert.ok(opt(start.options, "--profile"), "global flags are offered after the subcommand");
});

Deno.test({
  name: "fishq: fish reads back exactly the string",
  ignore: !has("fish"),
  fn: async () => {
    for (const s of ["", "'", "a\\b", "it's \\'x\\'", "$HOME (x) *"]) {
      const r = await run("fish", ["-c", `printf %s ${fishq(s)}`]);
      assert.equal(r.out, s);
    }
  },
});

Deno.test("completion bash: sourcing the printed script registers ssm-proxy", async () => {
  const r = await run("bash", [
    "-c",
    `source <("${Deno.execPath()}" run -A --quiet "${MAIN}" completion bash) && complete -p ssm-proxy`,
  ]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /complete -F _ssm_proxy ssm-proxy/);
});

Deno.test("completion bash: real completions for commands, flags, values and names", async () => {
  const w = await world();
  try {
    const cases: [string[], string[]][] = [
      [["st"], ["start", "status", "stop"]],
      [["start", "--mo"], ["--mode"]],
      [["start", "--mode", ""], ["agent", "agentless", "auto"]],
      [["start", "--mode", "=", "agentl"], ["agentless"]],
      [["eks", ""], ["connect", "disconnect", "help", "token"]],
      [["agent", "st"], ["status"]],
      [["completion", ""], ["bash", "fish", "zsh"]],
      [["stop", ""], ["db", "web"]],
      [["start", ""], ["prod", "staging"]],
      [["start", "-t", "i-1", "--name", "x", "s"], ["staging"]],
      [["start", "prod", ""], []],
      [["--profile", "dev", "eks", "connect", ""], ["orders"]],
      [["status", "-"], ["--help", "--json", "--profile", "--region", "-h"]],
      [["emulator", "--fixtures", `${w.dir}/conf`], [`${w.dir}/config.yaml`]],
    ];
    const script = cases.map(([words]) => {
      const all = ["ssm-proxy", ...words].map((x) => `'${x}'`).join(" ");
      return `COMP_WORDS=(${all}); COMP_CWORD=${words.length}; COMPREPLY=(); _ssm_proxy; ` +
        `printf '%s\\n' "\${COMPREPLY[*]}"`;
    }).join("\n");
    const r = await run("bash", ["-c", `source ${w.dir}/c.bash\n${script}`], w.env);
    assert.equal(r.err, "");
    const got = r.out.split("\n").slice(0, cases.length);
    cases.forEach(([words, want], i) =>
      assert.deepEqual(
        got[i].split(" ").filter((x) => x).sort(),
        want,
        `ssm-proxy ${words.join(" ")}<TAB>`,
      )
    );
  } finally {
    await w.cleanup();
  }
});

Deno.test({
  name: "completion zsh: zsh -n accepts it; a real TAB in an interactive zsh lists commands",
  ignore: !has("zsh"),
  fn: async () => {
    const w = await world();
    try {
      assert.equal((await run("zsh", ["-n", `${w.dir}/c.zsh`])).code, 0);
      // An interactive zsh on a pseudo-terminal (zsh/zpty): compinit, source, type, TAB.
      // Each step waits (up to 30 s) until the terminal shows what it expects, then prints it.
      const driver = `
zmodload zsh/zpty
zpty z zsh -f -i
until_seen() { local chunk; out=''; integer n=0
  while (( n++ < 300 )); do
    while zpty -r -t z chunk; do out+=$chunk; done
    [[ $out == *$~1* ]] && break
    sleep 0.1
  done
  print -r -- "$out"; }
zpty -w z "PS1='> '; autoload -Uz compinit; compinit -u -D; source <(ssm-proxy completion zsh); print READY"
until_seen 'READY*> '
zpty -w -n z $'ssm-proxy st\\t'
until_seen 'stop *-- '
zpty -w -n z $'\\C-u'
zpty -w -n z $'ssm-proxy stop \\t'
until_seen 'web'
zpty -w -n z $'\\C-u'
zpty -w -n z $'ssm-proxy start --mode \\t'
until_seen 'mode a'
zpty -w -n z $'\\t'
until_seen 'agentless'
zpty -d z
`;
      const r = await run("zsh", ["-f", "-c", driver], w.env);
      const text = r.out.replace(
        new RegExp(String.fromCharCode(27) + "\\[[0-9;?]*[A-Za-z]", "g"),
        "",
      );
      for (const line of ["start", "status", "stop"]) {
        assert.match(text, new RegExp(`^${line} +-- `, "m"), text);
      }
      assert.match(text, /\bdb +web\b/, text);
      assert.match(text, /\bagent +agentless +auto\b/, text);
    } finally {
      await w.cleanup();
    }
  },
});

Deno.test({
  name: "completion fish: fish -n accepts it; complete -C gives real completions",
  ignore: !has("fish"),
  fn: async () => {
    const w = await world();
    try {
      assert.equal((await run("fish", ["-n", `${w.dir}/c.fish`])).code, 0);
      const lines = [
        "ssm-proxy st",
        "ssm-proxy start --mode ",
        "ssm-proxy stop ",
        "ssm-proxy start ",
        "ssm-proxy eks connect ",
        "ssm-proxy eks connect --kub",
      ];
      const r = await run("fish", [
        "-c",
        `source ${w.dir}/c.fish; for l in ${lines.map((l) => fishq(l)).join(" ")}; ` +
        `complete -C "$l" | string replace -r '\\t.*' '' | string join ' '; end`,
      ], w.env);
      assert.equal(r.err, "");
      assert.deepEqual(r.out.trim().split("\n"), [
        "start status stop",
        "agent agentless auto",
        "db web",
        "prod staging",
        "orders",
        "--kubeconfig",
      ]);
    } finally {
      await w.cleanup();
    }
  },
});

Deno.test("__complete: names one a line; nothing and exit 0 for a broken config or no clusters", async () => {
  const w = await world();
  try {
    const c = (kind: string, env: Record<string, string> = {}) =>
      run("ssm-proxy", ["__complete", kind], { ...w.env, ...env });
    assert.deepEqual(await c("tunnels"), { code: 0, out: "prod\nstaging\n", err: "" });
    assert.deepEqual(await c("clusters"), { code: 0, out: "orders\n", err: "" });
    assert.deepEqual(await c("running"), { code: 0, out: "db\nweb\n", err: "" });
    await Deno.writeTextFile(`${w.dir}/bad.yaml`, "tunnels: [\n  - {\n");
    const broken = { SSM_PROXY_CONFIG: `${w.dir}/bad.yaml` };
    assert.deepEqual(await c("tunnels", broken), { code: 0, out: "", err: "" });
    assert.deepEqual(await c("clusters", broken), { code: 0, out: "", err: "" });
    const none = { SSM_PROXY_CONFIG: `${w.dir}/missing.yaml`, SSM_PROXY_STATE_DIR: w.dir + "/x" };
    for (const kind of ["tunnels", "clusters", "running", "nonsense"]) {
      assert.deepEqual(await c(kind, none), { code: 0, out: "", err: "" }, kind);
    }
    const help = await run("ssm-proxy", ["--help"], w.env);
    assert.doesNotMatch(help.out, /__complete/);
    assert.match(help.out, /completion/);
  } finally {
    await w.cleanup();
  }
});

Deno.test("__complete loads no AWS SDK: its module graph stays small", async () => {
  const r = await run(Deno.execPath(), [
    "info",
    "--json",
    `${ROOT}src/cli/completion/dynamic.ts`,
  ]);
  assert.equal(r.code, 0, r.err);
  // Every module it could load (type-only imports included: an upper bound).
  const graph = JSON.parse(r.out) as { modules: { specifier: string }[] };
  const specs = graph.modules.map((m) => m.specifier);
  const sdk = specs.filter((s) => /aws-sdk|@smithy/.test(s));
  assert.deepEqual(sdk, []);
});
