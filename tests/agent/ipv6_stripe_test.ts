/** IPv6 through the agent over real loopback TCP, with an in-memory tun (harness.ts). */
import assert from "node:assert/strict";
import { FEATURE_IPV6, FrameType, type Hello, type Welcome } from "../../src/tunnel/wire.ts";
import { VERSION } from "../../src/version.ts";
import { UserError } from "../../src/errors.ts";
import { withAgent } from "./harness.ts";
import { hello, randomTunnelId, udpPacket, waitFor, WireClient } from "./helpers.ts";
import { icmp6Echo, icmp6TooBig, udp6Packet } from "./helpers6.ts";

const V4_DENY = ["169.254.0.0/16", "127.0.0.0/8", "0.0.0.0/8", "224.0.0.0/4", "100.64.0.0/16"];

async function join(port: number, h: Hello): Promise<{ c: WireClient; welcome: Welcome }> {
  const c = await WireClient.connect(port);
  await c.sendHello(h);
  const f = await c.next();
  assert.ok(f?.type === FrameType.Welcome, `expected WELCOME, got ${JSON.stringify(f)}`);
  return { c, welcome: f.welcome };
}

const asks6 = (over: Partial<Hello> = {}) => hello({ features: [FEATURE_IPV6], ...over });

Deno.test("ipv6: a hello asking for ipv6 gets address6 and peer6; an old hello sees nothing new", async () => {
  await withAgent({ config: { ipv6: "on" } }, async (agent, tun) => {
    assert.deepEqual(tun.addresses6, ["fd7a:5353:5d8b::1/48"], "the tun got <pool6>::1/48");
    assert.equal(agent.address6, "fd7a:5353:5d8b::1");
    const a = await join(agent.addr.port, asks6());
    assert.deepEqual(a.welcome, {
      version: 1,
      address: "100.64.0.2",
      peer: "100.64.0.1",
      mtu: 1400,
      resolver: "10.0.0.2",
      policy: {
        allow: ["0.0.0.0/0", "::/0"],
        deny: [
          ...V4_DENY,
          "fe80::/10",
          "ff00::/8",
          "::1/128",
          "::/128",
          "::ffff:0.0.0.0/96",
          "fd00:ec2::/32",
          "fd7a:5353:5d8b::/48",
        ],
      },
      agent: `ssm-proxy-agent ${VERSION}`,
      address6: "fd7a:5353:5d8b::2",
      peer6: "fd7a:5353:5d8b::1",
    });
    const old = await join(agent.addr.port, hello({ features: ["load"] }));
    assert.deepEqual(old.welcome, {
      version: 1,
      address: "100.64.0.3",
      peer: "100.64.0.1",
      mtu: 1400,
      resolver: "10.0.0.2",
      policy: { allow: ["0.0.0.0/0"], deny: V4_DENY },
      agent: `ssm-proxy-agent ${VERSION}`,
    });
    await a.c.close();
    await old.c.close();
  });
});

Deno.test("ipv6: off says why to clients that ask, and nothing to those that do not", async () => {
  await withAgent(
    { config: { ipv6: "off", file: "/etc/ssm-proxy/agent.yaml" } },
    async (agent, tun) => {
      assert.deepEqual(tun.addresses6, []);
      assert.equal(agent.address6, undefined);
      const a = await join(agent.addr.port, asks6());
      assert.equal(a.welcome.ipv6Off, "ipv6: off in /etc/ssm-proxy/agent.yaml");
      assert.equal(a.welcome.address6, undefined);
      assert.deepEqual(a.welcome.policy.allow, ["0.0.0.0/0"], "no IPv6 blocks");
      const b = await join(agent.addr.port, hello());
      assert.ok(!("ipv6Off" in b.welcome));
      await a.c.close();
      await b.c.close();
    },
  );
  // auto without NAT stays off (a ULA pool6 is unroutable unless NATed).
  await withAgent({}, async (agent, tun) => {
    assert.deepEqual(tun.addresses6, []);
    const a = await join(agent.addr.port, asks6());
    assert.equal(
      a.welcome.ipv6Off,
      "the agent does not NAT (nat: off); set ipv6: on to route fd7a:5353:5d8b::/48 yourself",
    );
    await a.c.close();
  });
});

Deno.test("ipv6: anti-spoofing, the destination policy, ICMPv6 echo and too-big pass", async () => {
  await withAgent({ config: { ipv6: "on" } }, async (agent, tun) => {
    const a = await join(agent.addr.port, asks6());
    const b = await join(agent.addr.port, hello()); // IPv4 only
    const me = a.welcome.address6!;
    const vpc = "2600:1f18:1::5";
    const sent = udp6Packet(me, vpc, 40000, 53, "fine");
    await a.c.sendPackets(
      udp6Packet("fd7a:5353:5d8b::3", vpc, 1, 2), // b's would-be address
      udp6Packet("2600:1f18:1::9", vpc, 1, 2), // a VPC address
      udp6Packet("fe80::1", "ff02::2", 1, 2), // link-local chatter is no exception
      udp6Packet(me, "fd00:ec2::254", 1, 80), // instance metadata
      udp6Packet(me, "fd00:ec2::253", 1, 53), // the instance's DNS
      udp6Packet(me, "fe80::1", 1, 2),
      udp6Packet(me, "ff02::1", 1, 2),
      udp6Packet(me, "fd7a:5353:5d8b::1", 1, 2), // pool6: the agent
      udp6Packet(me, "fd7a:5353:5d8b::3", 1, 2), // pool6: another tunnel
      udp6Packet(me, "::ffff:169.254.169.254", 1, 80),
      new Uint8Array([0x60, 0, 0, 0, 0, 0, 17, 64]), // a truncated IPv6 header
      sent,
      icmp6Echo(me, vpc, 7, 1),
      icmp6TooBig(me, vpc, 1280, udp6Packet(vpc, me, 53, 40000, "big")),
    );
    await waitFor(() => agent.stats.packetsIn === 3, 3000, "the three good packets");
    assert.deepEqual(tun.written[0], sent);
    assert.deepEqual(tun.written.map((p) => p[40]), [sent[40], 128, 2]);
    assert.deepEqual(
      [agent.stats.spoofed, agent.stats.denied, agent.stats.notIpv4],
      [3, 7, 1],
    );
    // IPv6 from a tunnel that did not ask for it, even from "its" address.
    await b.c.sendPackets(udp6Packet("fd7a:5353:5d8b::3", vpc, 1, 2));
    await waitFor(() => agent.stats.notIpv4 === 2, 3000, "IPv6 from an IPv4-only tunnel");
    // IPv4 works as before for both.
    await a.c.sendPackets(udpPacket(a.welcome.address, "10.1.2.3", 1, 2));
    await waitFor(() => agent.stats.packetsIn === 4, 3000, "IPv4 from the IPv6 tunnel");
    await a.c.close();
    await b.c.close();
  });
});

Deno.test("ipv6: the tun's IPv6 packets go back to the tunnel owning the address", async () => {
  await withAgent({ config: { ipv6: "on" } }, async (agent, tun) => {
    const a = await join(agent.addr.port, asks6());
    const c = await join(agent.addr.port, asks6());
    const b = await join(agent.addr.port, hello());
    assert.deepEqual(
      [a.welcome.address6, c.welcome.address6, b.welcome.address],
      ["fd7a:5353:5d8b::2", "fd7a:5353:5d8b::3", "100.64.0.4"],
    );
    const vpc = "2600:1f18:1::5";
    const before = agent.stats.noTunnel;
    tun.inject(
      udp6Packet(vpc, "fd7a:5353:5d8b::2", 53, 40000, "for-a"),
      icmp6Echo(vpc, "fd7a:5353:5d8b::2", 7, 1, "pong", 129),
      udp6Packet(vpc, "fd7a:5353:5d8b::3", 53, 40000, "for-c"),
      icmp6TooBig("2600:1f18:1::1", "fd7a:5353:5d8b::2", 1280, new Uint8Array(48)),
      udp6Packet(vpc, "fd7a:5353:5d8b::4", 53, 40000, "b has no IPv6"),
      udp6Packet(vpc, "fd7a:5353:5d8b::99", 53, 40000, "nobody"),
      udp6Packet(vpc, "fd7a:5353:5d8c::2", 53, 40000, "outside pool6"),
      udp6Packet("fe80::1", "ff02::16", 0, 0, "the kernel's MLD"),
      udpPacket("10.1.1.1", b.welcome.address, 53, 1000, "b over IPv4"),
    );
    const got = await a.c.packets(3);
    assert.deepEqual(
      got.map((p) => p[40]),
      [0x00, 129, 2],
      "udp (port 53 → byte 0x00), echo, too-big",
    );
    assert.equal((await c.c.packets(1)).length, 1);
    assert.equal((await b.c.packets(1))[0][0] >> 4, 4, "b gets its IPv4 packet only");
    await waitFor(() => agent.stats.noTunnel - before === 3, 1000, "three for nobody");
    assert.equal(agent.stats.packetsOut, 5);
    for (const x of [a, b, c]) await x.c.close();
  });
});

Deno.test("ipv6: a tunnel keeps both addresses across a restart of the agent", async () => {
  const stateDir = await Deno.makeTempDir({ prefix: "ssmpa-v6-" });
  try {
    const id = randomTunnelId();
    const config = { ipv6: "on" as const, stateDir, leaseGraceSeconds: 60 };
    let first: Welcome | undefined;
    await withAgent({ config }, async (agent) => {
      const other = await join(agent.addr.port, asks6());
      const x = await join(agent.addr.port, asks6({ tunnelId: id }));
      first = x.welcome;
      await other.c.close();
      await x.c.close();
    });
    assert.equal(first?.address6, "fd7a:5353:5d8b::3");
    await withAgent({ config }, async (agent) => {
      const x = await join(agent.addr.port, asks6({ tunnelId: id }));
      assert.deepEqual([x.welcome.address, x.welcome.address6], [
        "100.64.0.3",
        "fd7a:5353:5d8b::3",
      ]);
      await x.c.close();
    });
  } finally {
    await Deno.remove(stateDir, { recursive: true });
  }
});

Deno.test("ipv6: on, and the tun address cannot be set: the agent does not start", async () => {
  const e = await withAgent({
    config: { ipv6: "on" },
    addTunAddress6: () => Promise.reject(new Error("EACCES")),
  }, () => Promise.resolve()).catch((e) => e);
  assert.ok(e instanceof UserError, String(e));
  assert.equal(e.message, "cannot give faketun0 its IPv6 address fd7a:5353:5d8b::1: EACCES");
});

Deno.test("ipv6: an IPv4-only allow list is logged as denying all IPv6", async () => {
  const log: string[] = [];
  await withAgent(
    {
      config: { ipv6: "on", policy: { allow: ["10.0.0.0/8"], deny: [] } },
      log: (l) => log.push(l),
    },
    () => Promise.resolve(),
  );
  assert.ok(log.some((l) => /policy.allow names no IPv6 network/.test(l)), log.join("\n"));
  assert.ok(log.some((l) => /; IPv6 fd7a:5353:5d8b::1\/48$/.test(l)), log.join("\n"));
});
