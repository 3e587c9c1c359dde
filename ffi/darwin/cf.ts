/**
 * CoreFoundation + SystemConfiguration through Deno.dlopen (macos-dns-routes §3.1–3.2): just the
 * ~25 non-variadic calls that publishing a network service in configd's dynamic store needs.
 * Everything above takes a `DarwinSC`, so tests on Linux pass a fake (fake_sc.ts) that models CF
 * reference counting and configd; `darwinSC()` is the real thing.
 *
 * Traps this table encodes: CFIndex/CFNumberType are 64-bit (`isize`, bigint), Boolean is a byte,
 * and the variadic CFStringCreateWithFormat/SCDynamicStoreKeyCreate are not bound at all (keys
 * are built in JS). A Deno `"pointer"` static is the symbol's address: the callback structs are
 * passed as-is, the kCFBoolean* variables are read through it (`derefStatic`).
 */

export const CF_PATH = "/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation";
export const SC_PATH =
  "/System/Library/Frameworks/SystemConfiguration.framework/SystemConfiguration";

export const kCFStringEncodingUTF8 = 0x08000100;
export const kCFNumberSInt32Type = 3n;
export const kCFNumberSInt64Type = 4n;

const typeId = { parameters: [], result: "usize" } as const;

export const CF_FUNCTIONS = {
  CFStringCreateWithCString: { parameters: ["pointer", "buffer", "u32"], result: "pointer" },
  CFStringGetLength: { parameters: ["pointer"], result: "isize" },
  CFStringGetCString: { parameters: ["pointer", "buffer", "isize", "u32"], result: "u8" },
  CFNumberCreate: { parameters: ["pointer", "isize", "buffer"], result: "pointer" },
  CFNumberGetValue: { parameters: ["pointer", "isize", "buffer"], result: "u8" },
  CFBooleanGetValue: { parameters: ["pointer"], result: "u8" },
  CFArrayCreate: { parameters: ["pointer", "buffer", "isize", "pointer"], result: "pointer" },
  CFArrayGetCount: { parameters: ["pointer"], result: "isize" },
  CFArrayGetValueAtIndex: { parameters: ["pointer", "isize"], result: "pointer" },
  CFDictionaryCreate: {
    parameters: ["pointer", "buffer", "buffer", "isize", "pointer", "pointer"],
    result: "pointer",
  },
  CFDictionaryGetCount: { parameters: ["pointer"], result: "isize" },
  CFDictionaryGetKeysAndValues: { parameters: ["pointer", "buffer", "buffer"], result: "void" },
  CFGetTypeID: { parameters: ["pointer"], result: "usize" },
  CFStringGetTypeID: typeId,
  CFNumberGetTypeID: typeId,
  CFBooleanGetTypeID: typeId,
  CFArrayGetTypeID: typeId,
  CFDictionaryGetTypeID: typeId,
  CFRelease: { parameters: ["pointer"], result: "void" },
} as const;

export const CF_STATICS = {
  kCFTypeArrayCallBacks: { type: "pointer" },
  kCFTypeDictionaryKeyCallBacks: { type: "pointer" },
  kCFTypeDictionaryValueCallBacks: { type: "pointer" },
  kCFBooleanTrue: { type: "pointer" },
  kCFBooleanFalse: { type: "pointer" },
} as const;

export const SC_FUNCTIONS = {
  SCDynamicStoreCreateWithOptions: {
    parameters: ["pointer", "pointer", "pointer", "pointer", "pointer"],
    result: "pointer",
  },
  SCDynamicStoreCopyValue: { parameters: ["pointer", "pointer"], result: "pointer" },
  SCDynamicStoreSetMultiple: {
    parameters: ["pointer", "pointer", "pointer", "pointer"],
    result: "u8",
  },
  SCDynamicStoreRemoveValue: { parameters: ["pointer", "pointer"], result: "u8" },
  SCDynamicStoreCopyKeyList: { parameters: ["pointer", "pointer"], result: "pointer" },
  SCError: { parameters: [], result: "i32" },
  SCErrorString: { parameters: ["i32"], result: "pointer" },
} as const;

type Fns =
  & Deno.StaticForeignLibraryInterface<typeof CF_FUNCTIONS>
  & Deno.StaticForeignLibraryInterface<typeof SC_FUNCTIONS>;

/** The CF statics, ready to pass to C. */
export interface CfStatics {
  /** Addresses of the callback structs (passed as-is). */
  arrayCallBacks: Deno.PointerObject;
  dictKeyCallBacks: Deno.PointerObject;
  dictValueCallBacks: Deno.PointerObject;
  /** The immortal CFBooleanRefs themselves (read through the static's address); never released. */
  booleanTrue: Deno.PointerObject;
  booleanFalse: Deno.PointerObject;
}

/** The CF/SC calls ffi/darwin makes, plus the statics. */
export type DarwinSC = Fns & { readonly statics: CfStatics };

/** A `"pointer"` static is the variable's address: read the pointer stored there. */
export function derefStatic(address: Deno.PointerValue, name: string): Deno.PointerObject {
  if (address === null) throw new Error(`${name}: the static's address is NULL`);
  const p = new Deno.UnsafePointerView(address).getPointer(0);
  if (p === null) throw new Error(`${name} holds NULL`);
  return p;
}

function nonNull(p: Deno.PointerValue, name: string): Deno.PointerObject {
  if (p === null) throw new Error(`${name}: the static's address is NULL`);
  return p;
}

let real: DarwinSC | undefined;

/** CoreFoundation and SystemConfiguration (macOS only; throws elsewhere or if dlopen fails). */
export function darwinSC(): DarwinSC {
  if (real) return real;
  if (Deno.build.os !== "darwin") throw new Error(`darwinSC() called on ${Deno.build.os}`);
  // Not on disk since Big Sur: dyld serves both from the shared cache by these exact paths.
  const cf = Deno.dlopen(CF_PATH, { ...CF_FUNCTIONS, ...CF_STATICS }).symbols;
  const sc = Deno.dlopen(SC_PATH, SC_FUNCTIONS).symbols;
  const {
    kCFTypeArrayCallBacks,
    kCFTypeDictionaryKeyCallBacks,
    kCFTypeDictionaryValueCallBacks,
    kCFBooleanTrue,
    kCFBooleanFalse,
    ...cfFns
  } = cf;
  const statics: CfStatics = {
    arrayCallBacks: nonNull(kCFTypeArrayCallBacks, "kCFTypeArrayCallBacks"),
    dictKeyCallBacks: nonNull(kCFTypeDictionaryKeyCallBacks, "kCFTypeDictionaryKeyCallBacks"),
    dictValueCallBacks: nonNull(kCFTypeDictionaryValueCallBacks, "kCFTypeDictionaryValueCallBacks"),
    booleanTrue: derefStatic(kCFBooleanTrue, "kCFBooleanTrue"),
    booleanFalse: derefStatic(kCFBooleanFalse, "kCFBooleanFalse"),
  };
  real = { ...cfFns, ...sc, statics };
  return real;
}
