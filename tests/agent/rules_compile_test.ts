import assert from "node:assert/strict";
import fc from "fast-check";
import { admits, compile, type Decide, rulesFor } from "../../agent/rules_compile.ts";
import { type Dest, parseDest, type PolicyRule, rulesOf } from "../../agent/rules.ts";
import { parsePrincipalArn, type Principal } from "../../agent/principal.ts";
import { Policy } from "./policy_oracle.ts";
import { formatCidr, formatIpv4, maskOf, parseCidr } from "../../agent/cidr.ts";
import { DEFAULT_POOL6, formatCidr6, formatIpv6, parseCidr6 } from "../../agent/cidr6.ts";
import { masked6 } from "../../src/net/cidr6.ts";
import { ICMP, ICMP6, TCP, UDP, v4Packet, v6Packet } from "./policy_packets.ts";

const scope = { pool: parseCidr("100.64.0.0/16")!, pool6: parseCidr6(DEFAULT_POOL6)! };
const d = (text: string): Dest => {
  const dest = parseDest(text);
  if (typeof dest === "string") throw new Error(`${text}: ${dest}`);
  return dest;
};
const rule = (allow: string[], deny: string[] = [], principals?: PolicyRule["principals"]) => ({
  allow: allow.map(d),
  deny: deny.map(d),
  ...(principals ? { principals } : {}),
});
const judge = (rules: PolicyRule[], principal?: Principal, requireIdentity = false): Decide =>
  compile({ rules, requireIdentity }, principal, scope);

const SSO_ADMIN = parsePrincipalArn(
  "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_AdministratorAccess_0123456789abcdef/alice",
)!;
const SSO_DEV = parsePrincipalArn(
  "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Developer_fedcba9876543210/bob",
)!;
const CI = parsePrincipalArn("arn:aws:iam::210987654321:user/ci")!;

Deno.test("compile: ports, ranges, protocols, ICMP, both families", () => {
  const f = judge([
    rule([
      "10.0.5.0/24:443/tcp",
      "10.0.0.0/16:5432",
      "10.0.7.0/24:8000-8999/udp",
      "10.0.8.0/24/icmp",
      "fd00::/8/udp",
      "[fd00:1::5]:22/tcp",
      "2600:1f18::/32/icmp",
    ]),
  ]);
  const cases: [Uint8Array, string, string][] = [
    [v4Packet("10.0.5.9", TCP, 443), "allow", "tcp 443"],
    [v4Packet("10.0.5.9", TCP, 444), "deny", "other port"],
    [v4Packet("10.0.5.9", UDP, 443), "deny", "udp where tcp is named"],
    [v4Packet("10.0.6.9", TCP, 443), "deny", "outside the block"],
    [v4Packet("10.0.200.1", TCP, 5432), "allow", "ports alone mean tcp"],
    [v4Packet("10.0.200.1", UDP, 5432), "allow", "and udp"],
    [v4Packet("10.0.200.1", ICMP), "deny", "but not icmp"],
    [v4Packet("10.0.7.1", UDP, 8000), "allow", "range low end"],
    [v4Packet("10.0.7.1", UDP, 8999), "allow", "range high end"],
    [v4Packet("10.0.7.1", UDP, 9000), "deny", "past the range"],
    [v4Packet("10.0.8.1", ICMP), "allow", "icmp"],
    [v4Packet("10.0.8.1", TCP, 80), "deny", "tcp where icmp is named"],
    [v4Packet("10.0.8.1", ICMP6), "deny", "ICMPv6's number is not ICMP in IPv4"],
    [v6Packet("fd12::1", UDP, 53), "allow", "v6 udp"],
    [v6Packet("fd12::1", TCP, 53), "deny", "v6 tcp where udp is named"],
    [v6Packet("fd00:1::5", TCP, 22), "allow", "v6 host and port"],
    [v6Packet("fd00:1::6", TCP, 22), "deny", "v6 other host"],
    [v6Packet("2600:1f18:5::1", ICMP6), "allow", "ICMPv6"],
    [v6Packet("2600:1f18:5::1", ICMP), "deny", "protocol 1 is not ICMPv6"],
    [v6Packet("2001:db8::1", ICMP6), "deny", "outside"],
  ];
  for (const [p, want, why] of cases) assert.equal(f(p), want, why);
});

Deno.test("compile: deny beats allow across all matching rules; no allow is deny", () => {
  const f = judge([
    rule(["10.0.0.0/8"]),
    rule([], ["10.0.9.0/24", "any:22/tcp"]),
    rule(["10.0.9.5:80/tcp"]), // a later, narrower allow does not undo the deny
  ]);
  assert.equal(f(v4Packet("10.1.0.1", TCP, 80)), "allow");
  assert.equal(f(v4Packet("10.0.9.5", TCP, 80)), "deny");
  assert.equal(f(v4Packet("10.1.0.1", TCP, 22)), "deny");
  assert.equal(f(v4Packet("10.1.0.1", UDP, 22)), "allow", "any:22/tcp is tcp only");
  assert.equal(f(v4Packet("172.16.0.1", TCP, 80)), "deny", "no allow names it");
  assert.equal(judge([])(v4Packet("10.1.0.1", TCP, 80)), "deny", "no rules: nothing");
});

Deno.test("compile: rules by principal; SSO permission sets; an unverified tunnel", () => {
  const rules = [
    rule(["any"], [], { permissionSets: ["AdministratorAccess"] }),
    rule(["10.0.0.0/16:443/tcp"], ["10.0.0.99"], { roles: ["AWSReservedSSO_Developer_*"] }),
    rule(["10.9.0.0/16"], [], { accounts: ["2109*"], users: ["ci"] }),
    rule(["10.0.0.2/udp"]), // everyone: the resolver
  ];
  const admin = judge(rules, SSO_ADMIN), dev = judge(rules, SSO_DEV), ci = judge(rules, CI);
  const anon = judge(rules, undefined);
  const dns = v4Packet("10.0.0.2", UDP, 53);
  const web = v4Packet("10.0.1.1", TCP, 443);
  const build = v4Packet("10.9.1.1", TCP, 8080);
  const internet = v6Packet("2600:1f18::1", TCP, 443);
  const table = [admin, dev, ci, anon].map((f) => [dns, web, build, internet].map(f));
  assert.deepEqual(table, [
    ["allow", "allow", "allow", "allow"],
    ["allow", "allow", "deny", "deny"],
    ["allow", "deny", "allow", "deny"],
    ["allow", "deny", "deny", "deny"],
  ]);
  assert.equal(dev(v4Packet("10.0.0.99", TCP, 443)), "deny", "the developer rule's deny");
  assert.equal(admin(v4Packet("10.0.0.99", TCP, 443)), "allow", "applies to developers only");
  assert.deepEqual(rulesFor({ rules, requireIdentity: false }, undefined), [rules[3]]);
  // requireIdentity: an unverified tunnel is refused, even where a rule without principals allows.
  assert.equal(admits({ rules, requireIdentity: true }, undefined), false);
  assert.equal(admits({ rules, requireIdentity: true }, CI), true);
  assert.equal(judge(rules, undefined, true)(dns), "deny");
  assert.equal(judge(rules, CI, true)(dns), "allow");
});

Deno.test("compile: the built-in deny list always applies", () => {
  const f = judge([rule(["any", "169.254.169.254", "fd00:ec2::254/128", "100.64.0.0/16"])]);
  for (
    const p of [
      v4Packet("169.254.169.254", TCP, 80),
      v4Packet("127.0.0.1", TCP, 80),
      v4Packet("224.0.0.251", UDP, 5353),
      v4Packet("100.64.0.7", TCP, 22), // another tunnel
      v6Packet("fd00:ec2::254", TCP, 80),
      v6Packet("fe80::1", UDP, 546),
      v6Packet("::ffff:10.0.0.1", TCP, 80),
      v6Packet("fd7a:5353:5d8b::7", TCP, 22),
      v6Packet("64:ff9b::a9fe:a9fe", TCP, 80), // NAT64 of the metadata address
    ]
  ) assert.equal(f(p), "deny");
  assert.equal(f(v6Packet("64:ff9b::a00:1", TCP, 80)), "allow", "NAT64 of 10.0.0.1");
  // A NAT64 destination must also pass the IPv4 rules for its embedded address, ports too.
  const narrow = judge([rule(["64:ff9b::/96", "10.0.0.0/8:443/tcp"])]);
  assert.equal(narrow(v6Packet("64:ff9b::a00:1", TCP, 443)), "allow");
  assert.equal(narrow(v6Packet("64:ff9b::a00:1", TCP, 80)), "deny");
  assert.equal(narrow(v6Packet("64:ff9b::808:808", TCP, 443)), "deny");
});

Deno.test("compile: fragments, extension headers, truncated and odd packets", () => {
  const f = judge([rule(["10.0.0.0/16", "10.1.0.0/16:443/tcp", "10.2.0.0/16/udp", "fd00::/16:53"], [
    "10.0.9.0/24:22/tcp",
  ])]);
  // A non-first fragment shows its protocol but no ports.
  assert.equal(f(v4Packet("10.0.1.1", UDP, 0, { fragOffset: 185 })), "allow", "port-free allow");
  assert.equal(f(v4Packet("10.1.1.1", TCP, 443, { fragOffset: 185 })), "deny", "ports unknown");
  assert.equal(f(v4Packet("10.2.1.1", UDP, 0, { fragOffset: 185 })), "allow", "protocol is known");
  assert.equal(f(v4Packet("10.0.9.1", TCP, 80, { fragOffset: 1 })), "deny", "deny when in doubt");
  assert.equal(f(v4Packet("10.0.9.1", UDP, 80, { fragOffset: 1 })), "allow", "not tcp: no doubt");
  assert.equal(f(v4Packet("10.1.1.1", TCP, 443, { fragOffset: 0 })), "allow", "first fragment");
  // Options, and headers too short to show the port.
  assert.equal(f(v4Packet("10.1.1.1", TCP, 443, { ihl: 60 })), "allow", "options skipped");
  assert.equal(f(v4Packet("10.1.1.1", TCP, 443, { length: 22 })), "deny", "port cut off");
  assert.equal(f(v4Packet("10.0.9.1", TCP, 80, { length: 20 })), "deny", "deny when in doubt");
  assert.equal(f(v4Packet("10.0.1.1", TCP, 80, { length: 20 })), "allow", "port-free allow");
  assert.equal(f(v4Packet("10.0.1.1", TCP, 80, { length: 19 })), "deny", "not a header");
  assert.equal(f(v4Packet("10.0.1.1", TCP, 80, { ihl: 16 })), "deny", "IHL below 5");
  // IPv6: walked to the upper layer.
  const v6 = (ext: Parameters<typeof v6Packet>[3], length?: number) =>
    f(v6Packet("fd00::5", UDP, 53, ext, length));
  assert.equal(v6([]), "allow");
  assert.equal(v6([{ type: "hop" }, { type: "dst", units: 2 }, { type: "ah" }]), "allow");
  assert.equal(v6([{ type: "frag", offset: 0 }]), "allow", "first fragment shows the port");
  assert.equal(v6([{ type: "frag", offset: 100 }]), "deny", "later fragments do not");
  assert.equal(v6([{ type: "routing", segmentsLeft: 0 }]), "allow", "a spent routing header");
  assert.equal(v6([{ type: "routing", segmentsLeft: 1 }]), "deny", "would go past fd00::5");
  assert.equal(v6([{ type: "hop" }], 50), "deny", "port cut off");
  assert.equal(v6(Array(9).fill({ type: "dst" })), "deny", "too many headers to follow");
  assert.equal(f(v6Packet("fd00::5", UDP, 53).slice(0, 39)), "deny", "not a header");
  // Where the protocol itself cannot be found, a deny naming one still counts.
  const noUdp = judge([rule(["fd00::/16"], ["fd00::/16/udp"])]);
  assert.equal(noUdp(v6Packet("fd00::5", TCP, 80)), "allow");
  assert.equal(noUdp(v6Packet("fd00::5", TCP, 80, Array(9).fill({ type: "dst" }))), "deny");
  assert.equal(noUdp(v6Packet("fd00::5", TCP, 80, [{ type: "hop" }], 44)), "deny", "cut short");
  assert.equal(f(new Uint8Array(0)), "deny");
  assert.equal(f(new Uint8Array([0x50, ...new Uint8Array(40)])), "deny", "version 5");
});

/** The old form through the engine judges every destination as agent/policy.ts does. */
Deno.test("compile: the old allow/deny form agrees with Policy", () => {
  const v4Cidr = fc.tuple(fc.nat({ max: 0xffffffff }), fc.integer({ min: 0, max: 32 })).map((
    [ip, prefix],
  ) => formatCidr({ base: (ip & maskOf(prefix)) >>> 0, prefix }));
  const v6Cidr = fc.tuple(
    fc.constantFrom("fd00::", "2600:1f18::", "64:ff9b::", "::", "fe80::"),
    fc.uint8Array({ minLength: 16, maxLength: 16 }),
    fc.integer({ min: 0, max: 128 }),
  ).map(([near, noise, prefix]) => {
    const b = parseCidr6(`${near}/128`)!.bytes.map((x, i) => (i < 4 ? x : noise[i]));
    return formatCidr6({ bytes: masked6(b, prefix), prefix });
  });
  const list = fc.array(fc.oneof(v4Cidr, v6Cidr), { maxLength: 4 });
  /** A destination inside one of the lists' blocks (or anywhere). */
  const dst = (cidrs: string[]) =>
    fc.tuple(
      fc.constantFrom(...cidrs, "0.0.0.0/0", "::/0", "64:ff9b::/96", "169.254.0.0/16"),
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
    ).map(([c, host]) => {
      if (!c.includes(":")) {
        const v4 = parseCidr(c)!;
        const h = ((host[0] << 24) | (host[1] << 16) | (host[2] << 8) | host[3]) >>> 0;
        return formatIpv4((v4.base | (h & ~maskOf(v4.prefix))) >>> 0);
      }
      const v6 = parseCidr6(c)!;
      const keep = masked6(new Uint8Array(16).fill(0xff), v6.prefix);
      return formatIpv6(v6.bytes.map((b, i) => b | (host[i] & ~keep[i])));
    });
  fc.assert(
    fc.property(
      list,
      list,
      fc.constantFrom(TCP, UDP, ICMP),
      fc.nat({ max: 65535 }),
      (allow, deny, proto, port) => {
        const old = new Policy(allow, deny, scope.pool, scope.pool6);
        const f = compile(rulesOf({ allow, deny }), undefined, scope);
        fc.assert(
          fc.property(dst([...allow, ...deny]), (to) => {
            const want = to.includes(":")
              ? old.allows6(v6Packet(to, proto), 24)
              : old.allows(parseCidr(to)!.base);
            const p = to.includes(":") ? v6Packet(to, proto, port) : v4Packet(to, proto, port);
            assert.equal(f(p), want ? "allow" : "deny", `${to} allow ${allow} deny ${deny}`);
          }),
          { numRuns: 20 },
        );
      },
    ),
    { numRuns: 200 },
  );
});
