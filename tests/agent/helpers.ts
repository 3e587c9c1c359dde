/** Test helpers for the agent: an in-memory Tun, IPv4 packet crafting, and a wire-level client. */
import type { Tun, TunConfig } from "../../src/net/types.ts";
import {
  encodeHello,
  encodePackets,
  type Frame,
  FrameReader,
  type Hello,
  MAGIC,
  PROTOCOL_VERSION,
} from "../../src/tunnel/wire.ts";

export class FakeTun implements Tun {
  readonly name = "faketun0";
  readonly index = 99;
  readonly mtu: number;
  /** Packets the agent wrote (copies). */
  written: Uint8Array[] = [];
  #inbox: Uint8Array[] = [];
  #wake: (() => void) | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  closed = false;
  writeOk = true;
  /** IPv6 addresses the agent gave the tun (harness.ts records them here). */
  addresses6: string[] = [];

  constructor(readonly cfg: TunConfig) {
    this.mtu = cfg.mtu;
  }

  /** Make packets appear as if the kernel routed them into the tun. */
  inject(...packets: Uint8Array[]): void {
    this.#inbox.push(...packets);
    this.#wake?.();
  }

  read(timeoutMs: number): Promise<Uint8Array[]> {
    if (this.#inbox.length) return Promise.resolve(this.#inbox.splice(0));
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(this.#timer);
        this.#wake = undefined;
        resolve(this.#inbox.splice(0));
      };
      this.#wake = done;
      this.#timer = setTimeout(done, timeoutMs);
    });
  }

  write(packet: Uint8Array): boolean {
    if (!this.writeOk) return false;
    this.written.push(packet.slice());
    return true;
  }

  close(): void {
    this.closed = true;
  }
}

export function ipv4(text: string): number[] {
  return text.split(".").map(Number);
}

/** An IPv4/UDP packet with valid IP and UDP checksums. */
export function udpPacket(
  src: string,
  dst: string,
  srcPort: number,
  dstPort: number,
  payload: Uint8Array | string = "x",
): Uint8Array {
  const data = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
  const p = new Uint8Array(28 + data.length);
  const v = new DataView(p.buffer);
  p[0] = 0x45;
  v.setUint16(2, p.length);
  v.setUint16(4, 0x1234);
  p[8] = 64;
  p[9] = 17;
  p.set(ipv4(src), 12);
  p.set(ipv4(dst), 16);
  v.setUint16(10, checksum(p.subarray(0, 20)));
  v.setUint16(20, srcPort);
  v.setUint16(22, dstPort);
  v.setUint16(24, 8 + data.length);
  p.set(data, 28);
  const pseudo = new Uint8Array(12 + 8 + data.length);
  pseudo.set(p.subarray(12, 20), 0);
  pseudo[9] = 17;
  new DataView(pseudo.buffer).setUint16(10, 8 + data.length);
  pseudo.set(p.subarray(20), 12);
  v.setUint16(26, checksum(pseudo) || 0xffff);
  return p;
}

export function checksum(b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) s += (b[i] << 8) | (b[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

export function randomTunnelId(): string {
  return [...crypto.getRandomValues(new Uint8Array(16))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

export function hello(over: Partial<Hello> = {}): Hello {
  return {
    magic: MAGIC,
    versions: [PROTOCOL_VERSION],
    tunnelId: randomTunnelId(),
    stripe: 0,
    stripes: 1,
    mtu: 1400,
    features: [],
    client: "test",
    ...over,
  };
}

/** A raw TCP client that speaks frames, like one stripe of the laptop. */
export class WireClient {
  #reader = new FrameReader();
  #frames: Frame[] = [];
  #eof = false;
  #wake: (() => void) | undefined;
  #pump: Promise<void>;
  /** A malformed frame from the agent (a test failure). */
  error: Error | undefined;

  private constructor(readonly conn: Deno.TcpConn) {
    this.#pump = this.#readAll();
  }

  static async connect(port: number): Promise<WireClient> {
    return new WireClient(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  async #readAll(): Promise<void> {
    try {
      for (;;) {
        const buf = new Uint8Array(65536);
        const n = await this.conn.read(buf);
        if (n === null) break;
        this.#frames.push(...this.#reader.push(buf.subarray(0, n)));
        this.#wake?.();
      }
    } catch (e) {
      if (
        !(e instanceof Deno.errors.BadResource || e instanceof Deno.errors.ConnectionReset ||
          e instanceof Deno.errors.Interrupted)
      ) this.error = e as Error;
    }
    this.#eof = true;
    this.#wake?.();
  }

  get eof(): boolean {
    return this.#eof && this.#frames.length === 0;
  }

  async send(bytes: Uint8Array): Promise<void> {
    for (let o = 0; o < bytes.length;) o += await this.conn.write(bytes.subarray(o));
  }

  sendHello(h: Hello): Promise<void> {
    return this.send(encodeHello(h));
  }

  sendPackets(...packets: Uint8Array[]): Promise<void> {
    return this.send(encodePackets(packets));
  }

  /** The next frame, undefined at EOF; throws after `timeoutMs`. */
  async next(timeoutMs = 3000): Promise<Frame | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (this.#frames.length === 0 && !this.#eof) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("timed out waiting for a frame");
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((r) => {
        this.#wake = r;
        timer = setTimeout(r, left);
      });
      clearTimeout(timer);
      this.#wake = undefined;
    }
    return this.#frames.shift();
  }

  /** Collect PACKETS until `count` packets arrived, EOF, or `timeoutMs` passed. */
  async packets(count: number, timeoutMs = 3000): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    const deadline = Date.now() + timeoutMs;
    while (out.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      let f: Frame | undefined;
      try {
        f = await this.next(left);
      } catch {
        break;
      }
      if (!f) break;
      if (f.type === 3) out.push(...f.packets);
    }
    return out;
  }

  async close(): Promise<void> {
    try {
      this.conn.close();
    } catch { /* closed */ }
    await this.#pump;
  }
}

export async function waitFor(cond: () => boolean, timeoutMs = 3000, what = "condition") {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Poll `check` until it returns a value (not undefined), or fail after `timeoutMs`. */
export async function eventually<T>(
  check: () => Promise<T | undefined>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
