/**
 * Property lists between JS values and CF objects (macos-dns-routes §3.3), over a `DarwinSC`.
 * `toCF` returns a reference the caller drops once with `release`; `fromCF` only reads (its ref stays the
 * caller's). Children fetched with Get* are borrowed and never released; containers retain what
 * they are created with, so the children's own +1 is dropped right after. `plistEqual` is pure.
 */
import {
  type DarwinSC,
  kCFNumberSInt32Type,
  kCFNumberSInt64Type,
  kCFStringEncodingUTF8,
} from "./cf.ts";

/** What configd's State: keys hold here: strings, integers, booleans, arrays, dictionaries. */
export type Plist = string | number | boolean | Plist[] | { [key: string]: Plist };

/** A CF call returned NULL or a value of a type we do not read. */
export class CfError extends Error {
  override name = "CfError";
}

/**
 * Drop a reference from `toCF` or a Create/Copy call: never CFRelease(NULL) (that halts the
 * process), and never the immortal kCFBoolean* (toCF hands those out without a +1).
 */
export function release(sc: DarwinSC, ref: Deno.PointerValue): void {
  if (ref === null) return;
  const { booleanTrue, booleanFalse } = sc.statics;
  if (Deno.UnsafePointer.equals(ref, booleanTrue) || Deno.UnsafePointer.equals(ref, booleanFalse)) {
    return;
  }
  sc.CFRelease(ref);
}

function created(ref: Deno.PointerValue, call: string): Deno.PointerObject {
  if (ref === null) throw new CfError(`${call} returned NULL`);
  return ref;
}

/** `const void **` for C: the pointers' addresses in a BigUint64Array. */
function pointerArray(refs: Deno.PointerObject[]): BigUint64Array<ArrayBuffer> {
  return BigUint64Array.from(refs, (r) => BigInt(Deno.UnsafePointer.value(r)));
}

function pointerAt(a: BigUint64Array, i: number): Deno.PointerObject {
  return created(Deno.UnsafePointer.create(a[i]), "CFDictionaryGetKeysAndValues");
}

/** A +1 CFString. */
export function cfString(sc: DarwinSC, s: string): Deno.PointerObject {
  const bytes = new TextEncoder().encode(s);
  const z = new Uint8Array(bytes.length + 1);
  z.set(bytes);
  if (z.subarray(0, bytes.length).includes(0)) throw new CfError("a CFString cannot hold NUL");
  return created(
    sc.CFStringCreateWithCString(null, z, kCFStringEncodingUTF8),
    "CFStringCreateWithCString",
  );
}

/** Convert `children`, hand them to `make`, and drop their +1 (the container retains them). */
function container(
  sc: DarwinSC,
  children: Plist[],
  make: (refs: Deno.PointerObject[]) => Deno.PointerValue,
  call: string,
  keys: string[] = [],
): Deno.PointerObject {
  const refs: Deno.PointerObject[] = [];
  try {
    for (const k of keys) refs.push(cfString(sc, k));
    for (const c of children) refs.push(toCF(sc, c));
    return created(make(refs), call);
  } finally {
    for (const r of refs) release(sc, r);
  }
}

/** A CF object for `v`, to `release` once. Numbers must be integers (configd's numbers are). */
export function toCF(sc: DarwinSC, v: Plist): Deno.PointerObject {
  if (typeof v === "string") return cfString(sc, v);
  if (typeof v === "boolean") return v ? sc.statics.booleanTrue : sc.statics.booleanFalse;
  if (typeof v === "number") {
    if (!Number.isSafeInteger(v)) throw new CfError(`not an integer: ${v}`);
    const small = v >= -(2 ** 31) && v < 2 ** 31;
    const ref = small
      ? sc.CFNumberCreate(null, kCFNumberSInt32Type, Int32Array.of(v))
      : sc.CFNumberCreate(null, kCFNumberSInt64Type, BigInt64Array.of(BigInt(v)));
    return created(ref, "CFNumberCreate");
  }
  if (Array.isArray(v)) {
    return container(
      sc,
      v,
      (refs) =>
        sc.CFArrayCreate(null, pointerArray(refs), BigInt(refs.length), sc.statics.arrayCallBacks),
      "CFArrayCreate",
    );
  }
  const keys = Object.keys(v);
  return container(
    sc,
    keys.map((k) => v[k]),
    (refs) =>
      sc.CFDictionaryCreate(
        null,
        pointerArray(refs.slice(0, keys.length)),
        pointerArray(refs.slice(keys.length)),
        BigInt(keys.length),
        sc.statics.dictKeyCallBacks,
        sc.statics.dictValueCallBacks,
      ),
    "CFDictionaryCreate",
    keys,
  );
}

interface TypeIds {
  string: bigint;
  number: bigint;
  boolean: bigint;
  array: bigint;
  dict: bigint;
}
const typeIds = new WeakMap<DarwinSC, TypeIds>();

function idsOf(sc: DarwinSC): TypeIds {
  let ids = typeIds.get(sc);
  if (!ids) {
    ids = {
      string: sc.CFStringGetTypeID(),
      number: sc.CFNumberGetTypeID(),
      boolean: sc.CFBooleanGetTypeID(),
      array: sc.CFArrayGetTypeID(),
      dict: sc.CFDictionaryGetTypeID(),
    };
    typeIds.set(sc, ids);
  }
  return ids;
}

/** A CFString's text (UTF-8). */
export function readCFString(sc: DarwinSC, ref: Deno.PointerObject): string {
  // Length is in UTF-16 units; one unit is at most 3 UTF-8 bytes, 4 leaves room.
  const size = Number(sc.CFStringGetLength(ref)) * 4 + 1;
  const buf = new Uint8Array(size);
  if (sc.CFStringGetCString(ref, buf, BigInt(size), kCFStringEncodingUTF8) === 0) {
    throw new CfError("CFStringGetCString failed");
  }
  const end = buf.indexOf(0);
  return new TextDecoder().decode(buf.subarray(0, end < 0 ? size : end));
}

/** The JS value of a CF property list; `ref` stays owned by the caller. */
export function fromCF(sc: DarwinSC, ref: Deno.PointerObject): Plist {
  const ids = idsOf(sc);
  const t = sc.CFGetTypeID(ref);
  if (t === ids.string) return readCFString(sc, ref);
  if (t === ids.boolean) return sc.CFBooleanGetValue(ref) !== 0;
  if (t === ids.number) {
    const out = new BigInt64Array(1);
    // False means "lossy" (a float): configd's numbers here are integers.
    if (sc.CFNumberGetValue(ref, kCFNumberSInt64Type, out) === 0) {
      throw new CfError("a CFNumber that is not an integer");
    }
    return Number(out[0]);
  }
  if (t === ids.array) {
    const n = Number(sc.CFArrayGetCount(ref));
    return Array.from({ length: n }, (_, i) => {
      const child = sc.CFArrayGetValueAtIndex(ref, BigInt(i));
      return fromCF(sc, created(child, "CFArrayGetValueAtIndex"));
    });
  }
  if (t === ids.dict) {
    const n = Number(sc.CFDictionaryGetCount(ref));
    const keys = new BigUint64Array(n), vals = new BigUint64Array(n);
    if (n > 0) sc.CFDictionaryGetKeysAndValues(ref, keys, vals);
    const out: { [key: string]: Plist } = {};
    for (let i = 0; i < n; i++) {
      const k = fromCF(sc, pointerAt(keys, i));
      if (typeof k !== "string") throw new CfError("a dictionary key that is not a string");
      out[k] = fromCF(sc, pointerAt(vals, i));
    }
    return out;
  }
  throw new CfError(`a CF type this code does not read (type id ${t})`);
}

/** Deep equality; dictionary key order does not matter (CF dictionaries have none). */
export function plistEqual(a: Plist | undefined, b: Plist | undefined): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object") return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length &&
      a.every((x, i) => plistEqual(x, b[i]));
  }
  const ka = Object.keys(a), kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && plistEqual(a[k], b[k]));
}
