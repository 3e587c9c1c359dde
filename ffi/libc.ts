/**
 * libc through Deno.dlopen, opened lazily (cold start, and importing this on an OS whose table is
 * not written yet must not fail). One symbol table per OS; errno is read through the OS's accessor
 * right after a *synchronous* call — a `nonblocking: true` call runs on a pool thread, so its errno
 * is unreachable (os-ffi §2.4).
 *
 * darwin: `DARWIN_SYMBOLS` (9-argument ioctl/fcntl, os-ffi §2.3) through `darwinLibc()`, errno
 * through `__error`. ffi/darwin takes these through a `DarwinSys` object so tests can fake them.
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
  5: "EIO",
  6: "ENXIO",
  9: "EBADF",
  12: "ENOMEM",
  13: "EACCES",
  14: "EFAULT",
  16: "EBUSY",
  17: "EEXIST",
  19: "ENODEV",
  22: "EINVAL",
  24: "EMFILE",
  25: "ENOTTY",
  35: "EAGAIN",
  39: "EDESTADDRREQ",
  40: "EMSGSIZE",
  43: "EPROTONOSUPPORT",
  45: "ENOTSUP",
  47: "EAFNOSUPPORT",
  48: "EADDRINUSE",
  49: "EADDRNOTAVAIL",
  50: "ENETDOWN",
  51: "ENETUNREACH",
  55: "ENOBUFS",
  57: "ENOTCONN",
  60: "ETIMEDOUT",
  61: "ECONNREFUSED",
  65: "EHOSTUNREACH",
  102: "EOPNOTSUPP",
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

/** The darwin numbers this code branches on (os-ffi §3.1; same on arm64 and x86_64). */
export const DARWIN_E = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  ENXIO: 6,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  EAGAIN: 35,
  EDESTADDRREQ: 39,
  EMSGSIZE: 40,
  EADDRNOTAVAIL: 49,
  ENETUNREACH: 51,
  ENOBUFS: 55,
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

/**
 * libSystem symbols (macOS arm64 and x86_64). ioctl and fcntl are variadic: on Apple arm64 the
 * variadic argument travels on the stack, so they are declared with 9 fixed parameters and called
 * with the real argument both 3rd (x2, for x86_64) and 9th (the first stack slot, for arm64);
 * os-ffi §2.3. The 9th parameter must be a 64-bit type. Everything whose errno matters is
 * synchronous; only poll is nonblocking, and nfds_t is u32 here (u64 on Linux).
 */
export const DARWIN_SYMBOLS = {
  __error: { parameters: [], result: "pointer" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  ioctl: {
    parameters: ["i32", "u64", "buffer", "i64", "i64", "i64", "i64", "i64", "buffer"],
    result: "i32",
  },
  fcntl: {
    parameters: ["i32", "i32", "i64", "i64", "i64", "i64", "i64", "i64", "i64"],
    result: "i32",
  },
  /** Buffer, not pointer: the reader passes a subarray of its arena (byteOffset is honoured). */
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  pipe: { parameters: ["buffer"], result: "i32" },
  getpid: { parameters: [], result: "i32" },
  if_nametoindex: { parameters: ["buffer"], result: "u32" },
  if_indextoname: { parameters: ["u32", "buffer"], result: "pointer" },
  /** Waits on a pool thread; only ever used to wait, never for errno (os-ffi §1 item 8). */
  poll_nb: { name: "poll", parameters: ["buffer", "u32", "i32"], result: "i32", nonblocking: true },
} as const satisfies Deno.ForeignLibraryInterface;

export type DarwinLibc = Deno.DynamicLibrary<typeof DARWIN_SYMBOLS>["symbols"];

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

let darwin: Deno.DynamicLibrary<typeof DARWIN_SYMBOLS> | undefined;

/** libSystem, opened on first use (dyld resolves it from the shared cache). Throws elsewhere. */
export function darwinLibc(): DarwinLibc {
  if (Deno.build.os !== "darwin") throw new Error(`darwinLibc() called on ${Deno.build.os}`);
  darwin ??= Deno.dlopen(LIBRARY_PATHS.darwin, DARWIN_SYMBOLS);
  return darwin.symbols;
}

/** errno readers per OS; each must be called right after the failing synchronous call. */
const ERRNO_READERS: Record<string, () => Deno.PointerValue> = {
  linux: () => linuxLibc().__errno_location(),
  darwin: () => darwinLibc().__error(),
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
