/**
 * `findTunnel`: the local config first, then the team's parameter, through the real SDK against
 * the emulator's Parameter Store. And `listTunnelNames` for completion.
 */
import assert from "node:assert/strict";
import { findTunnel } from "../../src/config/find.ts";
import { listTunnelNames } from "../../src/config/names.ts";
import {
  deleteParameter,
  getParameter,
  getParametersByPath,
  putParameter,
} from "../../src/aws/parameters.ts";
import { withEmulator } from "../aws/harness_test.ts";
import { UserError } from "../../src/errors.ts";

const TEAM_PROD = '{"kind":"tunnel","version":1,"target":"name:bastion","cidrs":["10.1.0.0/16"]}';

async function withFiles<T>(files: Record<string, string>, fn: (dir: string) => Promise<T>) {
  const dir = await Deno.makeTempDir();
  try {
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(`${dir}/${name}`, text);
    }
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function fixtures(dir: string, extra = ""): Promise<string> {
  const path = `${dir}/world.yaml`;
  await Deno.writeTextFile(
    path,
    `parameters:
  - { name: /ssm-proxy/tunnels/prod, value: '${TEAM_PROD}', type: String }
  - { name: /ssm-proxy/tunnels/stage, value: '{"target":"name:stage","stripes":99}', type: String }
  - { name: /team-b/tunnels/prod, value: '{"target":"i-0123456789abcdef0"}', type: String }
${extra}`,
  );
  return path;
}

const LOCAL = `tunnels:
  # ours
  prod:
    target: name:local-bastion
    stripes: 4
`;

Deno.test("findTunnel: a local entry wins over the team's, with file:line", async () => {
  await withFiles({ "c.yaml": LOCAL }, async (dir) => {
    await withEmulator(await fixtures(dir), async (emu) => {
      const got = await findTunnel("prod", { configFile: `${dir}/c.yaml`, aws: {} });
      assert.deepEqual(got, {
        profile: { name: "prod", target: "name:local-bastion", stripes: 4 },
        source: "local",
        where: `${dir}/c.yaml:3`,
      });
      assert.equal(emu.seen.length, 0, "no AWS call for a local tunnel");
    });
  });
});

Deno.test("findTunnel: no local entry falls back to the team's parameter", async () => {
  await withFiles({ "c.yaml": LOCAL }, async (dir) => {
    await withEmulator(await fixtures(dir), async (emu) => {
      const aws = {};
      await assert.rejects(
        findTunnel("prod", { configFile: `${dir}/none.yaml`, aws, env: {} }),
        /^ConfigError: .*\/none\.yaml: cannot read: /,
        "a config named with --config must exist",
      );
      // A default config that does not exist is no config: straight to the team.
      const got = await findTunnel("prod", { aws, env: { HOME: `${dir}/home` } });
      assert.deepEqual(got, {
        profile: { name: "prod", target: "name:bastion", cidrs: ["10.1.0.0/16"] },
        source: "team",
        where: "/ssm-proxy/tunnels/prod",
      });
      assert.deepEqual(emu.seen.map((s) => s.op), ["AmazonSSM.GetParameter"]);
      const other = await findTunnel("prod", { aws, teamPath: "/team-b/", env: {} });
      assert.equal(other?.profile.target, "i-0123456789abcdef0");
      assert.equal(other?.where, "/team-b/tunnels/prod");
      assert.equal(await findTunnel("nope", { configFile: `${dir}/c.yaml`, aws }), undefined);
    });
  });
});

Deno.test("findTunnel: an invalid team entry names its parameter; a bad name is refused", async () => {
  await withFiles({}, async (dir) => {
    await withEmulator(await fixtures(dir), async () => {
      await assert.rejects(
        findTunnel("stage", { aws: {}, env: {} }),
        /^ConfigError: \/ssm-proxy\/tunnels\/stage: tunnels\.stage\.stripes: expected auto or a whole number from 1 to 16$/,
      );
      await assert.rejects(findTunnel("Prod", { aws: {}, env: {} }), /"Prod" is not a tunnel name/);
    });
  });
});

Deno.test("findTunnel: a denied GetParameter is one line naming ssm:GetParameter", async () => {
  await withFiles({}, async (dir) => {
    const world = await fixtures(dir, "deny:\n  - { action: ssm:GetParameter }\n");
    await withEmulator(world, async () => {
      const e = await findTunnel("prod", { aws: {}, env: {} }).then(() => undefined, (e) => e);
      assert.ok(e instanceof UserError, String(e));
      assert.match(
        e.message,
        /^access denied: .* may not call ssm:GetParameter on .*parameter\/ssm-proxy\/tunnels\/prod; the IAM policy needs to allow "ssm:GetParameter"$/,
      );
      assert.equal(e.exitCode, 3);
    });
  });
});

Deno.test("parameters: put, get, list by path (paginated), delete through the SDK", async () => {
  await withFiles({}, async (dir) => {
    await withEmulator(await fixtures(dir), async (emu) => {
      const o = {};
      for (let i = 0; i < 23; i++) {
        await putParameter(o, { name: `/many/tunnels/t${i}`, value: `{"n":${i}}` });
      }
      const before = emu.seen.length;
      const all = await getParametersByPath(o, "/many");
      assert.equal(all.length, 23);
      assert.ok(emu.seen.length - before > 1, "more than one page of GetParametersByPath");
      assert.deepEqual(new Set(all.map((p) => p.name)).size, 23);
      await assert.rejects(
        putParameter(o, { name: "/many/tunnels/t0", value: "{}" }),
        /ssm:PutParameter failed: ParameterAlreadyExists/,
      );
      assert.equal(
        (await putParameter(o, { name: "/many/tunnels/t0", value: "{}", overwrite: true })).version,
        2,
      );
      assert.equal((await getParameter(o, "/many/tunnels/t0"))?.value, "{}");
      assert.equal(await deleteParameter(o, "/many/tunnels/t0"), true);
      assert.equal(await deleteParameter(o, "/many/tunnels/t0"), false);
      assert.equal(await getParameter(o, "/many/tunnels/t0"), undefined);
    });
  });
});

Deno.test("listTunnelNames: local names only, and nothing (not an error) when broken", async () => {
  await withFiles(
    {
      "c.yaml": "tunnels:\n  prod: {}\n  Bad: {}\n  dev-2:\n    stripes: 99\n",
      "broken.yaml": "tunnels: [\n",
    },
    async (dir) => {
      assert.deepEqual(await listTunnelNames({ configFile: `${dir}/c.yaml` }), ["prod", "dev-2"]);
      assert.deepEqual(await listTunnelNames({ configFile: `${dir}/broken.yaml` }), []);
      assert.deepEqual(await listTunnelNames({ configFile: `${dir}/none.yaml` }), []);
      assert.deepEqual(await listTunnelNames({}, { XDG_CONFIG_HOME: dir }), []);
      await Deno.mkdir(`${dir}/ssm-proxy`);
      await Deno.copyFile(`${dir}/c.yaml`, `${dir}/ssm-proxy/config.yaml`);
      assert.deepEqual(await listTunnelNames({}, { XDG_CONFIG_HOME: dir }), ["prod", "dev-2"]);
    },
  );
});
