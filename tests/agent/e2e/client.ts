/**
 * The laptop's side for the namespace test, run inside the "instance" namespace (the agent
 * listens on that namespace's loopback): one stripe, HELLO, then a crafted IPv4/UDP packet from
 * the assigned address to the echo server; prints the reply as JSON.
 * Usage: client.ts <agent port> <echo address> <echo port>
 */
import { FrameType } from "../../../src/tunnel/wire.ts";
import { parsePacket } from "../../../src/tunnel/packet.ts";
import { hello, udpPacket, WireClient } from "../helpers.ts";

const [port, echoAddr, echoPort] = Deno.args;
const c = await WireClient.connect(Number(port));
try {
  await c.sendHello(hello({ client: "e2e" }));
  const w = await c.next();
  if (w?.type !== FrameType.Welcome) throw new Error(`expected WELCOME, got ${JSON.stringify(w)}`);
  const address = w.welcome.address;
  let reply: Uint8Array | undefined;
  // UDP: retry a few times in case the first packet races ARP or conntrack setup.
  for (let i = 0; i < 5 && !reply; i++) {
    await c.sendPackets(udpPacket(address, echoAddr, 40000, Number(echoPort), "hello-vpc"));
    reply = (await c.packets(1, 1000))[0];
  }
  if (!reply) throw new Error("no echo came back");
  const info = parsePacket(reply)!;
  console.log(JSON.stringify({
    welcome: w.welcome,
    reply: { ...info, payload: new TextDecoder().decode(reply.subarray(28)) },
  }));
} finally {
  await c.close();
}
