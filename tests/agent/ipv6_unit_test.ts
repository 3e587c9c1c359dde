/** IPv6 pieces of the agent that need no agent: the decision, sysctls, /proc parsing, netlink bytes. */
import assert from "node:assert/strict";
import fc from "fast-check";
import { UserError } from "../../src/errors.ts";
import { decideIpv6, type Ipv6Facts } from "../../agent/ipv6.ts";
import { enableIpv6Forwarding } from "../../agent/forwarding.ts";
import { globalIpv6Addresses } from "../../agent/sysinfo.ts";
import { encodeTunAddress6 } from "../../agent/tun6.ts";
import { inboundVerdict } from "../../agent/dispatch.ts";
import { rulesOf } from "../../agent/rules.ts";
import { compile } from "../../agent/rules_compile.ts";
import { parseCidr } from "../../agent/cidr.ts";
import { parseCidr6, Pool6 } from "../../agent/cidr6.ts";
import { parseIPv6 } from "../../ffi/struct.ts";
import { udp6Packet } from "./helpers6.ts";

const facts: Ipv6Facts = {
  mode: "auto",
  nat: "nft",
  uplink: "ens5",
  stack: true,
  global: ["2600:1f18:1::10"],
  pool6: "fd7a:5353:5d8b::/48",
};

Deno.test("ipv6 decision: auto turns on only with nft NAT66 and a global address", () => {
  assert.deepEqual(decideIpv6(facts), { on: true, nat66: true });
  assert.deepEqual(decideIpv6({ ...facts, global: [] }), {
    on: false,
    reason: "the instance has no IPv6 address on ens5",
  });
  assert.deepEqual(decideIpv6({ ...facts, nat: "iptables" }), {
    on: false,
    reason: "the agent NATs with iptables, and NAT66 needs nft",
  });
  assert.deepEqual(decideIpv6({ ...facts, nat: "off" }), {
    on: false,
    reason: "the agent does not NAT (nat: off); set ipv6: on to route fd7a:5353:5d8b::/48 yourself",
  });
  assert.deepEqual(decideIpv6({ ...facts, stack: false }), {
    on: false,
    reason: "IPv6 is disabled on the instance",
  });
  assert.deepEqual(decideIpv6({ ...facts, mode: "off", file: "/etc/ssm-proxy/agent.yaml" }), {
    on: false,
    reason: "ipv6: off in /etc/ssm-proxy/agent.yaml",
  });
});

Deno.test("ipv6 decision: on insists, with a warning or one clear error", () => {
  const on = { ...facts, mode: "on" as const };
  assert.deepEqual(decideIpv6(on), { on: true, nat66: true });
  assert.deepEqual(decideIpv6({ ...on, nat: "off" }), { on: true, nat66: false });
  assert.deepEqual(decideIpv6({ ...on, global: [] }), {
    on: true,
    nat66: true,
    warning: "ipv6: on, but ens5 has no global IPv6 address: tunnels' IPv6 has no way out",
  });
  assert.throws(() => decideIpv6({ ...on, nat: "iptables" }), (e) =>
    e instanceof UserError &&
    e.message ===
      "ipv6: on needs nft for NAT66, but the agent NATs with iptables: install nftables, or set ipv6: off");
  assert.throws(() => decideIpv6({ ...on, stack: false }), UserError);
});

async function confDir(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "ssmpa-conf-" });
  for (const [path, value] of Object.entries(files)) {
    await Deno.mkdir(`${dir}/${path.split("/")[0]}`, { recursive: true });
    await Deno.writeTextFile(`${dir}/${path}`, `${value}\n`);
  }
  return dir;
}
const read = async (dir: string, path: string) =>
  (await Deno.readTextFile(`${dir}/${path}`)).trim();

Deno.test("ipv6 forwarding: uplink accept_ra 1 → 2 first, then forwarding; restore both", async () => {
  const dir = await confDir({
    "all/forwarding": "0",
    "ens5/accept_ra": "1",
    "ens6/accept_ra": "1",
  });
  try {
    const h = await enableIpv6Forwarding("ens5", dir);
    assert.deepEqual(
      [await read(dir, "all/forwarding"), await read(dir, "ens5/accept_ra")],
      ["1", "2"],
    );
    assert.equal(await read(dir, "ens6/accept_ra"), "1", "only the uplink");
    await h.restore();
    assert.deepEqual(
      [await read(dir, "all/forwarding"), await read(dir, "ens5/accept_ra")],
      ["0", "1"],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ipv6 forwarding: already on, or accept_ra not 1: nothing changed or restored", async () => {
  const dir = await confDir({ "all/forwarding": "1", "ens5/accept_ra": "1" });
  const dir2 = await confDir({ "all/forwarding": "0", "ens5/accept_ra": "0" });
  try {
    const h = await enableIpv6Forwarding("ens5", dir);
    assert.equal(await read(dir, "ens5/accept_ra"), "1");
    await h.restore();
    assert.equal(await read(dir, "all/forwarding"), "1");
    const h2 = await enableIpv6Forwarding("ens5", dir2);
    assert.deepEqual(
      [await read(dir2, "all/forwarding"), await read(dir2, "ens5/accept_ra")],
      ["1", "0"],
    );
    await h2.restore();
    assert.equal(await read(dir2, "all/forwarding"), "0");
    await enableIpv6Forwarding(undefined, dir2).then((h) => h.restore()); // no uplink known
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(dir2, { recursive: true });
  }
});

Deno.test("sysinfo: global IPv6 addresses of one interface from /proc/net/if_inet6", () => {
  const text = [
    "26001f18000100000000000000000010 02 40 00 80     ens5",
    "fe800000000000000444aafffe000001 02 40 20 80     ens5",
    "fd000000000000000000000000000002 02 40 00 88     ens5", // DAD failed
    "26001f18000200000000000000000011 03 40 00 80     ens6",
    "00000000000000000000000000000001 01 80 10 80       lo",
    "",
  ].join("\n");
  assert.deepEqual(globalIpv6Addresses(text, "ens5"), ["2600:1f18:1::10"]);
  assert.deepEqual(globalIpv6Addresses(text, "ens6"), ["2600:1f18:2::11"]);
  assert.deepEqual(globalIpv6Addresses(text, "lo"), []);
  assert.deepEqual(globalIpv6Addresses("", "ens5"), []);
});

Deno.test("tun6: RTM_NEWADDR is byte for byte iproute2's `ip -6 addr add fd7a::1/64 dev tun0 nodad`", () => {
  const hex = (s: string) => s.split(/\s+/).filter(Boolean).map((h) => parseInt(h, 16));
  const msg = encodeTunAddress6(0x11223344, 2, parseIPv6("fd7a::1")!, 64);
  const addr = "fd 7a 00 00 00 00 00 00 00 00 00 00 00 00 00 01";
  // os-ffi §10.2 "iproute2 capture, IPv6"; seq and pid are the sender's own.
  assert.deepEqual([...msg], [
    ...hex("40 00 00 00 14 00 05 06 44 33 22 11 00 00 00 00"),
    ...hex("0a 40 02 00 02 00 00 00"),
    ...hex(`14 00 02 00 ${addr}`),
    ...hex(`14 00 01 00 ${addr}`),
  ]);
});

/** The address itself, one bit off it, or anything. */
const sources = (own: Uint8Array) =>
  fc.oneof(
    fc.constant(own),
    fc.integer({ min: 0, max: 127 }).map((bit) => {
      const a = own.slice();
      a[bit >> 3] ^= 0x80 >> (bit & 7);
      return a;
    }),
    fc.uint8Array({ minLength: 16, maxLength: 16 }),
  );

Deno.test("anti-spoofing6: only the tunnel's own address6 may be a source", () => {
  const pool = parseCidr("100.64.0.0/16")!;
  const p6 = new Pool6(parseCidr6("fd7a:5353:5d8b::/48")!, pool);
  const decide = compile(rulesOf({ allow: [], deny: [] }), undefined, { pool, pool6: p6.cidr });
  const tunnel = { address: pool.base + 2, address6: p6.addressOf(pool.base + 2), decide };
  const mine = "fd7a:5353:5d8b::2";
  assert.equal(inboundVerdict(udp6Packet(mine, "2600::1", 1, 2), tunnel), "ok");
  assert.equal(
    inboundVerdict(udp6Packet(mine, "2600::1", 1, 2), { ...tunnel, address6: undefined }),
    "unsupported",
  );
  fc.assert(
    fc.property(sources(tunnel.address6), fc.boolean(), (src, deny) => {
      const p = udp6Packet(mine, deny ? "fd00:ec2::254" : "2600::1", 1, 2);
      p.set(src, 8);
      const v = inboundVerdict(p, tunnel);
      const own = src.every((b, i) => b === tunnel.address6[i]);
      assert.equal(v, !own ? "spoofed" : deny ? "denied" : "ok");
    }),
  );
});
