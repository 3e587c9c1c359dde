/**
 * systemd-resolved's org.freedesktop.resolve1.Manager as far as ssm-proxy calls it, served on a
 * private dbus-daemon. resolved itself does not run here, and installing it would take over the
 * machine's /etc/resolv.conf. The daemon checks every message against its signature before
 * routing it, so what arrives is well-formed D-Bus; the fake keeps per-link settings the way
 * resolved reports them (`resolvectl domain` shows "~." for a routing-only root) and RevertLink
 * drops them all, as resolved's link_flush_settings does.
 */
import {
  type DBusValue,
  decodeMessage,
  encodeMethodCall,
  marshalBody,
} from "../../ffi/linux/dbus.ts";

export interface Bus {
  path: string;
  stop(): Promise<void>;
}

/** A private dbus-daemon on a temp socket, or undefined when it is not installed. */
export async function startBus(): Promise<Bus | undefined> {
  const path = `/tmp/ssmpt-bus-${Deno.pid}-${Math.random().toString(36).slice(2)}`;
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("dbus-daemon", {
      args: ["--session", "--nofork", "--nopidfile", `--address=unix:path=${path}`],
      stdout: "null",
      stderr: "null",
    }).spawn();
  } catch {
    return undefined;
  }
  const stop = async () => {
    child.kill("SIGTERM");
    await child.status;
    await Deno.remove(path).catch(() => {});
  };
  for (let i = 0; i < 100; i++) {
    if (await Deno.stat(path).then(() => true, () => false)) return { path, stop };
    await new Promise((r) => setTimeout(r, 20));
  }
  await stop();
  throw new Error("dbus-daemon did not create its socket");
}

/** A decoded argument: numbers, booleans, strings, byte arrays, arrays and structs (as arrays). */
export type Arg = number | boolean | string | Uint8Array | Arg[];

export interface Call {
  member: string;
  args: Arg[];
}

export interface LinkSettings {
  dns: string[];
  /** As resolvectl shows them: "~name" for routing-only. */
  domains: string[];
  defaultRoute?: boolean;
}

export interface FakeResolved {
  calls: Call[];
  links: Map<number, LinkSettings>;
  close(): Promise<void>;
}

const NAME = "org.freedesktop.resolve1";
const PATH = "/org/freedesktop/resolve1";
const IFACE = "org.freedesktop.resolve1.Manager";
const METHOD_CALL = 1;

/**
 * Own org.freedesktop.resolve1 on `busPath` and answer its Manager's link methods. `fail` names
 * methods answered with that D-Bus error instead (recorded all the same).
 */
export async function fakeResolved(
  busPath: string,
  fail: Record<string, string> = {},
): Promise<FakeResolved> {
  const conn = await Deno.connect({ transport: "unix", path: busPath });
  const io = new Io(conn);
  const uid = Array.from(new TextEncoder().encode(String(Deno.uid() ?? 0)))
    .map((x) => x.toString(16).padStart(2, "0")).join("");
  await io.write(new TextEncoder().encode(`\0AUTH EXTERNAL ${uid}\r\nBEGIN\r\n`));
  const ok = await io.line();
  if (!ok.startsWith("OK ")) throw new Error(`bus refused EXTERNAL: ${ok}`);
  const bus = { destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus" };
  await io.write(encodeMethodCall({ ...bus, serial: 1, member: "Hello", args: [] }));
  const flags: DBusValue = { t: "u", v: 4 }; // DO_NOT_QUEUE
  const req = { t: "s" as const, v: NAME };
  await io.write(
    encodeMethodCall({ ...bus, serial: 2, member: "RequestName", args: [req, flags] }),
  );
  for (;;) {
    const { m, body } = await io.message();
    if (m.replySerial !== 2) continue;
    if (m.errorName || decodeBody(m.signature, body)[0] !== 1) {
      throw new Error(`could not own ${NAME}: ${m.errorName ?? "not the primary owner"}`);
    }
    break;
  }

  const calls: Call[] = [];
  const links = new Map<number, LinkSettings>();
  const link = (i: number) => {
    if (!links.has(i)) links.set(i, { dns: [], domains: [] });
    return links.get(i)!;
  };
  let serial = 100;
  const serve = async () => {
    for (;;) {
      const { m, body } = await io.message();
      if (m.type !== METHOD_CALL || m.path !== PATH || m.iface !== IFACE) continue;
      const args = decodeBody(m.signature, body);
      const member = m.member!;
      calls.push({ member, args });
      const error = fail[member] ??
        (["SetLinkDNS", "SetLinkDomains", "SetLinkDefaultRoute", "RevertLink"].includes(member)
          ? undefined
          : "org.freedesktop.DBus.Error.UnknownMethod");
      if (!error) {
        const index = args[0] as number;
        if (member === "SetLinkDNS") {
          link(index).dns = (args[1] as [number, Uint8Array][]).map(([, a]) => a.join("."));
        } else if (member === "SetLinkDomains") {
          link(index).domains = (args[1] as [string, boolean][]).map(([d, route]) =>
            route ? `~${d}` : d
          );
        } else if (member === "SetLinkDefaultRoute") link(index).defaultRoute = args[1] as boolean;
        else links.delete(index);
      }
      await io.write(encodeReply(++serial, m.serial, m.sender!, error));
    }
  };
  const served = serve().catch(() => {}); // ends when the connection closes
  return {
    calls,
    links,
    async close() {
      try {
        conn.close();
      } catch { /* closed */ }
      await served;
    },
  };
}

class Io {
  #buf = new Uint8Array(0);
  constructor(readonly conn: Deno.Conn) {}

  async write(b: Uint8Array): Promise<void> {
    for (let o = 0; o < b.length;) o += await this.conn.write(b.subarray(o));
  }

  async #fill(): Promise<void> {
    const chunk = new Uint8Array(4096);
    const n = await this.conn.read(chunk);
    if (n === null) throw new Error("bus closed");
    const next = new Uint8Array(this.#buf.length + n);
    next.set(this.#buf);
    next.set(chunk.subarray(0, n), this.#buf.length);
    this.#buf = next;
  }

  async line(): Promise<string> {
    for (;;) {
      const at = this.#buf.indexOf(0x0a);
      if (at >= 0) {
        const line = new TextDecoder().decode(this.#buf.subarray(0, at)).trimEnd();
        this.#buf = this.#buf.slice(at + 1);
        return line;
      }
      await this.#fill();
    }
  }

  async message() {
    for (;;) {
      const m = decodeMessage(this.#buf);
      if (m) {
        const raw = this.#buf.slice(0, m.length);
        this.#buf = this.#buf.slice(m.length);
        if (raw[0] !== 0x6c) throw new Error("the fake reads little-endian messages only");
        const fieldsLen = new DataView(raw.buffer).getUint32(12, true);
        return { m, body: raw.subarray((16 + fieldsLen + 7) & ~7) };
      }
      await this.#fill();
    }
  }
}

/** A METHOD_RETURN (no body) or, with `error`, an ERROR carrying one string. */
function encodeReply(serial: number, replyTo: number, to: string, error?: string): Uint8Array {
  const body = error ? marshalBody([{ t: "s", v: `the fake says no to ${replyTo}` }]) : undefined;
  const out: number[] = [0x6c, error ? 3 : 2, 0, 1];
  const u32 = (v: number) => {
    while (out.length % 4) out.push(0);
    out.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24);
  };
  const str = (s: string) => {
    const b = new TextEncoder().encode(s);
    u32(b.length);
    out.push(...b, 0);
  };
  const field = (code: number, type: string, write: () => void) => {
    while (out.length % 8) out.push(0);
    out.push(code, 1, type.charCodeAt(0), 0);
    write();
  };
  u32(body?.length ?? 0);
  u32(serial);
  u32(0);
  const lenAt = out.length - 4;
  const start = out.length + ((8 - out.length % 8) % 8);
  field(5, "u", () => u32(replyTo));
  field(6, "s", () => str(to));
  if (error) {
    field(4, "s", () => str(error));
    field(8, "g", () => out.push(1, "s".charCodeAt(0), 0));
  }
  const n = out.length - start;
  out.splice(lenAt, 4, n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
  while (out.length % 8) out.push(0);
  return new Uint8Array([...out, ...(body ?? [])]);
}

/** The body's values for `signature` (little-endian; the types resolve1's link methods use). */
export function decodeBody(signature: string, body: Uint8Array): Arg[] {
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let at = 0;
  const align = (n: number) => (at = (at + n - 1) & ~(n - 1));
  const u32 = () => {
    align(4);
    const v = dv.getUint32(at, true);
    at += 4;
    return v;
  };
  /** One complete type at the front of `sig`: its value and the rest of the signature. */
  const one = (sig: string): [Arg, string] => {
    const c = sig[0];
    switch (c) {
      case "y":
        return [body[at++], sig.slice(1)];
      case "i":
        return [u32() | 0, sig.slice(1)];
      case "u":
        return [u32(), sig.slice(1)];
      case "b":
        return [u32() === 1, sig.slice(1)];
      case "s":
      case "o": {
        const n = u32();
        const s = new TextDecoder().decode(body.subarray(at, at + n));
        at += n + 1;
        return [s, sig.slice(1)];
      }
      case "a": {
        const n = u32();
        const elem = sig.slice(1, 1 + completeLength(sig.slice(1)));
        align(elem[0] === "(" ? 8 : elem[0] === "y" ? 1 : 4);
        const end = at + n;
        const items: Arg[] = [];
        while (at < end) items.push(one(elem)[0]);
        const rest = sig.slice(1 + elem.length);
        return [elem === "y" ? new Uint8Array(items as number[]) : items, rest];
      }
      case "(": {
        align(8);
        const inner = sig.slice(1, completeLength(sig) - 1);
        const fields: Arg[] = [];
        for (let s = inner; s;) {
          const [v, rest] = one(s);
          fields.push(v);
          s = rest;
        }
        return [fields, sig.slice(inner.length + 2)];
      }
      default:
        throw new Error(`the fake cannot decode type ${c}`);
    }
  };
  const out: Arg[] = [];
  for (let s = signature; s;) {
    const [v, rest] = one(s);
    out.push(v);
    s = rest;
  }
  return out;
}

/** Length of the single complete type at the front of `sig`. */
function completeLength(sig: string): number {
  if (sig[0] === "a") return 1 + completeLength(sig.slice(1));
  if (sig[0] !== "(") return 1;
  let depth = 0;
  for (let i = 0; i < sig.length; i++) {
    if (sig[i] === "(") depth++;
    else if (sig[i] === ")" && --depth === 0) return i + 1;
  }
  throw new Error(`unbalanced signature ${sig}`);
}
