import assert from "node:assert/strict";
import fc from "fast-check";
import { type Dest, formatDest, parseDest, rulesOf } from "../../agent/rules.ts";
import { formatCidr } from "../../agent/cidr.ts";
import { formatCidr6 } from "../../agent/cidr6.ts";
import { arbDest } from "./policy_arb.ts";

/** A destination as plain text parts, for readable comparisons. */
function show(d: Dest | string) {
  if (typeof d === "string") return d;
  return {
    v4: d.v4 && formatCidr(d.v4),
    v6: d.v6 && formatCidr6(d.v6),
    protocol: d.protocol,
    ports: d.ports && `${d.ports.lo}-${d.ports.hi}`,
  };
}

Deno.test("dest: every form", () => {
  const none = { v4: undefined, v6: undefined, protocol: undefined, ports: undefined };
  const cases: [string, Record<string, string>][] = [
    ["10.0.0.0/8", { v4: "10.0.0.0/8" }],
    ["10.0.0.5", { v4: "10.0.0.5/32" }],
    ["10.0.5.0/24:443/tcp", { v4: "10.0.5.0/24", ports: "443-443", protocol: "tcp" }],
    ["10.0.0.0/16:5432", { v4: "10.0.0.0/16", ports: "5432-5432" }],
    ["10.0.0.5:8000-8999/udp", { v4: "10.0.0.5/32", ports: "8000-8999", protocol: "udp" }],
    ["10.0.0.0/8/icmp", { v4: "10.0.0.0/8", protocol: "icmp" }],
    ["10.0.0.5/TCP", { v4: "10.0.0.5/32", protocol: "tcp" }],
    ["fd00::/8/udp", { v6: "fd00::/8", protocol: "udp" }],
    ["fd00::/8:53", { v6: "fd00::/8", ports: "53-53" }],
    ["2600:1f18::/56:443/tcp", { v6: "2600:1f18::/56", ports: "443-443", protocol: "tcp" }],
    ["[fd00::5]", { v6: "fd00::5/128" }],
    ["[fd00::5]:443/tcp", { v6: "fd00::5/128", ports: "443-443", protocol: "tcp" }],
    ["[fd00::/16]:0-65535", { v6: "fd00::/16", ports: "0-65535" }],
    ["::/0/icmp", { v6: "::/0", protocol: "icmp" }],
    ["any", { v4: "0.0.0.0/0", v6: "::/0" }],
    ["any:22/tcp", { v4: "0.0.0.0/0", v6: "::/0", ports: "22-22", protocol: "tcp" }],
    ["any/icmp", { v4: "0.0.0.0/0", v6: "::/0", protocol: "icmp" }],
  ];
  for (const [text, want] of cases) {
    assert.deepEqual(show(parseDest(text)), { ...none, ...want }, text);
  }
});

Deno.test("dest: each problem has its own message", () => {
  const syntax =
    "is not a destination like 10.0.5.0/24:443/tcp (network[:port[-port]][/tcp|udp|icmp])";
  const cases: [string, string][] = [
    ["10.0.0.1/8", "has host bits set beyond its prefix"],
    ["fd00::1/8", "has host bits set beyond its prefix"],
    [
      "fd00::5",
      "needs a /prefix or [brackets] (fd00::5/128, [fd00::5]:443), so a port cannot be read as part of it",
    ],
    [
      "2600:1f18::5:443",
      "needs a /prefix or [brackets] (2600:1f18::5:443/128, [2600:1f18::5:443]:443), so a port cannot be read as part of it",
    ],
    ["10.0.0.0/8:70000", "has port 70000, beyond 65535"],
    ["10.0.0.0/8:9-1", "has the empty port range 9-1"],
    ["10.0.0.0/8:1/icmp", "names ports, which icmp does not have"],
    ["[10.0.0.1]", `${syntax}: brackets are for IPv6 addresses`],
    ["10.0.0.0/33", syntax],
    ["10.0.0.0/8/sctp", syntax],
    ["10.0.0.0/8:", syntax],
    ["10.0.0.0/8:http", syntax],
    ["10.0.0.0/8:1:2", syntax],
    ["[fd00::]/8", syntax],
    ["anything", syntax],
    ["", syntax],
    ["*", syntax],
    ["10.0.0", syntax],
  ];
  for (const [text, want] of cases) assert.equal(parseDest(text), want, text);
});

Deno.test("dest: formatDest reads back as the same destination", () => {
  fc.assert(
    fc.property(arbDest, (d) => {
      const text = formatDest(d);
      assert.deepEqual(show(parseDest(text)), show(d), text);
    }),
  );
  assert.equal(formatDest(parseDest("fd00::/8:53") as Dest), "[fd00::/8]:53");
  assert.equal(formatDest(parseDest("10.0.0.5:1-2") as Dest), "10.0.0.5/32:1-2");
});

Deno.test("rulesOf: the old form is one rule for every tunnel, empty allow = everywhere", () => {
  const open = rulesOf({ allow: [], deny: ["10.9.0.0/16", "fd00::1"] });
  assert.equal(open.requireIdentity, false);
  assert.equal(open.rules.length, 1);
  assert.equal(open.rules[0].principals, undefined);
  assert.deepEqual(open.rules[0].allow.map(formatDest), ["any"]);
  assert.deepEqual(open.rules[0].deny.map(formatDest), ["10.9.0.0/16", "fd00::1/128"]);
  const narrow = rulesOf({ allow: ["10.0.0.0/8"], deny: [], requireIdentity: true });
  assert.deepEqual(narrow.rules[0].allow.map(formatDest), ["10.0.0.0/8"]);
  assert.equal(narrow.requireIdentity, true);
  const rules = [{ allow: [], deny: [] }];
  assert.equal(rulesOf({ allow: [], deny: [], rules }).rules, rules, "the new form as is");
});
