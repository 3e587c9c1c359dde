/**
 * The CoreFoundation bindings (ffi/darwin/cf.ts) and property-list conversion (plist.ts) against
 * the fake CF, which throws on what would crash or leak on a Mac. The declaration table is
 * checked for the ABI traps, and the static-dereference helper runs for real against glibc.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  CF_FUNCTIONS,
  CF_STATICS,
  derefStatic,
  kCFStringEncodingUTF8,
  SC_FUNCTIONS,
} from "../../ffi/darwin/cf.ts";
import { FakeDarwinSC } from "../../ffi/darwin/fake_sc.ts";
import { fromCF, type Plist, plistEqual, release, toCF } from "../../ffi/darwin/plist.ts";

Deno.test("declarations: no variadic calls, CFIndex parameters and results are isize", () => {
  const all: Record<string, { parameters: readonly string[]; result: string }> = {
    ...CF_FUNCTIONS,
    ...SC_FUNCTIONS,
  };
  for (
    const bad of ["CFStringCreateWithFormat", "SCDynamicStoreKeyCreate", "SCDynamicStoreCreate"]
  ) {
    assert.ok(!(bad in all), `${bad} must not be bound`);
  }
  // The positions that are CFIndex / CFNumberType in the C headers.
  const cfIndex: Record<string, number[]> = {
    CFStringGetCString: [2],
    CFNumberCreate: [1],
    CFNumberGetValue: [1],
    CFArrayCreate: [2],
    CFArrayGetValueAtIndex: [1],
    CFDictionaryCreate: [3],
  };
  for (const [name, positions] of Object.entries(cfIndex)) {
    for (const i of positions) assert.equal(all[name].parameters[i], "isize", `${name} arg ${i}`);
  }
  for (const name of ["CFStringGetLength", "CFArrayGetCount", "CFDictionaryGetCount"]) {
    assert.equal(all[name].result, "isize", name);
  }
  // Boolean is an unsigned char.
  for (const name of ["CFStringGetCString", "CFBooleanGetValue", "SCDynamicStoreSetMultiple"]) {
    assert.equal(all[name].result, "u8", name);
  }
  assert.equal(kCFStringEncodingUTF8, 0x08000100);
  assert.deepEqual(
    Object.values(CF_STATICS).map((s) => s.type),
    ["pointer", "pointer", "pointer", "pointer", "pointer"],
  );
});

Deno.test({
  name: "derefStatic reads the pointer a `pointer` static's address holds (glibc stdout)",
  ignore: Deno.build.os !== "linux",
  fn() {
    const lib = Deno.dlopen("libc.so.6", {
      stdout: { type: "pointer" },
      fileno: { parameters: ["pointer"], result: "i32" },
    });
    try {
      const addr = lib.symbols.stdout;
      const file = derefStatic(addr, "stdout");
      // The address itself is not the FILE*, the value stored there is.
      assert.notEqual(Deno.UnsafePointer.value(addr), Deno.UnsafePointer.value(file));
      assert.equal(lib.symbols.fileno(file), 1);
      assert.throws(() => derefStatic(null, "x"), /NULL/);
    } finally {
      lib.close();
    }
  },
});

const plist: fc.Arbitrary<Plist> = fc.letrec<{ v: Plist }>((tie) => ({
  v: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.string({ unit: "grapheme" }).filter((s) => !s.includes("\0")),
    fc.integer(),
    fc.maxSafeInteger(),
    fc.constantFrom(2 ** 31, -(2 ** 31) - 1, 2 ** 53 - 1),
    fc.boolean(),
    fc.array(tie("v"), { maxLength: 4 }),
    fc.dictionary(
      fc.string({ unit: "grapheme", maxLength: 8 }).filter((s) => !s.includes("\0")),
      tie("v"),
      {
        maxKeys: 4,
      },
    ),
  ),
})).v;

Deno.test("toCF → fromCF round-trips nested plists (UTF-8, ≥ 2^31 as SInt64); nothing leaks", () => {
  const sc = new FakeDarwinSC();
  fc.assert(
    fc.property(plist, (v) => {
      const ref = toCF(sc, v);
      const back = fromCF(sc, ref);
      release(sc, ref);
      assert.ok(plistEqual(back, v), `${JSON.stringify(v)} → ${JSON.stringify(back)}`);
      assert.equal(sc.live, 0);
    }),
  );
  // The fake would have thrown on CFRelease(NULL), a released kCFBoolean or a double release.
  assert.ok(!sc.calls.some((c) => c.name === "CFRelease" && c.type === "boolean"));
});

Deno.test("numbers: int32 as SInt32 (type 3), wider as SInt64 (type 4); floats refused", () => {
  const sc = new FakeDarwinSC();
  for (const [v, type] of [[1, 3], [-(2 ** 31), 3], [2 ** 31, 4], [-(2 ** 40), 4]]) {
    release(sc, toCF(sc, v));
    assert.deepEqual(sc.calls.at(-2), { name: "CFNumberCreate", type, value: v });
  }
  assert.throws(() => toCF(sc, 1.5), /not an integer/);
  assert.equal(sc.live, 0);
});

Deno.test("containers hold their children: a dict built, read and released leaves no object", () => {
  const sc = new FakeDarwinSC();
  const v = { Addresses: ["10.0.0.2", "10.0.0.3"], OverridePrimary: 1, IsNULL: true, É: "ü" };
  const ref = toCF(sc, v);
  // Only what the dict reaches stays: itself, 4 keys, the array and its 2 strings, the number and
  // "ü" (the boolean is the immortal static). The children's own +1 was dropped at once.
  assert.equal(sc.live, 10);
  assert.deepEqual(fromCF(sc, ref), v);
  release(sc, ref);
  assert.equal(sc.live, 0);
});

Deno.test("plistEqual: deep, and dictionary key order does not matter", () => {
  assert.ok(plistEqual({ a: [1, { b: true }], c: "x" }, { c: "x", a: [1, { b: true }] }));
  assert.ok(!plistEqual({ a: [1] }, { a: [1, 2] }));
  assert.ok(!plistEqual({ a: 1 }, { a: 1, b: 2 }));
  assert.ok(!plistEqual([1], { 0: 1 }));
  assert.ok(!plistEqual("1", 1));
  assert.ok(!plistEqual(undefined, {}));
});
