/**
 * The laptop's side for the IPv6 namespace test, run inside the "instance" namespace: one stripe
 * whose HELLO asks for IPv6, then from the tunnel's address6 an ICMPv6 echo and a UDP exchange
 * with the VPC host, a packet with a spoofed source, and one to the instance metadata address.
 * Prints one JSON line with what came back.
 * Usage: client6.ts <agent port> <vpc address> <echo port> <metadata address>
 */
import { FEATURE_IPV6, FrameType } from "../../../src/tunnel/wire.ts";
import { formatIP } from "../../../ffi/struct.ts";
import { hello, WireClient } from "../helpers.ts";
import { checksum6Ok, icmp6Echo, udp6Packet } from "../helpers6.ts";

const [port, vpc, echoPort, metadata] = Deno.args;
const c = await WireClient.connect(Number(port));
/** Send `p` until something comes back (the first may race neighbour discovery). */
async function exchange(p: Uint8Array): Promise<Uint8Array> {
  for (let i = 0; i < 5; i++) {
    await c.sendPackets(p);
    const [reply] = await c.packets(1, 1000);
    if (reply) return reply;
  }
  throw new Error("no reply came back");
}
try {
  await c.sendHello(hello({ client: "e2e6", features: [FEATURE_IPV6] }));
  const w = await c.next();
  if (w?.type !== FrameType.Welcome) throw new Error(`expected WELCOME, got ${JSON.stringify(w)}`);
  const me = w.welcome.address6;
  if (!me) throw new Error(`no IPv6 in ${JSON.stringify(w.welcome)}`);
  const echo = await exchange(icmp6Echo(me, vpc, 0x5353, 1, "ping6"));
  const udp = await exchange(udp6Packet(me, vpc, 40000, Number(echoPort), "hello-v6"));
  await c.sendPackets(udp6Packet("fd7a:5353:5d8b::99", vpc, 40001, Number(echoPort), "spoof"));
  await c.sendPackets(udp6Packet(me, metadata, 40002, Number(echoPort), "metadata"));
  // The metadata packet is answered with ICMPv6 administratively prohibited; the spoofed one
  // with nothing. Wait for a second packet, which must not come.
  const late = await c.packets(2, 1500);
  const ends = (p: Uint8Array) => ({
    src: formatIP(p.subarray(8, 24)),
    dst: formatIP(p.subarray(24, 40)),
    checksumOk: checksum6Ok(p),
  });
  const view = new DataView(udp.buffer, udp.byteOffset);
  console.log(JSON.stringify({
    welcome: w.welcome,
    echo: { ...ends(echo), type: echo[40], payload: new TextDecoder().decode(echo.subarray(48)) },
    udp: {
      ...ends(udp),
      srcPort: view.getUint16(40),
      dstPort: view.getUint16(42),
      payload: new TextDecoder().decode(udp.subarray(48)),
    },
    late: late.map((p) => ({ ...ends(p), type: p[40], code: p[41] })),
  }));
} finally {
  await c.close();
}
