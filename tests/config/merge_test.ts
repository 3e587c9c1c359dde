/** `config pull`'s plan (local wins, differences shown) and its edit of the user's YAML. */
import assert from "node:assert/strict";
import { addEntries, writeAtomic } from "../../src/config/edit.ts";
import { parseConfig } from "../../src/config/file.ts";
import { describeDiff, planMerge, summarize } from "../../src/config/merge.ts";
import type { ClusterEntry } from "../../src/config/clusters.ts";

const dev: ClusterEntry = {
  name: "dev",
  region: "eu-west-1",
  cluster_name: "dev-eks",
  profile: "dev-admin",
  environment: "unknown",
  direct_connect: false,
};

Deno.test("merge: missing entries are added, equal ones counted, different ones kept local", () => {
  const local = {
    tunnels: [
      { name: "prod", target: "name:bastion", cidrs: ["10.0.0.0/16"], stripes: 2 },
      { name: "same", target: "name:x" },
    ],
    clusters: [dev],
  };
  const team = {
    tunnels: [
      { name: "prod", target: "name:bastion", cidrs: ["10.1.0.0/16", "10.2.0.0/16"] },
      { name: "same", target: "name:x" },
      { name: "stage", target: "tag:Env=stage", dns: false },
    ],
    clusters: [{ ...dev, profile: "other" }, { ...dev, name: "qa" }],
  };
  const plan = planMerge(local, team);
  assert.deepEqual(plan.add, {
    tunnels: [{ name: "stage", target: "tag:Env=stage", dns: false }],
    clusters: [{ ...dev, name: "qa" }],
  });
  assert.equal(plan.same, 1);
  assert.deepEqual(plan.differ.map((d) => describeDiff(d)), [
    "tunnels.prod: local cidrs [10.0.0.0/16], team [10.1.0.0/16, 10.2.0.0/16]; " +
    "local stripes 2, team (unset): kept local",
    "clusters.dev: local profile dev-admin, team other: kept local",
  ]);
  assert.equal(
    summarize(plan, { file: "/c.yaml", root: "/ssm-proxy", skipped: 1 }),
    "added 1 tunnel and 1 cluster from /ssm-proxy to /c.yaml; 1 already the same, " +
      "2 kept local, 1 invalid skipped",
  );
  assert.match(
    summarize(plan, { file: "/c.yaml", root: "/r", dryRun: true }),
    /^would add 1 tunnel/,
  );
});

Deno.test("merge: nothing on either side is nothing to do", () => {
  const plan = planMerge({ tunnels: [], clusters: [] }, { tunnels: [], clusters: [] });
  assert.deepEqual(plan, { add: { tunnels: [], clusters: [] }, differ: [], same: 0 });
});

const HAND_WRITTEN = `# My ssm-proxy config. Do not lose this comment.
tunnels:
  # the one that matters
  prod:
    target: name:bastion   # the bastion
    cidrs: [10.0.0.0/16]

# clusters for kubectl
clusters:
  - name: dev
    region: eu-west-1
    cluster_name: dev-eks
    profile: dev-admin
`;

Deno.test("edit: added entries go to the end of their section; comments and layout survive", () => {
  const text = addEntries(
    HAND_WRITTEN,
    {
      tunnels: [{ name: "stage", target: "tag:Env=stage", cidrs: ["10.9.0.0/16"], stripes: 3 }],
      clusters: [{ ...dev, name: "qa" }],
    },
    (kind, name) => `from /ssm-proxy/${kind}s/${name}`,
  );
  // The yaml package keeps every comment and line, but may respace a trailing comment.
  const squeeze = (s: string) => s.replace(/\s+/g, " ").trim();
  for (const line of HAND_WRITTEN.split("\n")) {
    assert.ok(squeeze(text).includes(squeeze(line)), line);
  }
  assert.ok(text.startsWith("# My ssm-proxy config. Do not lose this comment.\ntunnels:\n"));
  assert.match(
    text,
    /cidrs: \[10\.0\.0\.0\/16\]\n {2}# from \/ssm-proxy\/tunnels\/stage\n {2}stage:\n {4}target: tag:Env=stage\n {4}cidrs: \[10\.9\.0\.0\/16\]\n {4}stripes: 3\n/,
  );
  assert.match(text, / {2}# from \/ssm-proxy\/clusters\/qa\n {2}- name: qa\n/);
  const back = parseConfig(text, "c.yaml", true);
  assert.deepEqual(back.tunnels.map((t) => t.profile.name), ["prod", "stage"]);
  assert.deepEqual(back.clusters.map((c) => c.name), ["dev", "qa"]);
  assert.deepEqual(back.tunnels[1].profile, {
    name: "stage",
    target: "tag:Env=stage",
    cidrs: ["10.9.0.0/16"],
    stripes: 3,
  });
  assert.deepEqual(back.clusters[1], { ...dev, name: "qa" });
});

Deno.test("edit: sections are created in empty, comment-only and {} configs", () => {
  const add = { tunnels: [{ name: "a", target: "name:a" }], clusters: [dev] };
  for (const start of ["", "# just a comment\n", "tunnels: {}\nclusters: []\n", "tunnels:\n"]) {
    const text = addEntries(start, add);
    const back = parseConfig(text, "c.yaml", true);
    assert.deepEqual(back.tunnels.map((t) => t.profile), [{ name: "a", target: "name:a" }], text);
    assert.deepEqual(back.clusters, [dev], text);
    if (start.startsWith("#")) assert.ok(text.startsWith("# just a comment\n"), text);
    assert.ok(!text.includes("{ a:"), `block style, not flow: ${text}`);
  }
});

Deno.test("edit: written atomically, directories created, a symlinked config stays a symlink", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/deep/er/config.yaml`;
    await writeAtomic(path, "tunnels: {}\n");
    assert.equal(await Deno.readTextFile(path), "tunnels: {}\n");
    await Deno.chmod(path, 0o600);
    await writeAtomic(path, "clusters: []\n");
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    await Deno.symlink(path, `${dir}/link.yaml`);
    await writeAtomic(`${dir}/link.yaml`, "tunnels:\n");
    assert.ok((await Deno.lstat(`${dir}/link.yaml`)).isSymlink);
    assert.equal(await Deno.readTextFile(path), "tunnels:\n");
    assert.deepEqual(
      [...Deno.readDirSync(`${dir}/deep/er`)].map((e) => e.name),
      ["config.yaml"],
      "no temp file left",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
