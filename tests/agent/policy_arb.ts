/** fast-check arbitraries for the policy engine's tests: destinations and packets they cover. */
import fc from "fast-check";
import type { Dest } from "../../agent/rules.ts";
import { formatIpv4, maskOf } from "../../agent/cidr.ts";
import { formatIpv6 } from "../../agent/cidr6.ts";
import { masked6 } from "../../src/net/cidr6.ts";
import { ICMP, ICMP6, TCP, UDP, v4Packet, v6Packet } from "./policy_packets.ts";

const V4_ANY = { base: 0, prefix: 0 };
const V6_ANY = { bytes: new Uint8Array(16), prefix: 0 };

/** Any destination the syntax can express; networks drawn from a few shared /8s so they meet. */
export const arbDest: fc.Arbitrary<Dest> = fc.record({
  net: fc.oneof(
    fc.tuple(
      fc.constantFrom(10, 172, 8),
      fc.nat({ max: 0xffffff }),
      fc.integer({ min: 0, max: 32 }),
    )
      .map(([top, low, prefix]) => ({
        v4: { base: (((top << 24) | low) & maskOf(prefix)) >>> 0, prefix },
      })),
    fc.tuple(
      fc.constantFrom(0xfd, 0x26),
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      fc.integer({ min: 0, max: 128 }),
    ).map(([top, b, prefix]) => {
      const bytes = b.slice();
      bytes[0] = top;
      return { v6: { bytes: masked6(bytes, prefix), prefix } };
    }),
    fc.constant({ v4: V4_ANY, v6: V6_ANY }),
  ),
  protocol: fc.constantFrom(undefined, "tcp" as const, "udp" as const, "icmp" as const),
  ports: fc.option(
    fc.tuple(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 })).map((
      [a, b],
    ) => ({ lo: Math.min(a, b), hi: Math.max(a, b) })),
    { nil: undefined },
  ),
}).map(({ net, protocol, ports }) => {
  const d: Dest = { ...net };
  if (protocol) d.protocol = protocol;
  if (ports && protocol !== "icmp") d.ports = ports;
  return d;
});

/**
 * A packet `dest` covers: an address inside it (random host bits), its protocol (or any), a port
 * in its range (or any); sometimes a non-first fragment or cut short, where ports are unknown.
 */
export function arbPacketIn(dest: Dest): fc.Arbitrary<Uint8Array> {
  const families = [...(dest.v4 ? [4 as const] : []), ...(dest.v6 ? [6 as const] : [])];
  return fc.record({
    family: fc.constantFrom(...families),
    host: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    anyProto: fc.constantFrom(TCP, UDP, ICMP, ICMP6, 47),
    tcpOrUdp: fc.constantFrom(TCP, UDP),
    port: fc.integer({ min: dest.ports?.lo ?? 0, max: dest.ports?.hi ?? 65535 }),
    shape: fc.constantFrom("whole", "whole", "whole", "fragment", "short"),
  }).map(({ family, host, anyProto, tcpOrUdp, port, shape }) => {
    const icmp = family === 4 ? ICMP : ICMP6;
    const proto = dest.protocol === "tcp"
      ? TCP
      : dest.protocol === "udp"
      ? UDP
      : dest.protocol === "icmp"
      ? icmp
      : dest.ports
      ? tcpOrUdp
      : anyProto;
    if (family === 4) {
      const c = dest.v4!;
      const h = ((host[0] << 24) | (host[1] << 16) | (host[2] << 8) | host[3]) >>> 0;
      const to = formatIpv4((c.base | (h & ~maskOf(c.prefix))) >>> 0);
      if (shape === "fragment") return v4Packet(to, proto, port, { fragOffset: 1 + host[4] });
      return v4Packet(to, proto, port, shape === "short" ? { length: 21 } : {});
    }
    const c = dest.v6!;
    const keep = masked6(new Uint8Array(16).fill(0xff), c.prefix);
    const to = formatIpv6(c.bytes.map((b, i) => b | (host[i] & ~keep[i])));
    if (shape === "fragment") return v6Packet(to, proto, port, [{ type: "frag", offset: 7 }]);
    return v6Packet(to, proto, port, [], shape === "short" ? 42 : undefined);
  });
}
