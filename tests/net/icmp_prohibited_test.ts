/**
 * src/net/icmp_prohibited.ts: recognising "administratively prohibited" errors and reading the
 * denied destination from their quote, on bytes laid out by hand, on the agent's own answers
 * (agent/icmp_reject.ts), and on errors the Linux kernel itself sends for a `prohibit` route: this
 * file is also the script that runs inside a network namespace (import.meta.main) to get them.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { isAdminProhibited, prohibitedDestination } from "../../src/net/icmp_prohibited.ts";
import { adminProhibited } from "../../agent/icmp_reject.ts";
import { linuxPlatform } from "../../src/net/linux.ts";
import { formatIP } from "../../ffi/struct.ts";
import { ip } from "../support/netns.ts";
import { kernelScenarioTest, openScenarioTun } from "../support/icmp_packets.ts";
import { arbV4, arbV6, buildV4, buildV6, bytes6 } from "../support/icmp_packets.ts";
import { udpPacket } from "../agent/helpers.ts";
import { udp6Packet } from "../agent/helpers6.ts";

const hex = (s: string) =>
  Uint8Array.from(s.replace(/\s+/g, "").match(/../g)!, (h) => parseInt(h, 16));

/** An ICMP error of `type`/`code` from 100.64.0.1 quoting `inner` (checksums not needed here). */
function icmp4(type: number, code: number, inner: Uint8Array): Uint8Array {
  const p = new Uint8Array(28 + inner.length);
  p.set(hex("45c0 0000 0000 4000 4001 0000 6440 0001 6440 0002"));
  p[2] = p.length >> 8;
  p[3] = p.length & 0xff;
  p[20] = type;
  p[21] = code;
  p.set(inner, 28);
  return p;
}

function icmp6(type: number, code: number, inner: Uint8Array, nh = 58): Uint8Array {
  const p = new Uint8Array(48 + inner.length);
  p[0] = 0x60;
  p[4] = (8 + inner.length) >> 8;
  p[5] = (8 + inner.length) & 0xff;
  p[6] = nh;
  p[7] = 64;
  p.set(bytes6("fd00:64::1"), 8);
  p.set(bytes6("fd00:64::2"), 24);
  p[40] = type;
  p[41] = code;
  p.set(inner, 48);
  return p;
}

// 100.64.0.2:40000 → 10.0.9.5:5432, TCP header start (ports, sequence number).
const TCP4 = hex("4500 0028 0001 4000 4006 0000 6440 0002 0a00 0905  9c40 1538 0000 0001");
const UDP4 = hex("4500 001e 1234 4000 4011 b154 6440 0002 0a00 0905  9c40 1538 000a 6eb1 6869");
const UDP6 = hex(`6000 0000 000a 1140 fd00 0064 0000 0000 0000 0000 0000 0002
  fd00 0009 0000 0000 0000 0000 0000 0005  9c40 1538 000a eb82 6869`);

Deno.test("icmp prohibited: recognises type 3 code 13 and ICMPv6 1/1, nothing else", () => {
  assert.equal(isAdminProhibited(icmp4(3, 13, TCP4)), true);
  assert.equal(isAdminProhibited(icmp6(1, 1, UDP6)), true);
  for (const [t, c] of [[3, 1], [3, 3], [3, 10], [11, 0], [8, 0], [0, 0], [13, 3]]) {
    assert.equal(isAdminProhibited(icmp4(t, c, TCP4)), false, `ICMP ${t}/${c}`);
  }
  for (const [t, c] of [[1, 0], [1, 3], [1, 4], [3, 0], [128, 1], [2, 1]]) {
    assert.equal(isAdminProhibited(icmp6(t, c, UDP6)), false, `ICMPv6 ${t}/${c}`);
  }
  assert.equal(isAdminProhibited(UDP4), false);
  assert.equal(isAdminProhibited(UDP6), false);
  // Behind a hop-by-hop header: not the agent's answer, which never has one.
  assert.equal(isAdminProhibited(icmp6(1, 1, UDP6, 0)), false);
  // Another protocol whose bytes happen to read 3, 13 where ICMP's type would be.
  const udp = icmp4(3, 13, TCP4);
  udp[9] = 17;
  assert.equal(isAdminProhibited(udp), false);
  const frag = icmp4(3, 13, TCP4);
  frag[7] = 1; // a non-first fragment: byte 20 is not the ICMP header
  assert.equal(isAdminProhibited(frag), false);
  for (let n = 0; n < 48; n++) {
    assert.equal(isAdminProhibited(icmp4(3, 13, TCP4).subarray(0, Math.min(n, 27))), false);
    assert.equal(isAdminProhibited(icmp6(1, 1, UDP6).subarray(0, n)), false);
  }
});

Deno.test("icmp prohibited: the denied destination from the quote", () => {
  assert.deepEqual(prohibitedDestination(icmp4(3, 13, TCP4)), {
    dst: "10.0.9.5",
    port: 5432,
    protocol: "tcp",
  });
  assert.deepEqual(prohibitedDestination(icmp4(3, 13, UDP4)), {
    dst: "10.0.9.5",
    port: 5432,
    protocol: "udp",
  });
  assert.deepEqual(prohibitedDestination(icmp6(1, 1, UDP6)), {
    dst: "fd00:9::5",
    port: 5432,
    protocol: "udp",
  });
  const echo = UDP4.slice();
  echo[9] = 1;
  assert.deepEqual(prohibitedDestination(icmp4(3, 13, echo)), {
    dst: "10.0.9.5",
    protocol: "icmp",
  });
  const gre = UDP4.slice();
  gre[9] = 47;
  assert.deepEqual(prohibitedDestination(icmp4(3, 13, gre)), { dst: "10.0.9.5", protocol: 47 });
  const echo6 = UDP6.slice();
  echo6[6] = 58;
  assert.deepEqual(prohibitedDestination(icmp6(1, 1, echo6)), {
    dst: "fd00:9::5",
    protocol: "icmp",
  });
  // A quote cut right after the inner header, and an inner non-first fragment: no port.
  assert.deepEqual(prohibitedDestination(icmp4(3, 13, UDP4.subarray(0, 20))), {
    dst: "10.0.9.5",
    protocol: "udp",
  });
  const frag = UDP4.slice();
  frag[7] = 1;
  assert.deepEqual(prohibitedDestination(icmp4(3, 13, frag)), { dst: "10.0.9.5", protocol: "udp" });
  // IPv6 extension headers in the quote are walked to the port.
  const ext = buildV6({
    src: bytes6("fd00:64::2"),
    dst: bytes6("fd00:9::5"),
    ext: [{ nh: 0, units: 0 }, { nh: 44, offset: 0 }, { nh: 60, units: 1 }],
    nh: 6,
    l4: hex("9c40 0016 0000 0000"),
    pad: new Uint8Array(0),
    cut: null,
  });
  assert.deepEqual(prohibitedDestination(icmp6(1, 1, ext)), {
    dst: "fd00:9::5",
    port: 22,
    protocol: "tcp",
  });
  // Too little quoted to name a destination, another version inside, or not such an error.
  assert.equal(prohibitedDestination(icmp4(3, 13, UDP4.subarray(0, 19))), undefined);
  assert.equal(prohibitedDestination(icmp6(1, 1, UDP6.subarray(0, 39))), undefined);
  assert.equal(prohibitedDestination(icmp4(3, 13, UDP6)), undefined);
  assert.equal(prohibitedDestination(icmp4(3, 1, UDP4)), undefined);
  // Link padding past the outer length is not quote.
  const padded = Uint8Array.of(...icmp4(3, 13, UDP4.subarray(0, 20)), 0x12, 0x34, 0x56, 0x78);
  assert.deepEqual(prohibitedDestination(padded), { dst: "10.0.9.5", protocol: "udp" });
});

Deno.test("icmp prohibited (property): the agent's answers are recognised, any bytes are safe", () => {
  const from6 = bytes6("fd00:64::1");
  fc.assert(
    fc.property(fc.oneof(arbV4.map(buildV4), arbV6.map(buildV6)), (p) => {
      const answer = adminProhibited(p, 0x64400001, from6);
      if (!answer) return;
      assert.equal(isAdminProhibited(answer), true);
      const d = prohibitedDestination(answer);
      const v6 = p[0] >> 4 === 6;
      assert.equal(d?.dst, formatIP(v6 ? p.slice(24, 40) : p.slice(16, 20)));
    }),
    { numRuns: 1000 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (p) => {
      const d = prohibitedDestination(p);
      if (d) assert.equal(isAdminProhibited(p), true);
    }),
    { numRuns: 5000 },
  );
});

// ---- errors the kernel makes (run inside a namespace) ----------------------------------------

/**
 * The tun is the far side of a router: packets written into it from 10.0.9.x / fd00:9:: to a
 * `prohibit` route are answered by the kernel with its admin-prohibited errors, which come back
 * out of the tun; an `unreachable` route gives a host-unreachable instead.
 */
async function kernel(): Promise<void> {
  const net = linuxPlatform();
  const tun = await openScenarioTun();
  try {
    // Per namespace: a routed packet that meets a prohibit route gets code 13 only when forwarding.
    await Deno.writeTextFile("/proc/sys/net/ipv4/conf/all/forwarding", "1\n");
    await Deno.writeTextFile("/proc/sys/net/ipv6/conf/all/forwarding", "1\n");
    await net.routes.add("10.0.9.0/24", tun.name);
    await ip("route", "add", "prohibit", "10.0.8.0/24");
    await ip("route", "add", "unreachable", "10.0.7.0/24");
    await ip("-6", "route", "add", "fd00:9::/64", "dev", tun.name);
    await ip("-6", "route", "add", "prohibit", "fd00:8::/64");
    const answer = async (p: Uint8Array, to: string) => {
      assert.equal(tun.write(p), true);
      const deadline = Date.now() + 3000;
      while (Date.now() < deadline) {
        for (const q of await tun.read(200)) {
          const icmp = q[0] >> 4 === 4 ? q[9] === 1 : q[6] === 58 && q[40] < 128;
          const dst = formatIP(q[0] >> 4 === 4 ? q.slice(16, 20) : q.slice(24, 40));
          if (icmp && dst === to) return q;
        }
      }
      throw new Error(`the kernel sent no ICMP error to ${to}`);
    };
    const v4 = await answer(udpPacket("10.0.9.5", "10.0.8.1", 40000, 5432, "hi"), "10.0.9.5");
    assert.deepEqual([v4[20], v4[21]], [3, 13], "the kernel's error for a prohibit route");
    assert.equal(isAdminProhibited(v4), true);
    assert.deepEqual(prohibitedDestination(v4), { dst: "10.0.8.1", port: 5432, protocol: "udp" });
    const v6 = await answer(udp6Packet("fd00:9::5", "fd00:8::1", 40000, 53, "hi"), "fd00:9::5");
    assert.deepEqual([v6[40], v6[41]], [1, 1]);
    assert.equal(isAdminProhibited(v6), true);
    assert.deepEqual(prohibitedDestination(v6), { dst: "fd00:8::1", port: 53, protocol: "udp" });
    const host = await answer(udpPacket("10.0.9.6", "10.0.7.1", 40000, 5432, "hi"), "10.0.9.6");
    assert.deepEqual([host[20], host[21]], [3, 1], "the kernel's error for an unreachable route");
    assert.equal(isAdminProhibited(host), false);
    assert.equal(prohibitedDestination(host), undefined);
  } finally {
    tun.close();
  }
  console.log("kernel ok");
}

if (import.meta.main && Deno.args[0] === "kernel") await kernel();

kernelScenarioTest(
  "icmp prohibited: the Linux kernel's own admin-prohibited errors are recognised",
  "icmpp",
  import.meta.url,
);
