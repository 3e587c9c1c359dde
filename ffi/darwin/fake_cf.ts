/**
 * TEST DOUBLE — nothing in production imports this. The CoreFoundation half of the fake
 * (macos-dns-routes §7): CF objects are numbered handles with a type, a value and a reference
 * count, and misuse that would crash or leak on a Mac throws here: CFRelease(NULL), over-release,
 * releasing a kCFBoolean, wrong callbacks, allocator or encoding, a CFIndex that is not a bigint.
 * `live` is the leak ledger; `calls` records each call with decoded arguments, in order.
 * fake_sc.ts adds configd on top.
 */
import { type CfStatics, kCFStringEncodingUTF8 } from "./cf.ts";
import type { Plist } from "./plist.ts";

type Ptr = Deno.PointerValue;
type Buf = AllowSharedBufferSource | null;
export type FakeCfCall = { name: string } & Record<string, unknown>;

type Obj =
  | { t: "string"; v: string }
  | { t: "number"; v: bigint }
  | { t: "boolean"; v: boolean }
  | { t: "array"; v: number[] }
  | { t: "dict"; v: [number, number][] }
  | { t: "opaque"; v: unknown }
  | { t: "callbacks"; v: string };
interface Entry {
  obj: Obj;
  refs: number;
  immortal: boolean;
}

const TYPE = { string: 7n, number: 22n, boolean: 21n, array: 19n, dict: 18n, opaque: 300n };

function bytesOf(b: Buf): Uint8Array {
  if (b === null) throw new TypeError("NULL buffer");
  if (b instanceof ArrayBuffer || b instanceof SharedArrayBuffer) return new Uint8Array(b);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

function pointersOf(b: Buf, n: number): bigint[] {
  const u8 = bytesOf(b);
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  return Array.from({ length: n }, (_, i) => dv.getBigUint64(8 * i, true));
}

function index(n: unknown, what: string): number {
  // CFIndex is 64-bit: a number here means the declaration said i32 (upper half garbage on arm64).
  if (typeof n !== "bigint") throw new TypeError(`${what}: CFIndex passed as ${typeof n}`);
  return Number(n);
}

export class FakeCF {
  readonly calls: FakeCfCall[] = [];
  readonly statics: CfStatics;
  protected readonly objs = new Map<number, Entry>();
  #nextId = 0x1000;

  constructor() {
    const immortal = (obj: Obj) => this.ptr(this.newObj(obj, true));
    this.statics = {
      arrayCallBacks: immortal({ t: "callbacks", v: "array" }),
      dictKeyCallBacks: immortal({ t: "callbacks", v: "key" }),
      dictValueCallBacks: immortal({ t: "callbacks", v: "value" }),
      booleanTrue: immortal({ t: "boolean", v: true }),
      booleanFalse: immortal({ t: "boolean", v: false }),
    };
  }

  /** Call names in order. */
  get names(): string[] {
    return this.calls.map((c) => c.name);
  }

  /** CF objects still referenced (statics excluded): 0 after a clean stop. */
  get live(): number {
    return [...this.objs.values()].filter((e) => !e.immortal).length;
  }

  /** The process died: its objects are gone with it. */
  protected forgetObjects(): void {
    for (const [id, e] of this.objs) if (!e.immortal) this.objs.delete(id);
  }

  /** An opaque object (a store) whose last reference went away. */
  protected freed(_v: unknown): void {}

  protected newObj(obj: Obj, immortal = false): number {
    const id = this.#nextId;
    this.#nextId += 0x10;
    this.objs.set(id, { obj, refs: 1, immortal });
    return id;
  }

  protected ptr(id: number): Deno.PointerObject {
    return Deno.UnsafePointer.create(BigInt(id))!;
  }

  protected entry(p: Ptr, what: string): Entry {
    if (p === null) throw new TypeError(`${what}(NULL)`);
    const e = this.objs.get(Number(Deno.UnsafePointer.value(p)));
    if (!e) throw new Error(`${what}: not a live CF object (used after release?)`);
    return e;
  }

  protected idOf(p: Ptr): number {
    return Number(Deno.UnsafePointer.value(p));
  }

  protected as<T extends Obj["t"]>(p: Ptr, t: T, what: string): Extract<Obj, { t: T }> {
    const o = this.entry(p, what).obj;
    if (o.t !== t) throw new TypeError(`${what}: a ${o.t}, not a ${t}`);
    return o as Extract<Obj, { t: T }>;
  }

  protected retain(id: number): void {
    this.objs.get(id)!.refs++;
  }

  /** The JS value of a CF object (for recording and for configd's storage). */
  protected decode(id: number): Plist {
    const o = this.objs.get(id)?.obj;
    if (!o) throw new Error("decoding a released CF object");
    switch (o.t) {
      case "string":
      case "boolean":
        return o.v;
      case "number":
        return Number(o.v);
      case "array":
        return o.v.map((c) => this.decode(c));
      case "dict": {
        const out: Record<string, Plist> = {};
        for (const [k, v] of o.v) out[this.decode(k) as string] = this.decode(v);
        return out;
      }
      default:
        throw new TypeError(`a ${o.t} is not a property list`);
    }
  }

  /** A new +1 CF object for a JS value (what CopyValue returns). */
  protected encode(v: Plist): number {
    if (typeof v === "string") return this.newObj({ t: "string", v });
    if (typeof v === "number") return this.newObj({ t: "number", v: BigInt(v) });
    // Booleans are the immortal statics; other children are made at +1, owned by the container.
    if (typeof v === "boolean") {
      return this.idOf(v ? this.statics.booleanTrue : this.statics.booleanFalse);
    }
    if (Array.isArray(v)) return this.newObj({ t: "array", v: v.map((c) => this.encode(c)) });
    return this.newObj({
      t: "dict",
      v: Object.entries(v).map(([k, c]) => [this.encode(k), this.encode(c)]),
    });
  }

  protected record(c: FakeCfCall): void {
    this.calls.push(c);
  }

  CFStringCreateWithCString(alloc: Ptr, cstr: Buf, encoding: number): Ptr {
    const u8 = bytesOf(cstr);
    const end = u8.indexOf(0);
    if (alloc !== null) throw new Error("CFStringCreateWithCString: allocator must be NULL");
    if (encoding !== kCFStringEncodingUTF8) {
      throw new Error(`CFStringCreateWithCString: encoding 0x${encoding.toString(16)}`);
    }
    if (end < 0) throw new Error("CFStringCreateWithCString: no NUL terminator");
    const v = new TextDecoder().decode(u8.subarray(0, end));
    this.record({ name: "CFStringCreateWithCString", value: v });
    return this.ptr(this.newObj({ t: "string", v }));
  }

  CFStringGetLength(s: Ptr): bigint {
    return BigInt(this.as(s, "string", "CFStringGetLength").v.length);
  }

  CFStringGetCString(s: Ptr, buf: Buf, size: bigint, encoding: number): number {
    const bytes = new TextEncoder().encode(this.as(s, "string", "CFStringGetCString").v + "\0");
    if (encoding !== kCFStringEncodingUTF8) throw new Error("CFStringGetCString: not UTF-8");
    const out = bytesOf(buf);
    if (bytes.length > index(size, "CFStringGetCString") || bytes.length > out.length) return 0;
    out.set(bytes);
    return 1;
  }

  CFNumberCreate(alloc: Ptr, type: bigint, value: Buf): Ptr {
    const t = index(type, "CFNumberCreate");
    if (alloc !== null) throw new Error("CFNumberCreate: allocator must be NULL");
    const u8 = bytesOf(value), dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
    const v = t === 3 || t === 9
      ? BigInt(dv.getInt32(0, true))
      : t === 4
      ? dv.getBigInt64(0, true)
      : undefined;
    if (v === undefined) throw new Error(`CFNumberCreate: type ${t} not modelled`);
    this.record({ name: "CFNumberCreate", type: t, value: Number(v) });
    return this.ptr(this.newObj({ t: "number", v }));
  }

  CFNumberGetValue(n: Ptr, type: bigint, out: Buf): number {
    const v = this.as(n, "number", "CFNumberGetValue").v;
    const t = index(type, "CFNumberGetValue");
    const u8 = bytesOf(out), dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
    if (t === 4) dv.setBigInt64(0, v, true);
    else if (t === 3) dv.setInt32(0, Number(v), true);
    else throw new Error(`CFNumberGetValue: type ${t} not modelled`);
    return 1;
  }

  CFBooleanGetValue(b: Ptr): number {
    return this.as(b, "boolean", "CFBooleanGetValue").v ? 1 : 0;
  }

  CFArrayCreate(alloc: Ptr, values: Buf, n: bigint, callbacks: Ptr): Ptr {
    const count = index(n, "CFArrayCreate");
    if (alloc !== null) throw new Error("CFArrayCreate: allocator must be NULL");
    if (!Deno.UnsafePointer.equals(callbacks, this.statics.arrayCallBacks)) {
      throw new Error("CFArrayCreate: callbacks are not &kCFTypeArrayCallBacks");
    }
    const ids = count ? pointersOf(values, count).map((p) => this.idOf(this.real(p))) : [];
    ids.forEach((id) => this.retain(id));
    const id = this.newObj({ t: "array", v: ids });
    this.record({ name: "CFArrayCreate", value: this.decode(id) });
    return this.ptr(id);
  }

  protected real(p: bigint): Deno.PointerObject {
    const ptr = Deno.UnsafePointer.create(p);
    this.entry(ptr, "element");
    return ptr!;
  }

  CFArrayGetCount(a: Ptr): bigint {
    return BigInt(this.as(a, "array", "CFArrayGetCount").v.length);
  }

  CFArrayGetValueAtIndex(a: Ptr, i: bigint): Ptr {
    const items = this.as(a, "array", "CFArrayGetValueAtIndex").v;
    const at = index(i, "CFArrayGetValueAtIndex");
    if (at < 0 || at >= items.length) throw new RangeError("CFArrayGetValueAtIndex out of range");
    return this.ptr(items[at]);
  }

  CFDictionaryCreate(alloc: Ptr, keys: Buf, values: Buf, n: bigint, kcb: Ptr, vcb: Ptr): Ptr {
    const count = index(n, "CFDictionaryCreate");
    if (alloc !== null) throw new Error("CFDictionaryCreate: allocator must be NULL");
    if (
      !Deno.UnsafePointer.equals(kcb, this.statics.dictKeyCallBacks) ||
      !Deno.UnsafePointer.equals(vcb, this.statics.dictValueCallBacks)
    ) throw new Error("CFDictionaryCreate: callbacks are not the kCFType ones");
    const ks = count ? pointersOf(keys, count).map((p) => this.idOf(this.real(p))) : [];
    const vs = count ? pointersOf(values, count).map((p) => this.idOf(this.real(p))) : [];
    [...ks, ...vs].forEach((id) => this.retain(id));
    const id = this.newObj({ t: "dict", v: ks.map((k, i) => [k, vs[i]]) });
    this.record({ name: "CFDictionaryCreate", value: this.decode(id) });
    return this.ptr(id);
  }

  CFDictionaryGetCount(d: Ptr): bigint {
    return BigInt(this.as(d, "dict", "CFDictionaryGetCount").v.length);
  }

  CFDictionaryGetKeysAndValues(d: Ptr, keys: Buf, values: Buf): void {
    const entries = this.as(d, "dict", "CFDictionaryGetKeysAndValues").v;
    const k = bytesOf(keys), v = bytesOf(values);
    const kv = new DataView(k.buffer, k.byteOffset), vv = new DataView(v.buffer, v.byteOffset);
    entries.forEach(([key, val], i) => {
      kv.setBigUint64(8 * i, BigInt(key), true);
      vv.setBigUint64(8 * i, BigInt(val), true);
    });
  }

  CFGetTypeID(p: Ptr): bigint {
    const t = this.entry(p, "CFGetTypeID").obj.t;
    return t in TYPE ? TYPE[t as keyof typeof TYPE] : 999n;
  }

  CFStringGetTypeID = () => TYPE.string;
  CFNumberGetTypeID = () => TYPE.number;
  CFBooleanGetTypeID = () => TYPE.boolean;
  CFArrayGetTypeID = () => TYPE.array;
  CFDictionaryGetTypeID = () => TYPE.dict;

  CFRelease(p: Ptr): void {
    if (p === null) throw new Error("CFRelease(NULL): halts the process on a Mac");
    const e = this.entry(p, "CFRelease");
    if (e.immortal) throw new Error(`CFRelease of a static (${e.obj.t}): never release those`);
    this.record({ name: "CFRelease", type: e.obj.t });
    this.drop(this.idOf(p));
  }

  protected drop(id: number): void {
    const e = this.objs.get(id)!;
    if (e.immortal || --e.refs > 0) return;
    this.objs.delete(id);
    const o = e.obj;
    if (o.t === "array") o.v.forEach((c) => this.drop(c));
    if (o.t === "dict") o.v.forEach(([k, v]) => (this.drop(k), this.drop(v)));
    if (o.t === "opaque") this.freed(o.v);
  }
}
