/**
 * A laptop that stays connected, for the status and idle tests in a namespace: one stripe, HELLO,
 * prints the WELCOME as JSON, then holds the tunnel until its stdin closes.
 * Usage: hold.ts <agent port>
 */
import { FrameType } from "../../../src/tunnel/wire.ts";
import { hello, WireClient } from "../helpers.ts";

const c = await WireClient.connect(Number(Deno.args[0]));
try {
  await c.sendHello(hello({ client: "hold" }));
  const w = await c.next();
  if (w?.type !== FrameType.Welcome) throw new Error(`expected WELCOME, got ${JSON.stringify(w)}`);
  console.log(JSON.stringify(w.welcome));
  for await (const _ of Deno.stdin.readable) { /* until EOF */ }
} finally {
  await c.close();
}
