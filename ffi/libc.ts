/**
 * libc through Deno.dlopen, opened lazily (cold start, and importing this on an OS whose table is
 * not written yet must not fail). One symbol table per OS; errno is read through the OS's accessor
 * right after a *synchronous* call — a `nonblocking: true` call runs on a pool thread, so its errno
 * is unreachable (os-ffi §2.4).
 *
 * Adding darwin: write `DARWIN_SYMBOLS` (9-argument ioctl/fcntl, os-ffi §2.3) and a `darwinLibc()`
 * next to `linuxLibc()`, and register `__error` in `ERRNO_READERS`. Errno names are already here.
 */

/** A failed libc call: which call, errno and its symbolic name (EPERM, EEXIST, ...). */
export class OsError extends Error {
  override name = "OsError";
  constructor(readonly call: string, readonly errno: number, readonly code: string) {
    super(`${call}: ${code} (errno ${errno})`);
  }
}

const LINUX_ERRNO: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  3: "ESRCH",
  4: "EINTR",
  5: "EIO",
  6: "ENXIO",
  9: "EBADF",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  14: "EFAULT",
  16: "EBUSY",
  17: "EEXIST",
  19: "ENODEV",
  22: "EINVAL",
  23: "ENFILE",
  24: "EMFILE",
  25: "ENOTTY",
  28: "ENOSPC",
  34: "ERANGE",
  90: "EMSGSIZE",
  93: "EPROTONOSUPPORT",
  95: "EOPNOTSUPP",
  97: "EAFNOSUPPORT",
  98: "EADDRINUSE",
  99: "EADDRNOTAVAIL",
  100: "ENETDOWN",
  101: "ENETUNREACH",
  105: "ENOBUFS",
  110: "ETIMEDOUT",
  111: "ECONNREFUSED",
  113: "EHOSTUNREACH",
};

const DARWIN_ERRNO: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  3: "ESRCH",
  4: "EINTR",
  9: "EBADF",
  13: "EACCES",
  16: "EBUSY",
  17: "EEXIST",
  22: "EINVAL",
  35: "EAGAIN",
  39: "EDESTADDRREQ",
  43: "EPROTONOSUPPORT",
  47: "EAFNOSUPPORT",
  49: "EADDRNOTAVAIL",
  51: "ENETUNREACH",
  55: "ENOBUFS",
  65: "EHOSTUNREACH",
};

/** Numeric errno values this code branches on, per OS (they differ: EAGAIN is 11 vs 35). */
export const LINUX_E = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  ENXIO: 6,
  EAGAIN: 11,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ENETUNREACH: 101,
  EHOSTUNREACH: 113,
} as const;

/** "EPERM" for 1 on Linux; "E<n>" for numbers not in the table. */
export function errnoName(errno: number, os: string = Deno.build.os): string {
  const table = os === "darwin" ? DARWIN_ERRNO : LINUX_ERRNO;
  return table[errno] ?? `E${errno}`;
}

/**
 * Linux glibc symbols (x86_64 and arm64). Variadic open/ioctl/fcntl are declared with fixed
 * parameters, which is ABI-safe on these targets (os-ffi §2.2). 64-bit parameters must be passed
 * as BigInt to stay on V8's fast path (deno-platform §1).
 */
const LINUX_SYMBOLS = {
  __errno_location: { parameters: [], result: "pointer" },
  open: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  /** Pointer, not buffer: the TUN reader reads straight into an arena at an offset. */
  read: { parameters: ["i32", "pointer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  if_nametoindex: { parameters: ["buffer"], result: "u32" },
  if_indextoname: { parameters: ["u32", "buffer"], result: "pointer" },
  /** Waits on a pool thread; only ever used to wait, never for errno (os-ffi §1 item 8). */
  poll_nb: { name: "poll", parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
} as const satisfies Deno.ForeignLibraryInterface;

export type LinuxLibc = Deno.DynamicLibrary<typeof LINUX_SYMBOLS>["symbols"];

/** Path and errno accessor per OS (os-ffi §2.1). */
const LIBRARY_PATHS: Record<string, string> = {
  linux: "libc.so.6",
  darwin: "/usr/lib/libSystem.B.dylib",
};

let linux: Deno.DynamicLibrary<typeof LINUX_SYMBOLS> | undefined;

/** The Linux libc, opened on first use. Throws on other OSes. */
export function linuxLibc(): LinuxLibc {
  if (Deno.build.os !== "linux") throw new Error(`linuxLibc() called on ${Deno.build.os}`);
  linux ??= Deno.dlopen(LIBRARY_PATHS.linux, LINUX_SYMBOLS);
  return linux.symbols;
}

/** errno readers per OS; each must be called right after the failing synchronous call. */
const ERRNO_READERS: Record<string, () => Deno.PointerValue> = {
  linux: () => linuxLibc().__errno_location(),
};

/** The calling thread's errno. Only meaningful straight after a failed synchronous call. */
export function errno(): number {
  const reader = ERRNO_READERS[Deno.build.os];
  if (!reader) throw new Error(`no errno accessor for ${Deno.build.os}`);
  const p = reader();
  if (p === null) throw new Error("errno accessor returned NULL");
  return new Deno.UnsafePointerView(p).getInt32(0);
}

/** An OsError for the errno just left by `call`. */
export function lastError(call: string): OsError {
  const n = errno();
  return new OsError(call, n, errnoName(n));
}

/** Return `ret` as a number, or throw an OsError naming `call` when it is negative. */
export function check(call: string, ret: number | bigint): number {
  const n = Number(ret);
  if (n < 0) throw lastError(call);
  return n;
}

/** A NUL-terminated C string (for paths and interface names). */
export function cString(s: string): Uint8Array<ArrayBuffer> {
  const bytes = new TextEncoder().encode(s);
  if (bytes.includes(0)) throw new Error(`NUL inside C string ${JSON.stringify(s)}`);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}
