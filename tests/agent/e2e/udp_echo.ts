/**
 * UDP echo server for the namespace tests (runs inside the "vpc" namespace). Replies
 * `<source address>|<payload>`, so the test can see the source the VPC saw (the masquerade), and
 * prints `got <source address>` for every datagram, so a test can tell none arrived.
 * Usage: udp_echo.ts <address> <port>
 */
const [hostname, port] = Deno.args;
const sock = Deno.listenDatagram({ transport: "udp", hostname, port: Number(port) });
console.log("ready");
const enc = new TextEncoder();
const dec = new TextDecoder();
for await (const [data, from] of sock) {
  const a = from as Deno.NetAddr;
  console.log(`got ${a.hostname}`);
  await sock.send(enc.encode(`${a.hostname}|${dec.decode(data)}`), a);
}
