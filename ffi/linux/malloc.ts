/**
 * glibc's allocator, asked to give freed memory back. Deno's Rust side (module loading, socket
 * and WebSocket buffers, ArrayBuffer backing stores) allocates through malloc, and glibc keeps
 * what is freed: measured in the lab, 35 of a client's 47 MB malloc arena were free after start,
 * and stayed resident until malloc_trim(0) returned them. Opened apart from ffi/libc.ts so a
 * libc without these symbols (musl) only loses the trim.
 */

const SYMBOLS = {
  malloc_trim: { parameters: ["usize"], result: "i32" },
  // struct mallinfo2: ten size_t fields (arena, ordblks, smblks, hblks, hblkhd, usmblks,
  // fsmblks, uordblks, fordblks, keepcost).
  mallinfo2: { parameters: [], result: { struct: Array(10).fill("usize") } },
} as const;

type Lib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
let lib: Lib | null | undefined;

function open(): Lib | null {
  if (lib !== undefined) return lib;
  try {
    lib = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  } catch {
    lib = null;
  }
  return lib;
}

export interface MallocInfo {
  /** Bytes in the main arena and the mmapped chunks: what malloc holds from the OS. */
  heldBytes: number;
  /** Bytes handed out and not freed. */
  inUseBytes: number;
  /** Bytes free inside the arenas: what a trim could return. */
  freeBytes: number;
}

/** Decode a struct mallinfo2 (ten native-endian size_t). */
export function decodeMallinfo2(raw: Uint8Array): MallocInfo {
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const f = (i: number) => Number(v.getBigUint64(i * 8, true));
  return { heldBytes: f(0) + f(4), inUseBytes: f(7), freeBytes: f(8) };
}

/** The allocator's counters; undefined where glibc is not there. */
export function mallocInfo(): MallocInfo | undefined {
  const l = open();
  return l ? decodeMallinfo2(l.mallinfo2()) : undefined;
}

/** Return free pages to the OS; true when some were. Takes ~1–40 ms, so not per packet. */
export function mallocTrim(): boolean {
  const l = open();
  return l ? l.malloc_trim(0n) === 1 : false;
}
