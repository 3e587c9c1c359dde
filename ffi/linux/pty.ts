/**
 * A Linux pseudo-terminal through libc (posix_openpt, grantpt, unlockpt, ptsname_r, TIOCSWINSZ)
 * and a child process that makes its slave side its controlling terminal.
 *
 * I/O on the master follows ffi/linux/tun.ts (deno-platform §2): the fd is O_NONBLOCK; a read is
 * a synchronous read() and only on EAGAIN do we wait in a `nonblocking: true` poll() that also
 * watches an eventfd, so close() wakes a pending wait at once. Writes that meet EAGAIN (the
 * slave's line discipline is full because the program does not read) wait for POLLOUT, so a slow
 * reader holds the writer back instead of the kernel dropping input.
 *
 * Deno.Command cannot hand a child an arbitrary fd or make it a session leader, so the child is
 * `setsid sh -c 'exec 0<>"$1" …'`: setsid(2) gives it a new session, and the first tty it then
 * opens without O_NOCTTY becomes its controlling terminal (so isatty(0), stty, job signals work).
 *
 * Linux only (x86_64 and arm64: plain declarations of the variadic ioctl are ABI-safe there,
 * os-ffi §2.2 and §9.5).
 */
import { check, cString, lastError, LINUX_E, linuxLibc } from "../libc.ts";
import { WaitableFd } from "./waitable_fd.ts";

const O_RDWR = 2;
const O_NOCTTY = 0x100;
const O_NONBLOCK = 0x800;
const O_CLOEXEC = 0x80000;
export const TIOCGWINSZ = 0x5413n;
export const TIOCSWINSZ = 0x5414n;
/** Not in LINUX_E: a pty master reports EIO once no slave fd is open any more (hang-up). */
const EIO = 5;
const READ_SIZE = 64 * 1024;

/** The symbols libc.ts does not carry; opened lazily like it, on the same libc. */
const PTY_SYMBOLS = {
  posix_openpt: { parameters: ["i32"], result: "i32" },
  grantpt: { parameters: ["i32"], result: "i32" },
  unlockpt: { parameters: ["i32"], result: "i32" },
  /** Returns an errno value itself (0 on success), not -1. */
  ptsname_r: { parameters: ["i32", "buffer", "usize"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

let ptyLib: Deno.DynamicLibrary<typeof PTY_SYMBOLS> | undefined;

function ptyLibc(): Deno.DynamicLibrary<typeof PTY_SYMBOLS>["symbols"] {
  if (Deno.build.os !== "linux") {
    throw new Error(`pseudo-terminals need Linux, not ${Deno.build.os}`);
  }
  ptyLib ??= Deno.dlopen("libc.so.6", PTY_SYMBOLS);
  return ptyLib.symbols;
}

/** `struct winsize` (8 bytes, host order): ws_row, ws_col, ws_xpixel, ws_ypixel; rows first. */
export function encodeWinsize(cols: number, rows: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(8);
  const v = new DataView(out.buffer);
  v.setUint16(0, clampU16(rows), true);
  v.setUint16(2, clampU16(cols), true);
  return out;
}

export function decodeWinsize(b: Uint8Array): { cols: number; rows: number } {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return { rows: v.getUint16(0, true), cols: v.getUint16(2, true) };
}

function clampU16(n: number): number {
  return Number.isFinite(n) ? Math.max(0, Math.min(0xffff, Math.trunc(n))) : 0;
}

/**
 * Result of one read: bytes, `"timeout"` (nothing within the wait), `"hangup"` (EIO: no slave fd
 * is open, i.e. before the child opened it or after everyone closed it) or `"closed"`.
 */
export type PtyRead = Uint8Array | "timeout" | "hangup" | "closed";

export class LinuxPty {
  readonly #io: WaitableFd;
  readonly #master: number;
  #slave: number;
  readonly #buf = new Uint8Array(READ_SIZE);
  readonly #bufPtr: Deno.PointerObject;

  private constructor(master: number, slave: number, readonly path: string) {
    this.#master = master;
    this.#slave = slave;
    // Our slave fd goes with the master, once no read or write is under way.
    this.#io = WaitableFd.open(master, () => this.releaseSlave());
    this.#bufPtr = Deno.UnsafePointer.of(this.#buf)!;
  }

  /**
   * A new pty. The master is nonblocking and close-on-exec (a child must never inherit it, or
   * the master would outlive us). We also hold the slave open (O_NOCTTY, close-on-exec) until
   * `releaseSlave()`: until the child has opened it, a master with no slave fd fails reads and
   * writes with EIO, so early input would be lost.
   */
  static open(): LinuxPty {
    const lib = linuxLibc();
    const pty = ptyLibc();
    const master = check("posix_openpt", pty.posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
    let slave = -1;
    try {
      check("grantpt", pty.grantpt(master));
      check("unlockpt", pty.unlockpt(master));
      const name = new Uint8Array(128);
      const err = pty.ptsname_r(master, name, BigInt(name.length));
      if (err !== 0) throw new Error(`ptsname_r: errno ${err}`);
      const path = new TextDecoder().decode(name.subarray(0, name.indexOf(0)));
      const flags = check("fcntl F_GETFL", lib.fcntl(master, 3, /* F_GETFL */ 0));
      check("fcntl F_SETFL", lib.fcntl(master, 4, /* F_SETFL */ flags | O_NONBLOCK));
      slave = check(`open ${path}`, lib.open(cString(path), O_RDWR | O_NOCTTY | O_CLOEXEC, 0));
      return new LinuxPty(master, slave, path);
    } catch (e) {
      lib.close(master);
      if (slave >= 0) lib.close(slave);
      throw e;
    }
  }

  get closed(): boolean {
    return this.#io.closed;
  }

  /** Drop our own slave fd; once every process holding it is gone, reads report "hangup". */
  releaseSlave(): void {
    if (this.#slave < 0) return;
    linuxLibc().close(this.#slave);
    this.#slave = -1;
  }

  /** TIOCSWINSZ on the master; the kernel sends SIGWINCH to the foreground process group. */
  setSize(cols: number, rows: number): void {
    if (this.#io.closed) return;
    check(
      "ioctl TIOCSWINSZ",
      linuxLibc().ioctl(this.#master, TIOCSWINSZ, encodeWinsize(cols, rows)),
    );
  }

  getSize(): { cols: number; rows: number } {
    const ws = new Uint8Array(8);
    check("ioctl TIOCGWINSZ", linuxLibc().ioctl(this.#master, TIOCGWINSZ, ws));
    return decodeWinsize(ws);
  }

  /** The next bytes from the master (a copy), waiting up to `timeoutMs`. One reader at a time. */
  async read(timeoutMs: number): Promise<PtyRead> {
    const io = this.#io;
    if (io.closed) return "closed";
    return await io.use(async (): Promise<PtyRead> => {
      const deadline = Date.now() + timeoutMs;
      while (!io.closed) {
        const n = Number(linuxLibc().read(this.#master, this.#bufPtr, BigInt(READ_SIZE)));
        if (n > 0) return this.#buf.slice(0, n);
        if (n === 0) return "hangup";
        const e = lastError(`read ${this.path}`);
        if (e.errno === EIO) return "hangup";
        if (e.errno === LINUX_E.EINTR) continue;
        if (e.errno !== LINUX_E.EAGAIN) throw e;
        const left = deadline - Date.now();
        if (left <= 0) return "timeout";
        await io.wait("in", left);
      }
      return "closed";
    });
  }

  /**
   * Write all of `bytes` to the master, waiting for POLLOUT whenever the kernel's buffer is full.
   * False when the pty closed or hung up (EIO) before everything was written. One writer at a time.
   */
  async write(bytes: Uint8Array): Promise<boolean> {
    const io = this.#io;
    if (io.closed) return false;
    return await io.use(async () => {
      // FFI only needs the bytes' address; subarrays keep their byteOffset.
      const buf = bytes as Uint8Array<ArrayBuffer>;
      let off = 0;
      while (off < buf.length) {
        if (io.closed) return false;
        const rest = buf.subarray(off);
        const n = Number(linuxLibc().write(this.#master, rest, BigInt(rest.length)));
        if (n > 0) {
          off += n;
          continue;
        }
        const e = lastError(`write ${this.path}`);
        if (e.errno === EIO) return false;
        if (e.errno === LINUX_E.EINTR) continue;
        if (e.errno !== LINUX_E.EAGAIN) throw e;
        await io.wait("out", Infinity);
      }
      return true;
    });
  }

  /**
   * Close everything. A pending read or write is woken through the eventfd and the last one
   * releases the fds, so no poll ever sees a reused fd number.
   */
  close(): void {
    this.#io.close();
  }
}

/**
 * The shell snippet run by `setsid`: open the pty as stdin/stdout/stderr (becoming its
 * controlling terminal, as a new session leader opening a tty without O_NOCTTY), then exec argv.
 */
const ATTACH = 'exec 0<>"$1" 1>&0 2>&0; shift; exec "$@"';

/**
 * Start `argv` on the pty's slave as a session (and process group) leader. `env` is the complete
 * environment. The child's pid is its process group id, for `killProcessGroup`.
 */
export function spawnOnPty(
  pty: LinuxPty,
  argv: string[],
  env: Record<string, string>,
  cwd?: string,
): Deno.ChildProcess {
  return new Deno.Command("setsid", {
    args: ["sh", "-c", ATTACH, "pty", pty.path, ...argv],
    env,
    clearEnv: true,
    cwd,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/**
 * SIGKILL the whole process group led by `pid` (the shell and everything it started that did not
 * move to a group of its own), and, while the leader is known to be alive (not yet reaped),
 * `pid` itself in case setsid has not run yet.
 */
export function killProcessGroup(pid: number, leaderAlive = true): void {
  for (const target of leaderAlive ? [-pid, pid] : [-pid]) {
    try {
      Deno.kill(target, "SIGKILL");
    } catch {
      // Already gone (ESRCH), or the group does not exist yet.
    }
  }
}
