/**
 * The seam between the darwin I/O code and libSystem. Everything in ffi/darwin that makes a call
 * takes a `DarwinSys`, so tests on Linux pass a fake that records each call and scripts results
 * and errno (fake_libc.ts); `darwinSys()` is the real thing. The helpers here are the only place
 * that knows the 9-argument ioctl/fcntl calling convention (os-ffi §2.3).
 */
import { darwinLibc, errno as readErrno, errnoName, OsError } from "../libc.ts";
import { IOCTL_NAMES } from "./constants.ts";

type Buf = Uint8Array<ArrayBuffer>;

/** The libSystem calls ffi/darwin makes, plus errno of the calling thread. */
export interface DarwinSys {
  socket(domain: number, type: number, protocol: number): number;
  connect(fd: number, addr: Buf, len: number): number;
  getsockopt(fd: number, level: number, name: number, value: Buf, len: Buf): number;
  ioctl(
    fd: number,
    req: bigint,
    arg: Buf,
    a3: bigint,
    a4: bigint,
    a5: bigint,
    a6: bigint,
    a7: bigint,
    arg9: Buf,
  ): number;
  fcntl(
    fd: number,
    cmd: number,
    v: bigint,
    a3: bigint,
    a4: bigint,
    a5: bigint,
    a6: bigint,
    a7: bigint,
    v9: bigint,
  ): number;
  read(fd: number, buf: Buf, n: bigint): number | bigint;
  write(fd: number, buf: Buf, n: bigint): number | bigint;
  close(fd: number): number;
  pipe(fds: Buf): number;
  getpid(): number;
  if_nametoindex(name: Buf): number;
  if_indextoname(index: number, buf: Buf): Deno.PointerValue;
  /** Nonblocking: waits on a pool thread. nfds_t is u32 on darwin. */
  poll_nb(fds: Buf, nfds: number, timeoutMs: number): Promise<number>;
  /** errno, read straight after a failed synchronous call. */
  errno(): number;
}

let real: DarwinSys | undefined;

/** libSystem (macOS only; throws elsewhere). */
export function darwinSys(): DarwinSys {
  if (real) return real;
  const lib = darwinLibc();
  real = { ...lib, errno: readErrno };
  return real;
}

/** An OsError for the errno `sys` just left, with darwin's errno names. */
export function sysError(sys: DarwinSys, call: string): OsError {
  const n = sys.errno();
  return new OsError(call, n, errnoName(n, "darwin"));
}

/** `ret` as a number, or an OsError naming `call` when it is negative. */
export function sysCheck(sys: DarwinSys, call: string, ret: number | bigint): number {
  const n = Number(ret);
  if (n < 0) throw sysError(sys, call);
  return n;
}

/**
 * ioctl with the pointer 3rd (x86_64 reads it from rdx) and 9th (Apple arm64 reads a variadic
 * argument from the first stack slot, which is where a 9th fixed argument goes). Throws OsError.
 */
export function ioctl(sys: DarwinSys, fd: number, req: number, arg: Buf, what = ""): number {
  const ret = sys.ioctl(fd, BigInt(req), arg, 0n, 0n, 0n, 0n, 0n, arg);
  const name = IOCTL_NAMES[req] ?? `ioctl 0x${req.toString(16)}`;
  return sysCheck(sys, what ? `${name} ${what}` : name, ret);
}

/** fcntl with the int argument 3rd and 9th, for the same reason as ioctl. */
export function fcntl(sys: DarwinSys, fd: number, cmd: number, v = 0): number {
  const b = BigInt(v);
  return sysCheck(sys, `fcntl ${cmd}`, sys.fcntl(fd, cmd, b, 0n, 0n, 0n, 0n, 0n, b));
}

/** A NUL-terminated interface name. */
export function cName(s: string): Buf {
  const bytes = new TextEncoder().encode(s);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/** if_nametoindex; 0 when the interface does not exist. */
export function nameToIndex(sys: DarwinSys, name: string): number {
  return sys.if_nametoindex(cName(name));
}

/** if_indextoname; undefined when there is no such interface. */
export function indexToName(sys: DarwinSys, index: number): string | undefined {
  const buf = new Uint8Array(16);
  if (sys.if_indextoname(index, buf) === null) return undefined;
  const end = buf.indexOf(0);
  return new TextDecoder().decode(buf.subarray(0, end < 0 ? 16 : end));
}
