/**
 * The smallest D-Bus client that can drive systemd-resolved: SASL EXTERNAL over the system bus
 * unix socket, Hello, then method calls with a handful of argument types. Marshalling follows the
 * D-Bus specification ("Message Format"), always little-endian on send; replies are read in either
 * byte order. Not FFI, but it lives with the other Linux OS-interface code.
 */

/** A D-Bus error reply (name like org.freedesktop.DBus.Error.AccessDenied) or a protocol fault. */
export class DBusError extends Error {
  override name = "DBusError";
  constructor(readonly errorName: string, message: string) {
    super(`${errorName}: ${message}`);
  }
}

/** Minimal typed values: enough for resolve1's SetLinkDNS / SetLinkDomains / RevertLink. */
export type DBusValue =
  | { t: "i"; v: number }
  | { t: "u"; v: number }
  | { t: "b"; v: boolean }
  | { t: "s"; v: string }
  | { t: "o"; v: string }
  | { t: "g"; v: string }
  | { t: "ay"; v: Uint8Array }
  | { t: "a"; elem: string; v: DBusValue[] }
  | { t: "r"; v: DBusValue[] };

export const dbus = {
  i: (v: number): DBusValue => ({ t: "i", v }),
  b: (v: boolean): DBusValue => ({ t: "b", v }),
  s: (v: string): DBusValue => ({ t: "s", v }),
  ay: (v: Uint8Array): DBusValue => ({ t: "ay", v }),
  array: (elem: string, v: DBusValue[]): DBusValue => ({ t: "a", elem, v }),
  struct: (...v: DBusValue[]): DBusValue => ({ t: "r", v }),
};

/** The signature of one value. */
export function signatureOf(x: DBusValue): string {
  switch (x.t) {
    case "a":
      return `a${x.elem}`;
    case "r":
      return `(${x.v.map(signatureOf).join("")})`;
    default:
      return x.t;
  }
}

function alignOf(sig: string): number {
  switch (sig[0]) {
    case "y":
    case "g":
    case "v":
      return 1;
    case "(":
    case "{":
    case "x":
    case "t":
    case "d":
      return 8;
    default:
      return 4; // i u b s o a
  }
}

class Writer {
  bytes: number[] = [];
  align(n: number): void {
    while (this.bytes.length % n) this.bytes.push(0);
  }
  u32(v: number): void {
    this.align(4);
    this.bytes.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
  }
  str(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u32(b.length);
    this.bytes.push(...b, 0);
  }
  sig(s: string): void {
    this.bytes.push(s.length, ...new TextEncoder().encode(s), 0);
  }
  value(x: DBusValue): void {
    switch (x.t) {
      case "i":
      case "u":
        return this.u32(x.v >>> 0);
      case "b":
        return this.u32(x.v ? 1 : 0);
      case "s":
      case "o":
        return this.str(x.v);
      case "g":
        return this.sig(x.v);
      case "ay":
        this.u32(x.v.length);
        this.bytes.push(...x.v);
        return;
      case "r":
        this.align(8);
        for (const f of x.v) this.value(f);
        return;
      case "a": {
        this.u32(0);
        const lenAt = this.bytes.length - 4;
        this.align(alignOf(x.elem)); // padding before the first element is not counted
        const start = this.bytes.length;
        for (const e of x.v) this.value(e);
        const n = this.bytes.length - start;
        this.bytes.splice(lenAt, 4, n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
        return;
      }
    }
  }
}

/** Marshal a body (no header); exported for golden tests. */
export function marshalBody(args: DBusValue[]): Uint8Array<ArrayBuffer> {
  const w = new Writer();
  for (const a of args) w.value(a);
  return new Uint8Array(w.bytes);
}

export interface MethodCall {
  serial: number;
  destination?: string;
  path: string;
  iface?: string;
  member: string;
  args: DBusValue[];
}

/** A complete METHOD_CALL message. */
export function encodeMethodCall(c: MethodCall): Uint8Array<ArrayBuffer> {
  const body = marshalBody(c.args);
  // Header fields are an a(yv): a byte code, then a variant (signature + value).
  const w = new Writer();
  w.bytes.push(0x6c, 1, 0, 1); // 'l', METHOD_CALL, flags 0, protocol version 1
  w.u32(body.length);
  w.u32(c.serial);
  const entries: [number, "o" | "s" | "g", string][] = [[1, "o", c.path], [3, "s", c.member]];
  if (c.iface) entries.push([2, "s", c.iface]);
  if (c.destination) entries.push([6, "s", c.destination]);
  const sig = c.args.map(signatureOf).join("");
  if (sig) entries.push([8, "g", sig]);
  w.u32(0);
  const lenAt = w.bytes.length - 4;
  w.align(8);
  const start = w.bytes.length;
  for (const [code, t, v] of entries) {
    w.align(8);
    w.bytes.push(code);
    w.sig(t);
    w.value({ t, v } as DBusValue);
  }
  const n = w.bytes.length - start;
  w.bytes.splice(lenAt, 4, n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
  w.align(8);
  const out = new Uint8Array(w.bytes.length + body.length);
  out.set(w.bytes);
  out.set(body, w.bytes.length);
  return out;
}

export interface Incoming {
  type: number;
  serial: number;
  replySerial?: number;
  errorName?: string;
  /** Header fields of a method call or signal (a peer serving calls needs them). */
  path?: string;
  iface?: string;
  member?: string;
  sender?: string;
  signature: string;
  /** First string argument, when the body starts with one (error text, Hello's name). */
  firstString?: string;
  length: number;
}

/** Parse one message from the front of `b`; undefined when more bytes are needed. */
export function decodeMessage(b: Uint8Array): Incoming | undefined {
  if (b.length < 16) return undefined;
  if (b[0] !== 0x6c && b[0] !== 0x42) throw new DBusError("protocol", `bad endian byte ${b[0]}`);
  const le = b[0] === 0x6c;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const bodyLen = dv.getUint32(4, le);
  const fieldsLen = dv.getUint32(12, le);
  if (fieldsLen > 1 << 26 || bodyLen > 1 << 27) throw new DBusError("protocol", "message too big");
  const bodyAt = (16 + fieldsLen + 7) & ~7;
  const total = bodyAt + bodyLen;
  if (b.length < total) return undefined;
  const m: Incoming = { type: b[1], serial: dv.getUint32(8, le), signature: "", length: total };
  let off = 16;
  const end = 16 + fieldsLen;
  const readStr = (at: number): [string, number] => {
    at = (at + 3) & ~3;
    const n = dv.getUint32(at, le);
    if (at + 4 + n >= total) throw new DBusError("protocol", "string past end");
    return [new TextDecoder().decode(b.subarray(at + 4, at + 4 + n)), at + 5 + n];
  };
  while (off < end) {
    off = (off + 7) & ~7;
    const code = b[off];
    const sigLen = b[off + 1];
    const t = String.fromCharCode(...b.subarray(off + 2, off + 2 + sigLen));
    off += 3 + sigLen;
    if (t === "s" || t === "o") {
      const [v, next] = readStr(off);
      if (code === 4) m.errorName = v;
      else if (code === 1) m.path = v;
      else if (code === 2) m.iface = v;
      else if (code === 3) m.member = v;
      else if (code === 7) m.sender = v;
      off = next;
    } else if (t === "g") {
      const n = b[off];
      const v = String.fromCharCode(...b.subarray(off + 1, off + 1 + n));
      if (code === 8) m.signature = v;
      off += n + 2;
    } else if (t === "u") {
      off = (off + 3) & ~3;
      if (code === 5) m.replySerial = dv.getUint32(off, le);
      off += 4;
    } else throw new DBusError("protocol", `unexpected header field type ${t}`);
  }
  if (m.signature.startsWith("s") && bodyLen >= 5) m.firstString = readStr(bodyAt)[0];
  return m;
}

const METHOD_RETURN = 2;
const ERROR = 3;

/** One connection to a bus: authenticate, Hello, then sequential method calls. */
export class DBusConnection {
  #serial = 0;
  #buf = new Uint8Array(0);
  private constructor(readonly conn: Deno.UnixConn) {}

  static async connect(path: string, uid = Deno.uid() ?? 0): Promise<DBusConnection> {
    const conn = await Deno.connect({ transport: "unix", path });
    const c = new DBusConnection(conn);
    try {
      const hexUid = Array.from(new TextEncoder().encode(String(uid)))
        .map((x) => x.toString(16).padStart(2, "0")).join("");
      await c.#writeAll(new TextEncoder().encode(`\0AUTH EXTERNAL ${hexUid}\r\n`));
      const line = await c.#readLine();
      if (!line.startsWith("OK ")) throw new DBusError("auth", `bus refused EXTERNAL: ${line}`);
      await c.#writeAll(new TextEncoder().encode("BEGIN\r\n"));
      await c.call({
        destination: "org.freedesktop.DBus",
        path: "/org/freedesktop/DBus",
        iface: "org.freedesktop.DBus",
        member: "Hello",
        args: [],
      });
      return c;
    } catch (e) {
      c.close();
      throw e;
    }
  }

  /** Call and wait for the reply; a D-Bus error reply throws DBusError. */
  async call(c: Omit<MethodCall, "serial">): Promise<Incoming> {
    const serial = ++this.#serial;
    await this.#writeAll(encodeMethodCall({ ...c, serial }));
    for (;;) {
      const m = await this.#readMessage();
      if (m.replySerial !== serial) continue; // signals (NameAcquired) and the like
      if (m.type === ERROR) {
        throw new DBusError(m.errorName ?? "error", m.firstString ?? "(no message)");
      }
      if (m.type === METHOD_RETURN) return m;
    }
  }

  close(): void {
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }

  async #writeAll(b: Uint8Array): Promise<void> {
    for (let off = 0; off < b.length;) off += await this.conn.write(b.subarray(off));
  }

  async #fill(): Promise<void> {
    const chunk = new Uint8Array(4096);
    const n = await this.conn.read(chunk);
    if (n === null) throw new DBusError("disconnected", "the bus closed the connection");
    const next = new Uint8Array(this.#buf.length + n);
    next.set(this.#buf);
    next.set(chunk.subarray(0, n), this.#buf.length);
    this.#buf = next;
  }

  async #readLine(): Promise<string> {
    for (;;) {
      const at = this.#buf.indexOf(0x0a);
      if (at >= 0) {
        const line = new TextDecoder().decode(this.#buf.subarray(0, at)).trimEnd();
        this.#buf = this.#buf.slice(at + 1);
        return line;
      }
      if (this.#buf.length > 4096) throw new DBusError("auth", "overlong SASL line");
      await this.#fill();
    }
  }

  async #readMessage(): Promise<Incoming> {
    for (;;) {
      const m = decodeMessage(this.#buf);
      if (m) {
        this.#buf = this.#buf.slice(m.length);
        return m;
      }
      await this.#fill();
    }
  }
}
