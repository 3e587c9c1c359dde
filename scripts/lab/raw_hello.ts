/**
 * Speak the first step of the tunnel protocol (src/tunnel/wire.ts) to an agent as a bare client
 * would: connect, send a HELLO, print the first frame the agent answers as one JSON line, e.g.
 * {"type":6,"error":{"code":"identity-required",…}}, or {"closed":true} / {"failed":"…"}.
 * Run it inside the lab's instance namespace, where the agent listens:
 *
 *   raw_hello.ts HOST PORT [FEATURE,…]     (no features: a HELLO offering no identity)
 */
import {
  encodeHello,
  type Frame,
  FrameReader,
  MAGIC,
  PROTOCOL_VERSION,
} from "../../src/tunnel/wire.ts";

const TIMEOUT_MS = 10_000;

export async function firstAnswer(
  host: string,
  port: number,
  features: string[],
): Promise<unknown> {
  const conn = await Deno.connect({ hostname: host, port });
  const timer = setTimeout(() => conn.close(), TIMEOUT_MS);
  try {
    const tunnelId = Array.from(
      crypto.getRandomValues(new Uint8Array(16)),
      (b) => b.toString(16).padStart(2, "0"),
    ).join("");
    const hello = encodeHello({
      magic: MAGIC,
      versions: [PROTOCOL_VERSION],
      tunnelId,
      stripe: 0,
      stripes: 1,
      mtu: 1400,
      features,
      client: "lab raw_hello",
    });
    for (let o = 0; o < hello.length;) o += await conn.write(hello.subarray(o));
    const reader = new FrameReader();
    const buf = new Uint8Array(65536);
    while (true) {
      const n = await conn.read(buf);
      if (n === null) return { closed: true };
      const frames: Frame[] = reader.push(buf.slice(0, n));
      if (frames.length) return frames[0];
    }
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
}

if (import.meta.main) {
  const [host, port, features] = Deno.args;
  let out: unknown;
  try {
    out = await firstAnswer(host, Number(port), features ? features.split(",") : []);
  } catch (e) {
    out = { failed: (e as Error).message };
  }
  console.log(JSON.stringify(out));
}
