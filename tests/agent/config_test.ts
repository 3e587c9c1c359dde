import assert from "node:assert/strict";
import { ConfigError, defaultConfig, loadConfig, parseConfig } from "../../agent/config.ts";
import { formatCidr } from "../../agent/cidr.ts";
import { formatCidr6 } from "../../agent/cidr6.ts";
import { parseDuration } from "../../agent/duration.ts";

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
runtimeDir: /run/agent
idleStopAfter: 1h30m
idleStopCommand: "  /sbin/shutdown  -h now "
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
  assert.equal(c.runtimeDir, "/run/agent");
  assert.equal(c.idleStopAfterMs, 5_400_000);
  assert.deepEqual(c.idleStopCommand, ["/sbin/shutdown", "-h", "now"], "split, no shell");
});

Deno.test("config: idle stop is off by default and configurable", () => {
  const d = defaultConfig();
  assert.equal(d.idleStopAfterMs, 0);
  assert.deepEqual(d.idleStopCommand, ["systemctl", "poweroff"]);
  assert.equal(d.runtimeDir, undefined, "main.ts fills in the default");
  const after = (v: string) => parseConfig(`idleStopAfter: ${v}\n`).idleStopAfterMs;
  assert.equal(after("0"), 0);
  assert.equal(after("90"), 90_000, "a bare number is seconds");
  assert.equal(after("90s"), 90_000);
  assert.equal(after("30m"), 1_800_000);
  assert.equal(after("2h"), 7_200_000);
  assert.equal(after('"1.5h"'), 5_400_000);
  assert.equal(after("500ms"), 500);
  assert.equal(after("1d"), 86_400_000);
});

Deno.test("duration: parseDuration", () => {
  assert.equal(parseDuration("1h30m15s"), 5_415_000);
  assert.equal(parseDuration("0"), 0);
  assert.equal(parseDuration("0s"), 0);
  for (const bad of ["", "m", "30", "30 m", "-5m", "5w", "1h 30m", "1.m"]) {
    assert.equal(parseDuration(bad), undefined, bad);
  }
});

Deno.test("config: stateDir and runtimeDir must be absolute", () => {
  assert.throws(
    () => parseConfig("stateDir: var/lib\n", "/etc/agent.yaml"),
    /\/etc\/agent.yaml:1: stateDir: expected an absolute path/,
  );
  assert.throws(
    () => parseConfig("runtimeDir: run\n", "/etc/agent.yaml"),
    /\/etc\/agent.yaml:1: runtimeDir: expected an absolute path/,
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
    "/etc/agent.yaml:2: polcy: unknown key (allowed: listen, pool, pool6, ipv6, mtu, tunName, uplink, resolver, nat, policy, leaseGraceSeconds, stateDir, runtimeDir, idleStopAfter, idleStopCommand, stsEndpoint, policyParameterPath, policyRefresh, audit, auditMaxMB, auditKeep)",
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
    '/etc/agent.yaml:4: policy.allow[1]: "10.0.0.1/8" is not a network like 10.0.0.0/16 or 2600:1f18::/56 (host bits zero)',
  );
  assert.deepEqual(
    err("policy:\n  alow: []\n"),
    "/etc/agent.yaml:2: policy.alow: unknown key (allowed: allow, deny, rules, requireIdentity)",
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
  assert.deepEqual(
    err("idleStopAfter: soon\n"),
    '/etc/agent.yaml:1: idleStopAfter: expected a duration like 90s, 30m or 2h (0: off), got "soon"',
  );
  assert.deepEqual(
    err("idleStopAfter: -1\n"),
    "/etc/agent.yaml:1: idleStopAfter: expected a duration like 90s, 30m or 2h (0: off), got -1",
  );
  assert.deepEqual(
    err("idleStopCommand: '  '\n"),
    "/etc/agent.yaml:1: idleStopCommand: expected a command, got nothing",
  );
  assert.deepEqual(
    err("idleStopCommand: [systemctl, poweroff]\n"),
    "/etc/agent.yaml:1: idleStopCommand: expected a single value",
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

Deno.test("config: ipv6 defaults to auto with pool6 fd7a:5353:5d8b::/48", () => {
  const d = defaultConfig();
  assert.equal(d.ipv6, "auto");
  assert.equal(formatCidr6(d.pool6), "fd7a:5353:5d8b::/48");
  const c = parseConfig(
    "pool: 100.70.0.0/20\npool6: fd12:3456:789a:1::/64\nipv6: on\n" +
      "policy:\n  allow: [10.0.0.0/8, '2600:1f18::/56', ::/0]\n  deny: [2600:1f18:0:9::/64]\n",
  );
  assert.equal(formatCidr6(c.pool6), "fd12:3456:789a:1::/64");
  assert.equal(c.ipv6, "on");
  assert.deepEqual(c.policy, {
    allow: ["10.0.0.0/8", "2600:1f18::/56", "::/0"],
    deny: ["2600:1f18:0:9::/64"],
  });
  assert.equal(parseConfig("ipv6: off\n").ipv6, "off");
  assert.equal(formatCidr6(parseConfig("pool6: fd00::/112\n").pool6), "fd00::/112");
});

Deno.test("config: loadConfig remembers the file (for the ipv6: off reason)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/agent.yaml`, "ipv6: off\n");
    const c = await loadConfig(`${dir}/agent.yaml`, true);
    assert.equal(c.file, `${dir}/agent.yaml`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("config: pool6 must be a ULA /48../112 that holds the pool's host indexes", () => {
  assert.equal(
    err("pool6: 2001:db8::/48\n"),
    "/etc/agent.yaml:1: pool6: 2001:db8::/48 is not a unique local (fd00::/8) block",
  );
  assert.equal(
    err("pool6: fc00::/48\n"),
    "/etc/agent.yaml:1: pool6: fc00::/48 is not a unique local (fd00::/8) block",
  );
  assert.equal(
    err("pool6: fd7a::/40\n"),
    "/etc/agent.yaml:1: pool6: prefix /40 must be between /48 and /112",
  );
  assert.equal(
    err("pool6: fd7a::/120\n"),
    "/etc/agent.yaml:1: pool6: prefix /120 must be between /48 and /112",
  );
  assert.equal(
    err("pool6: fd7a::1/64\n"),
    '/etc/agent.yaml:1: pool6: "fd7a::1/64" is not an IPv6 network like fd7a:5353:5d8b::/48',
  );
  assert.equal(
    err("pool6: 100.64.0.0/16\n"),
    '/etc/agent.yaml:1: pool6: "100.64.0.0/16" is not an IPv6 network like fd7a:5353:5d8b::/48',
  );
  assert.equal(
    err("pool: 100.0.0.0/8\npool6: fd7a::/112\n"),
    "/etc/agent.yaml:2: pool6: /112 leaves 16 host bits, fewer than pool /8 needs (24)",
  );
  assert.equal(parseConfig("pool: 100.64.0.0/16\npool6: fd7a::/112\n").pool6.prefix, 112);
  assert.equal(
    err("ipv6: yes\n"),
    '/etc/agent.yaml:1: ipv6: expected auto, on or off, got "yes"',
  );
  assert.equal(
    err("policy:\n  deny: ['fd00:ec2::1/32']\n"),
    '/etc/agent.yaml:2: policy.deny[0]: "fd00:ec2::1/32" is not a network like 10.0.0.0/16 or 2600:1f18::/56 (host bits zero)',
  );
});
