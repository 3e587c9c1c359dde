/**
 * `ssm-proxy config …` as users run it: the real binary entry (main.ts) in a subprocess with its
 * own HOME, against the emulator's Parameter Store through the real SDK.
 */
import assert from "node:assert/strict";
import { withEmulator } from "../aws/harness_test.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
/** Deno's cache, which a temporary HOME would otherwise move (and re-download into). */
const DENO_DIR = Deno.env.get("DENO_DIR") ?? JSON.parse(
  new TextDecoder().decode(
    (await new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stdout: "piped" })
      .output()).stdout,
  ),
).denoDir;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** main.ts with `home` as HOME; the AWS variables withEmulator set are inherited. */
async function ssmProxy(home: string, ...args: string[]): Promise<Run> {
  const env = Deno.env.toObject();
  delete env.SSM_PROXY_CONFIG;
  delete env.XDG_CONFIG_HOME;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env: { ...env, HOME: home, DENO_DIR, NO_COLOR: "1" },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function withHomes<T>(fn: (a: string, b: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/a/.config/ssm-proxy`, { recursive: true });
    await Deno.mkdir(`${dir}/b`);
    return await fn(`${dir}/a`, `${dir}/b`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const ALICE = `tunnels:
  prod:
    target: name:bastion
    cidrs: [10.0.0.0/16]
    dns_domains: [corp.internal]
    stripes: 2
  stage:
    target: tag:Env=stage
clusters:
  - name: dev
    region: eu-west-1
    cluster_name: dev-eks
    profile: dev-admin
`;

Deno.test("config check: ok with counts, or the file:line error and exit 2", async () => {
  await withHomes(async (a) => {
    const file = `${a}/.config/ssm-proxy/config.yaml`;
    let r = await ssmProxy(a, "config", "check");
    assert.equal(r.stdout.trim(), `ok: ${file} does not exist (0 tunnels, 0 clusters)`);
    await Deno.writeTextFile(file, ALICE);
    r = await ssmProxy(a, "config", "check");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `ok: ${file} (2 tunnels, 1 cluster)`);
    await Deno.writeTextFile(file, ALICE.replace("stripes: 2", "stripes: 20"));
    r = await ssmProxy(a, "config", "check");
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr.trim(),
      `ssm-proxy: ${file}:6: tunnels.prod.stripes: expected auto or a whole number from 1 to 16`,
    );
    await Deno.writeTextFile(file, ALICE + "extra: 1\n");
    r = await ssmProxy(a, "config", "check");
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr.trim(),
      `ssm-proxy: ${file}:14: extra: unknown key (allowed: tunnels, clusters)`,
    );
    r = await ssmProxy(a, "config", "check", "--config", `${a}/missing.yaml`);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /missing\.yaml: cannot read/);
  });
});

const BOB = `# Bob's config: keep this comment
tunnels:
  prod:   # Bob's own prod
    target: name:bastion
    cidrs: [10.0.0.0/8]
`;

Deno.test("config publish → pull: the team's entries reach another config, local wins", async () => {
  await withHomes(async (alice, bob) => {
    await Deno.writeTextFile(`${alice}/.config/ssm-proxy/config.yaml`, ALICE);
    await withEmulator(undefined, async (emu) => {
      let r = await ssmProxy(alice, "config", "publish", "prod");
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stdout,
        /^published tunnel prod from .* to \/ssm-proxy\/tunnels\/prod \(version 1\)/,
      );
      r = await ssmProxy(alice, "config", "publish", "prod");
      assert.equal(
        r.stdout.trim(),
        "/ssm-proxy/tunnels/prod already holds this tunnel: nothing to publish",
      );
      for (const name of ["stage", "dev"]) {
        r = await ssmProxy(alice, "config", "publish", name);
        assert.equal(r.code, 0, r.stderr);
      }
      assert.match(r.stdout, /published cluster dev .* to \/ssm-proxy\/clusters\/dev/);
      const stored = emu.fixtures.parameters.find((p) => p.name === "/ssm-proxy/tunnels/prod");
      assert.deepEqual(JSON.parse(stored!.value), {
        kind: "tunnel",
        version: 1,
        target: "name:bastion",
        cidrs: ["10.0.0.0/16"],
        dns_domains: ["corp.internal"],
        stripes: 2,
      });

      // A different local value is not published over the team's without --overwrite.
      const changed = ALICE.replace("stripes: 2", "stripes: 3");
      await Deno.writeTextFile(`${alice}/.config/ssm-proxy/config.yaml`, changed);
      r = await ssmProxy(alice, "config", "publish", "prod");
      assert.equal(r.code, 1);
      assert.equal(
        r.stderr.trim(),
        "ssm-proxy: /ssm-proxy/tunnels/prod already holds a different tunnel " +
          "(local stripes 3, team 2: not published); pass --overwrite to replace it",
      );
      r = await ssmProxy(alice, "config", "publish", "prod", "--overwrite");
      assert.match(r.stdout, /\(version 2\)/);
      r = await ssmProxy(alice, "config", "publish", "nope");
      assert.equal(r.code, 2);
      assert.match(r.stderr, /no tunnel or cluster named "nope" in /);

      // Bob has his own prod and a comment; a dry run changes nothing.
      const bobFile = `${bob}/.config/ssm-proxy/config.yaml`;
      await Deno.mkdir(`${bob}/.config/ssm-proxy`, { recursive: true });
      await Deno.writeTextFile(bobFile, BOB);
      r = await ssmProxy(bob, "config", "pull", "--dry-run");
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await Deno.readTextFile(bobFile), BOB);
      assert.deepEqual(r.stdout.trim().split("\n"), [
        "+ tunnels.stage",
        "+ clusters dev",
        "tunnels.prod: local cidrs [10.0.0.0/8], team [10.0.0.0/16]; " +
        "local dns_domains (unset), team [corp.internal]; local stripes (unset), team 3: kept local",
        `would add 1 tunnel and 1 cluster from /ssm-proxy to ${bobFile}; 0 already the same, 1 kept local`,
      ]);

      r = await ssmProxy(bob, "config", "pull");
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /\nadded 1 tunnel and 1 cluster from \/ssm-proxy to /);
      const text = await Deno.readTextFile(bobFile);
      assert.ok(text.startsWith("# Bob's config: keep this comment\n"), text);
      assert.match(text, /# Bob's own prod/);
      assert.match(text, /cidrs: \[10\.0\.0\.0\/8\]/);
      assert.match(
        text,
        /# from \/ssm-proxy\/tunnels\/stage\n {2}stage:\n {4}target: tag:Env=stage\n/,
      );
      r = await ssmProxy(bob, "config", "check");
      assert.equal(r.stdout.trim(), `ok: ${bobFile} (2 tunnels, 1 cluster)`);

      // Pulling again adds nothing; the difference is still shown.
      r = await ssmProxy(bob, "config", "pull");
      assert.match(r.stdout, /added 0 tunnels and 0 clusters .*; 2 already the same, 1 kept local/);

      // show: local entries marked with file:line, team-only ones with their parameter.
      await Deno.remove(bobFile);
      await Deno.writeTextFile(bobFile, BOB);
      r = await ssmProxy(bob, "config", "show", "--json");
      assert.equal(r.code, 0, r.stderr);
      const shown = JSON.parse(r.stdout);
      assert.deepEqual(
        shown.tunnels.map((
          t: { name: string; source: string; where: string },
        ) => [t.name, t.source, t.where]),
        [["prod", "local", `${bobFile}:3`], ["stage", "team", "/ssm-proxy/tunnels/stage"]],
      );
      assert.deepEqual(shown.tunnels[0].teamDiffers, ["cidrs", "dns_domains", "stripes"]);
      assert.deepEqual(shown.clusters.map((c: { source: string }) => c.source), ["team"]);
      r = await ssmProxy(bob, "config", "show");
      assert.match(
        r.stdout,
        /^# config: .*config\.yaml\n# team: \/ssm-proxy \(2 tunnels, 1 cluster\)\n\ntunnels:\n/,
      );
      assert.match(
        r.stdout,
        / {2}# local: .*config\.yaml:3; the team's differs in cidrs, dns_domains, stripes\n {2}prod:\n/,
      );
      assert.match(
        r.stdout,
        / {2}# team: \/ssm-proxy\/tunnels\/stage\n {2}stage:\n {4}target: tag:Env=stage\n/,
      );
      assert.match(r.stdout, / {2}# team: \/ssm-proxy\/clusters\/dev\n {2}- name: dev\n/);
    });
  });
});

Deno.test("config pull: creates the config and its directory when there is none", async () => {
  await withHomes(async (_a, bob) => {
    await withEmulator(undefined, async () => {
      const r0 = await ssmProxy(bob, "config", "pull");
      assert.equal(r0.code, 0, r0.stderr);
      assert.match(r0.stdout, /^added 0 tunnels and 0 clusters/);
      await assert.rejects(Deno.stat(`${bob}/.config`), Deno.errors.NotFound, "nothing to write");
    }, {});
    const world = `${bob}/world.yaml`;
    await Deno.writeTextFile(
      world,
      `parameters:
  - { name: /ssm-proxy/tunnels/prod, value: '{"target":"name:bastion","dns":false}', type: String }
  - { name: /ssm-proxy/tunnels/bad, value: '{"mode":"tcp"}', type: String }
`,
    );
    await withEmulator(world, async () => {
      const r = await ssmProxy(bob, "config", "pull");
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdout.trim().split("\n").slice(0, 2), [
        `skipped /ssm-proxy/tunnels/bad: tunnels.bad.mode: "tcp" is not a mode: use agent, agentless, auto`,
        "+ tunnels.prod",
      ]);
      assert.match(r.stdout, /1 invalid skipped\n$/);
      const text = await Deno.readTextFile(`${bob}/.config/ssm-proxy/config.yaml`);
      assert.equal(
        text,
        "tunnels:\n  # from /ssm-proxy/tunnels/prod\n  prod:\n    target: name:bastion\n    dns: false\n",
      );
    });
  });
});

Deno.test("config show --local: no AWS; show says when the team cannot be read", async () => {
  await withHomes(async (a) => {
    await Deno.writeTextFile(`${a}/.config/ssm-proxy/config.yaml`, ALICE);
    const r = await ssmProxy(a, "config", "show", "--local", "--json");
    assert.equal(r.code, 0, r.stderr);
    const shown = JSON.parse(r.stdout);
    assert.deepEqual(shown.team, { path: "/ssm-proxy", skipped: true });
    assert.equal(shown.tunnels.length, 2);
    assert.deepEqual(shown.clusters[0].entry.cluster_name, "dev-eks");
    const world = `${a}/world.yaml`;
    await Deno.writeTextFile(world, "deny:\n  - { action: ssm:GetParametersByPath }\n");
    await withEmulator(world, async () => {
      const r2 = await ssmProxy(a, "config", "show");
      assert.equal(r2.code, 0, r2.stderr);
      assert.match(
        r2.stderr,
        /^warning: team entries not shown: access denied: .*ssm:GetParametersByPath/,
      );
      assert.match(r2.stdout, /# team: \/ssm-proxy \(not read\)/);
      assert.match(r2.stdout, / {2}# local: .*config\.yaml:2\n {2}prod:\n/);
    });
  });
});
