/** `tunnels:` in config.yaml and team entries: the schema, and every mistake named by place. */
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/file.ts";
import {
  decodeCluster,
  decodeTeam,
  decodeTunnel,
  encodeCluster,
  encodeTunnel,
  teamRoot,
} from "../../src/config/team.ts";
import { domainName } from "../../src/config/tunnels.ts";
import { configPath } from "../../src/config/load.ts";

const GOOD = `# my tunnels
tunnels:
  prod:                      # the production VPC
    target: name:bastion
    cidrs: [10.0.0.0/16]
    exclude: [10.0.5.0/24]
    dns_domains: [Corp.Internal.]
    dns: true
    stripes: 2
    mode: auto
    profile: prod-admin
    region: eu-west-1
  dev_1:
    target: i-0123456789abcdef0
clusters:
  - name: dev
    region: eu-west-1
    cluster_name: dev-eks
    profile: dev-admin
`;

Deno.test("tunnels: every key, normalised, with the line of each name", () => {
  const c = parseConfig(GOOD, "c.yaml", true);
  assert.deepEqual(c.tunnels, [
    {
      line: 3,
      profile: {
        name: "prod",
        target: "name:bastion",
        cidrs: ["10.0.0.0/16"],
        exclude: ["10.0.5.0/24"],
        dnsDomains: ["corp.internal"],
        dns: true,
        stripes: 2,
        mode: "auto",
        profile: "prod-admin",
        region: "eu-west-1",
      },
    },
    { line: 13, profile: { name: "dev_1", target: "i-0123456789abcdef0" } },
  ]);
  assert.equal(c.clusters.length, 1);
  assert.equal(c.clusters[0].name, "dev");
});

Deno.test("tunnels: empty and comment-only files are an empty config", () => {
  assert.deepEqual(parseConfig("", "c.yaml", true), { tunnels: [], clusters: [] });
  assert.deepEqual(parseConfig("# nothing yet\n", "c.yaml", true), { tunnels: [], clusters: [] });
  assert.deepEqual(parseConfig("tunnels:\nclusters:\n", "c.yaml", true), {
    tunnels: [],
    clusters: [],
  });
});

/** A config with one tunnel whose entry is `body` (indented under `prod:` at line 2). */
function one(body: string): string {
  return `tunnels:\n  prod:\n${body.split("\n").map((l) => `    ${l}`).join("\n")}\n`;
}

const MISTAKES: [string, string, RegExp][] = [
  [
    "unknown key",
    one("target: name:b\ncidr: [10.0.0.0/8]"),
    /^c\.yaml:4: tunnels\.prod\.cidr: unknown key \(allowed: target, cidrs,/,
  ],
  [
    "target not a string",
    one("target: [a]"),
    /^c\.yaml:3: tunnels\.prod\.target: expected a single value$/,
  ],
  [
    "bad target",
    one("target: bastion"),
    /^c\.yaml:3: tunnels\.prod\.target: "bastion" is not a target: .*did you mean name:bastion\?/,
  ],
  [
    "bad instance id",
    one("target: i-123"),
    /^c\.yaml:3: tunnels\.prod\.target: "i-123" is not a valid instance id/,
  ],
  [
    "cidrs not a list",
    one("cidrs: 10.0.0.0/16"),
    /^c\.yaml:3: tunnels\.prod\.cidrs: expected a list like \[10\.0\.0\.0\/16\]$/,
  ],
  [
    "bad cidr",
    one("cidrs:\n  - 10.0.0.0/16\n  - 10.0.0.300/24"),
    /^c\.yaml:5: tunnels\.prod\.cidrs\[1\]: "10\.0\.0\.300\/24" is not an IPv4 CIDR/,
  ],
  [
    "host bits",
    one("exclude: [10.0.5.1/24]"),
    /^c\.yaml:3: tunnels\.prod\.exclude\[0\]: 10\.0\.5\.1\/24 has host bits set: did you mean 10\.0\.5\.0\/24\?$/,
  ],
  [
    "cidr not a string",
    one("cidrs: [16]"),
    /^c\.yaml:3: tunnels\.prod\.cidrs\[0\]: expected a string like 10\.0\.0\.0\/16$/,
  ],
  [
    "empty cidrs",
    one("cidrs: []"),
    /^c\.yaml:3: tunnels\.prod\.cidrs: empty list: leave the key out/,
  ],
  [
    "bad domain",
    one("dns_domains: [corp..internal]"),
    /^c\.yaml:3: tunnels\.prod\.dns_domains\[0\]: "corp\.\.internal" is not a domain name/,
  ],
  [
    "domain with space",
    one("dns_domains: [corp internal]"),
    /^c\.yaml:3: tunnels\.prod\.dns_domains\[0\]: "corp internal" is not a domain name/,
  ],
  ["dns not boolean", one("dns: yes"), /^c\.yaml:3: tunnels\.prod\.dns: expected true or false$/],
  [
    "stripes zero",
    one("stripes: 0"),
    /^c\.yaml:3: tunnels\.prod\.stripes: expected auto or a whole number from 1 to 16$/,
  ],
  [
    "stripes 17",
    one("stripes: 17"),
    /^c\.yaml:3: tunnels\.prod\.stripes: expected auto or a whole number from 1 to 16$/,
  ],
  [
    "stripes fraction",
    one("stripes: 1.5"),
    /^c\.yaml:3: tunnels\.prod\.stripes: expected auto or a whole number/,
  ],
  [
    "stripes text",
    one('stripes: "2"'),
    /^c\.yaml:3: tunnels\.prod\.stripes: expected auto or a whole number/,
  ],
  [
    "bad mode",
    one("mode: ssh"),
    /^c\.yaml:3: tunnels\.prod\.mode: "ssh" is not a mode: use agent, agentless, auto$/,
  ],
  ["empty profile", one('profile: ""'), /^c\.yaml:3: tunnels\.prod\.profile: must not be empty$/],
  ["profile number", one("profile: 12"), /^c\.yaml:3: tunnels\.prod\.profile: expected a string$/],
  [
    "bad region",
    one("region: Frankfurt"),
    /^c\.yaml:3: tunnels\.prod\.region: "Frankfurt" is not an AWS region like eu-west-1$/,
  ],
  [
    "entry not a mapping",
    "tunnels:\n  prod: name:bastion\n",
    /^c\.yaml:2: tunnels\.prod: expected a mapping$/,
  ],
  [
    "empty entry",
    "tunnels:\n  prod:\n",
    /^c\.yaml:2: tunnels\.prod: empty entry: give at least a target$/,
  ],
  [
    "bad name",
    "tunnels:\n  Prod:\n    target: name:b\n",
    /^c\.yaml:2: tunnels\.Prod: "Prod" is not a tunnel name: 1 to 32 of a-z/,
  ],
  [
    "long name",
    `tunnels:\n  ${"a".repeat(33)}:\n    target: name:b\n`,
    /^c\.yaml:2: tunnels\.a{33}: .* is not a tunnel name/,
  ],
  [
    "tunnels a list",
    "tunnels:\n  - name: prod\n",
    /^c\.yaml:2: tunnels: expected a mapping of tunnel names to entries$/,
  ],
  [
    "duplicate name",
    "tunnels:\n  prod: {target: name:a}\n  prod: {target: name:b}\n",
    /^c\.yaml:3: Map keys must be unique/,
  ],
  ["bad YAML", "tunnels:\n  prod: {target: name:a\n", /^c\.yaml:\d+: /],
  ["top level a list", "- tunnels\n", /^c\.yaml:1: top level: expected a mapping/],
  [
    "cluster mistake",
    "clusters:\n  - name: dev\n    region: eu-west-1\n",
    /^c\.yaml:2: clusters\[0\] \(dev\)\.cluster_name: required$/,
  ],
];

for (const [what, text, want] of MISTAKES) {
  Deno.test(`tunnels: ${what} is an error naming file, line and key`, () => {
    assert.throws(() => parseConfig(text, "c.yaml"), (e: Error) => {
      assert.equal(e.name, "ConfigError");
      assert.match(e.message, want);
      assert.ok(!e.message.includes("\n"), "one line");
      return true;
    });
  });
}

Deno.test("tunnels: an unknown top-level key fails config check, not other commands", () => {
  const text = "tunnels: {}\ntunnel:\n  prod: {target: name:b}\n";
  assert.throws(
    () => parseConfig(text, "c.yaml", true),
    /^ConfigError: c\.yaml:2: tunnel: unknown key \(allowed: tunnels, clusters\)$/,
  );
  assert.deepEqual(parseConfig(text, "c.yaml", false), { tunnels: [], clusters: [] });
});

Deno.test("tunnels: domain names are normalised like --dns-domain and checked per label", () => {
  assert.equal(domainName(".Corp.Example."), "corp.example");
  assert.equal(domainName("_tcp.corp"), "_tcp.corp");
  assert.throws(() => domainName("-corp.example"), /not a domain name/);
  assert.throws(() => domainName(`${"a".repeat(64)}.example`), /not a domain name/);
  assert.throws(() => domainName("."), /not a domain name/);
});

Deno.test("team: entries round-trip through their JSON", () => {
  const { tunnels, clusters } = parseConfig(GOOD, "c.yaml");
  for (const t of tunnels) {
    const json = encodeTunnel(t.profile);
    assert.equal(JSON.parse(json).kind, "tunnel");
    assert.equal(JSON.parse(json).name, undefined);
    assert.deepEqual(decodeTunnel(json, "/p/tunnels/x", t.profile.name), t.profile);
  }
  assert.deepEqual(
    decodeCluster(encodeCluster(clusters[0]), "/p/clusters/dev", "dev"),
    clusters[0],
  );
});

Deno.test("team: an invalid entry is named by its parameter", () => {
  const p = "/ssm-proxy/tunnels/prod";
  const cases: [string, RegExp][] = [
    ["{nope", /^\/ssm-proxy\/tunnels\/prod: not JSON: /],
    ['"name:bastion"', /^\/ssm-proxy\/tunnels\/prod: expected a JSON object/],
    [
      '{"target":"name:b","stripes":40}',
      /^\/ssm-proxy\/tunnels\/prod: tunnels\.prod\.stripes: expected auto or a whole number from 1 to 16$/,
    ],
    [
      '{"target":"name:b","cidr":["10.0.0.0/8"]}',
      /^\/ssm-proxy\/tunnels\/prod: tunnels\.prod\.cidr: unknown key/,
    ],
    ['{"kind":"cluster","region":"eu-west-1"}', /holds a "cluster" entry, not a tunnel/],
    ['{"version":2,"target":"name:b"}', /format version 2 is not 1: .*upgrade/],
  ];
  for (const [value, want] of cases) {
    assert.throws(() => decodeTunnel(value, p, "prod"), (e: Error) => {
      assert.equal(e.name, "ConfigError");
      assert.match(e.message, want);
      return true;
    });
  }
  assert.throws(
    () => decodeCluster('{"region":"eu-west-1"}', "/ssm-proxy/clusters/dev", "dev"),
    /^ConfigError: \/ssm-proxy\/clusters\/dev: clusters\[0\] \(dev\)\.cluster_name: required$/,
  );
});

Deno.test("team: decoding a listing keeps the good entries and reports the rest", () => {
  const params = [
    { name: "/ssm-proxy/tunnels/prod", value: '{"target":"name:bastion"}', type: "String" },
    { name: "/ssm-proxy/tunnels/Bad", value: '{"target":"name:bastion"}', type: "String" },
    { name: "/ssm-proxy/tunnels/broken", value: '{"stripes":0}', type: "String" },
    { name: "/ssm-proxy/notes", value: "hello", type: "String" },
    {
      name: "/ssm-proxy/clusters/dev",
      value: '{"region":"eu-west-1","cluster_name":"d","profile":"p"}',
      type: "String",
    },
  ];
  const t = decodeTeam("/ssm-proxy", params);
  assert.deepEqual(t.tunnels, [
    { profile: { name: "prod", target: "name:bastion" }, where: "/ssm-proxy/tunnels/prod" },
  ]);
  assert.deepEqual(t.clusters.map((c) => [c.entry.name, c.where]), [
    ["dev", "/ssm-proxy/clusters/dev"],
  ]);
  assert.equal(t.problems.length, 3);
  assert.match(t.problems.join("\n"), /\/ssm-proxy\/notes: not \/ssm-proxy\/tunnels\/NAME/);
  assert.match(t.problems.join("\n"), /\/ssm-proxy\/tunnels\/Bad: "Bad" is not a tunnel name/);
  assert.match(t.problems.join("\n"), /\/ssm-proxy\/tunnels\/broken: tunnels\.broken\.stripes/);
});

Deno.test("team: --path is checked and loses its trailing slash", () => {
  assert.equal(teamRoot(undefined), "/ssm-proxy");
  assert.equal(teamRoot("/team/ssm-proxy/"), "/team/ssm-proxy");
  assert.throws(() => teamRoot("ssm-proxy"), /is not a Parameter Store path/);
  assert.throws(() => teamRoot("/a b"), /is not a Parameter Store path/);
});

Deno.test("config path: --config, then SSM_PROXY_CONFIG, then XDG_CONFIG_HOME or ~/.config", () => {
  const env = { HOME: "/h", XDG_CONFIG_HOME: "/x", SSM_PROXY_CONFIG: "/e.yaml" };
  assert.deepEqual(configPath("/f.yaml", env), { path: "/f.yaml", explicit: true });
  assert.deepEqual(configPath(undefined, env), { path: "/e.yaml", explicit: true });
  assert.deepEqual(configPath(undefined, { HOME: "/h", XDG_CONFIG_HOME: "/x" }), {
    path: "/x/ssm-proxy/config.yaml",
    explicit: false,
  });
  assert.deepEqual(configPath(undefined, { HOME: "/h", XDG_CONFIG_HOME: "" }), {
    path: "/h/.config/ssm-proxy/config.yaml",
    explicit: false,
  });
  assert.equal(configPath(undefined, {}), undefined);
});

Deno.test("tunnels: stripes may be auto, as on the command line", () => {
  const c = parseConfig(
    "tunnels:\n  prod:\n    target: name:bastion\n    stripes: auto\n",
    "c.yaml",
  );
  assert.equal(c.tunnels[0].profile.stripes, "auto");
});
