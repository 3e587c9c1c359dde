import assert from "node:assert/strict";
import { ConfigError, defaultConfig, loadConfig, parseConfig } from "../../agent/config.ts";
import { formatCidr } from "../../agent/cidr.ts";

Deno.test("config: empty file gives the defaults", () => {
  assert.deepEqual(parseConfig("", "a.yaml"), defaultConfig());
  assert.deepEqual(parseConfig("# nothing\n", "a.yaml"), defaultConfig());
  const d = defaultConfig();
  assert.deepEqual(d.listen, { hostname: "127.0.0.1", port: 7797 });
  assert.deepEqual(formatCidr(d.pool), "100.64.0.0/16");
  assert.deepEqual([d.mtu, d.tunName, d.nat, d.leaseGraceSeconds], [1400, "ssmp%d", "auto", 120]);
});

Deno.test("config: every key", () => {
  const c = parseConfig(
    `listen: 127.0.0.1:9000
pool: 100.70.0.0/20
mtu: 1300
tunName: agt%d
uplink: ens5
resolver: 10.0.0.2
nat: nft
policy:
  allow: [10.0.0.0/8]
  deny:
    - 10.9.0.0/16
leaseGraceSeconds: 30
stateDir: /var/lib/ssm-proxy
`,
    "a.yaml",
  );
  assert.deepEqual(c.listen, { hostname: "127.0.0.1", port: 9000 });
  assert.deepEqual(formatCidr(c.pool), "100.70.0.0/20");
  assert.deepEqual([c.mtu, c.tunName, c.uplink, c.resolver, c.nat], [
    1300,
    "agt%d",
    "ens5",
    "10.0.0.2",
    "nft",
  ]);
  assert.deepEqual(c.policy, { allow: ["10.0.0.0/8"], deny: ["10.9.0.0/16"] });
  assert.deepEqual(c.leaseGraceSeconds, 30);
  assert.equal(c.stateDir, "/var/lib/ssm-proxy");
});

Deno.test("config: stateDir must be absolute", () => {
  assert.throws(
    () => parseConfig("stateDir: var/lib\n", "/etc/agent.yaml"),
    /\/etc\/agent.yaml:1: stateDir: expected an absolute path/,
  );
});

function err(text: string): string {
  try {
    parseConfig(text, "/etc/agent.yaml");
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.message;
  }
  throw new Error(`no error for ${JSON.stringify(text)}`);
}

Deno.test("config: errors name file, line and key", () => {
  assert.deepEqual(
    err("mtu: 1400\npolcy: {}\n"),
    "/etc/agent.yaml:2: polcy: unknown key (allowed: listen, pool, mtu, tunName, uplink, resolver, nat, policy, leaseGraceSeconds, stateDir)",
  );
  assert.deepEqual(
    err("pool: 100.64.0.0/16\nmtu: big\n"),
    '/etc/agent.yaml:2: mtu: expected an integer from 576 to 65533, got "big"',
  );
  assert.deepEqual(
    err("mtu: 100\n"),
    "/etc/agent.yaml:1: mtu: expected an integer from 576 to 65533, got 100",
  );
  assert.deepEqual(
    err("policy:\n  allow:\n    - 10.0.0.0/8\n    - 10.0.0.1/8\n"),
    '/etc/agent.yaml:4: policy.allow[1]: "10.0.0.1/8" is not an IPv4 network like 10.0.0.0/16 (host bits zero)',
  );
  assert.deepEqual(
    err("policy:\n  alow: []\n"),
    "/etc/agent.yaml:2: policy.alow: unknown key (allowed: allow, deny)",
  );
  assert.deepEqual(err("policy: [1]\n"), "/etc/agent.yaml:1: policy: expected a mapping");
  assert.deepEqual(
    err("policy:\n  deny: 10.0.0.0/8\n"),
    "/etc/agent.yaml:2: policy.deny: expected a list of CIDRs",
  );
  assert.deepEqual(
    err("nat: maybe\n"),
    '/etc/agent.yaml:1: nat: expected auto, nft, iptables or off, got "maybe"',
  );
  assert.deepEqual(err("listen: 7797\n"), "/etc/agent.yaml:1: listen: expected a string");
  assert.deepEqual(
    err("listen: ':7797'\n"),
    '/etc/agent.yaml:1: listen: ":7797" is not an IPv4 host:port',
  );
  assert.deepEqual(
    err("pool: 100.64.0.0/31\n"),
    "/etc/agent.yaml:1: pool: prefix /31 must be between /8 and /30",
  );
  assert.deepEqual(
    err('uplink: "eth0; drop"\n'),
    '/etc/agent.yaml:1: uplink: "eth0; drop" is not an interface name',
  );
  assert.deepEqual(
    err("resolver: dns\n"),
    '/etc/agent.yaml:1: resolver: "dns" is not an IPv4 address',
  );
  assert.deepEqual(
    err("leaseGraceSeconds: -1\n"),
    "/etc/agent.yaml:1: leaseGraceSeconds: expected a number ≥ 0, got -1",
  );
  assert.deepEqual(err("- a\n"), "/etc/agent.yaml:1: top level: expected a mapping");
  assert.deepEqual(err("mtu: [1]\n"), "/etc/agent.yaml:1: mtu: expected a single value");
  assert.deepEqual(err("mtu: 1\nmtu: 2\n").startsWith("/etc/agent.yaml:2: "), true);
  assert.deepEqual(err("mtu: : :\n").startsWith("/etc/agent.yaml:1: "), true);
});

Deno.test("config: a missing default file is fine, a missing --config file is not", async () => {
  assert.deepEqual(await loadConfig("/nonexistent/agent.yaml", false), defaultConfig());
  const e = await loadConfig("/nonexistent/agent.yaml", true).catch((e) => e);
  assert.deepEqual(e.message, "config file /nonexistent/agent.yaml not found");
});
