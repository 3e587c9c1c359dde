/** clusters.yaml / config.yaml `clusters:` validation and discovery. */
import assert from "node:assert/strict";
import { parseClusters } from "../../src/config/clusters.ts";
import { clusterCandidates, loadClusters } from "../../src/config/load.ts";

const GOOD = `# kube-ssm-proxy clusters.yaml, as is
clusters:
  - name: dev
    region: eu-west-1
    cluster_name: dev-eks
    profile: dev-admin
  - name: prod
    region: eu-central-1
    cluster_name: prod-eks
    profile: prod-ro
    environment: production
    direct_connect: true
`;

Deno.test("clusters: the kube-ssm-proxy schema with defaults", () => {
  assert.deepEqual(parseClusters(GOOD, "c.yaml"), [
    {
      name: "dev",
      region: "eu-west-1",
      cluster_name: "dev-eks",
      profile: "dev-admin",
      environment: "unknown",
      direct_connect: false,
    },
    {
      name: "prod",
      region: "eu-central-1",
      cluster_name: "prod-eks",
      profile: "prod-ro",
      environment: "production",
      direct_connect: true,
    },
  ]);
});

Deno.test("clusters: bastion_tag is accepted as Key=Value", () => {
  const text = "clusters:\n  - {name: a, region: eu-west-1, cluster_name: c, profile: p, " +
    "bastion_tag: Role=jump}\n";
  assert.equal(parseClusters(text, "c.yaml")[0].bastion_tag, "Role=jump");
});

const entry = (extra: string) =>
  `clusters:\n  - name: dev\n    region: eu-west-1\n    cluster_name: dev-eks\n    profile: p\n${extra}`;

const ERRORS: [string, string, RegExp][] = [
  [
    "missing name",
    "clusters:\n  - region: eu-west-1\n    cluster_name: c\n    profile: p\n",
    /^c\.yaml:2: clusters\[0\]\.name: required$/,
  ],
  [
    "missing region",
    "clusters:\n  - name: a\n    cluster_name: c\n    profile: p\n",
    /^c\.yaml:2: clusters\[0\] \(a\)\.region: required$/,
  ],
  [
    "missing cluster_name",
    "clusters:\n  - name: a\n    region: eu-west-1\n    profile: p\n",
    /^c\.yaml:2: clusters\[0\] \(a\)\.cluster_name: required$/,
  ],
  [
    "missing profile",
    "clusters:\n  - name: a\n    region: eu-west-1\n    cluster_name: c\n",
    /^c\.yaml:2: clusters\[0\] \(a\)\.profile: required$/,
  ],
  [
    "empty profile",
    entry("").replace("profile: p", 'profile: "  "'),
    /^c\.yaml:5: clusters\[0\] \(dev\)\.profile: must not be empty$/,
  ],
  [
    "number as name",
    "clusters:\n  - name: 42\n    region: eu-west-1\n    cluster_name: c\n    profile: p\n",
    /^c\.yaml:2: clusters\[0\]\.name: expected a string$/,
  ],
  [
    "short region",
    entry("").replace("eu-west-1", "eu"),
    /^c\.yaml:3: clusters\[0\] \(dev\)\.region: "eu" is too short to be a region$/,
  ],
  [
    "bad direct_connect",
    entry("    direct_connect: yes please\n"),
    /^c\.yaml:6: clusters\[0\] \(dev\)\.direct_connect: expected true or false$/,
  ],
  [
    "empty environment",
    entry('    environment: ""\n'),
    /^c\.yaml:6: clusters\[0\] \(dev\)\.environment: must not be empty$/,
  ],
  [
    "bad bastion_tag",
    entry("    bastion_tag: bastion\n"),
    /^c\.yaml:6: clusters\[0\] \(dev\)\.bastion_tag: "bastion" is not Key=Value$/,
  ],
  [
    "unknown key",
    entry("    regoin: x\n"),
    /^c\.yaml:6: clusters\[0\] \(dev\)\.regoin: unknown key \(allowed: name, region, cluster_name, profile, environment, direct_connect, bastion_tag\)$/,
  ],
  [
    "duplicate name",
    GOOD.replace("name: prod", "name: dev"),
    /^c\.yaml:7: clusters\[1\] \(dev\)\.name: duplicate name "dev" \(also clusters\[0\]\)$/,
  ],
  [
    "entry not a mapping",
    "clusters:\n  - just-a-name\n",
    /^c\.yaml:2: clusters\[0\]: expected a mapping$/,
  ],
  ["clusters not a list", "clusters:\n  dev: {}\n", /^c\.yaml:2: clusters: expected a list$/],
  ["no clusters key", "connections: {}\n", /^c\.yaml: no "clusters:" list$/],
  ["empty file", "", /^c\.yaml: empty file: expected a "clusters:" list$/],
  ["top level a list", "- a\n", /^c\.yaml:1: expected a mapping at top level$/],
  ["bad YAML", "clusters:\n  - name: [a\n", /^c\.yaml:\d+: /],
];

for (const [what, text, re] of ERRORS) {
  Deno.test(`clusters: error names file, line, entry and key: ${what}`, () => {
    assert.throws(() => parseClusters(text, "c.yaml"), (e: Error) => {
      assert.equal(e.name, "ConfigError");
      assert.match(e.message, re);
      return true;
    });
  });
}

Deno.test("clusters: in config.yaml, other sections are left alone and clusters are optional", () => {
  assert.deepEqual(parseClusters("connections:\n  x: {}\n", "config.yaml", false), []);
  assert.equal(
    parseClusters("connections: {}\n" + GOOD.split("\n").slice(1).join("\n"), "config.yaml", false)
      .length,
    2,
  );
});

Deno.test("clusters: sources in order, --clusters alone when given", () => {
  const env = { HOME: "/home/u" };
  assert.deepEqual(
    clusterCandidates({}, env, "/work", "/opt/bin/ssm-proxy").map((c) => c.path),
    ["/home/u/.config/ssm-proxy/config.yaml", "/work/clusters.yaml", "/opt/bin/clusters.yaml"],
  );
  assert.deepEqual(
    clusterCandidates({}, { ...env, SSM_PROXY_CONFIG: "/etc/s.yaml" }, "/w", "/usr/bin/deno")
      .map((c) => [c.path, c.explicit]),
    [["/etc/s.yaml", true], ["/w/clusters.yaml", false]],
  );
  assert.deepEqual(
    clusterCandidates({ clustersFile: "x.yaml", configFile: "y.yaml" }, env, "/w", "/b/ssm-proxy"),
    [{ path: "x.yaml", explicit: true, inConfig: false }],
  );
});

Deno.test("clusters: loading skips a config without clusters, and says where it looked", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/.config/ssm-proxy`, { recursive: true });
    await Deno.writeTextFile(`${dir}/.config/ssm-proxy/config.yaml`, "connections: {}\n");
    const cwd = Deno.cwd();
    Deno.chdir(dir);
    try {
      await assert.rejects(
        loadClusters({}, { HOME: dir }),
        /^ConfigError: no clusters configured: looked in .*config\.yaml \(no clusters:\), .*clusters\.yaml/,
      );
      await Deno.writeTextFile(`${dir}/clusters.yaml`, GOOD);
      const got = await loadClusters({}, { HOME: dir });
      assert.equal(got.file, `${dir}/clusters.yaml`);
      assert.equal(got.clusters.length, 2);
      await assert.rejects(
        loadClusters({ clustersFile: `${dir}/none.yaml` }),
        /none\.yaml: cannot read/,
      );
    } finally {
      Deno.chdir(cwd);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
