/**
 * A Linux TUN device (os-ffi §9.1) and its packet reader. Reading follows deno-platform §2: the fd
 * is O_NONBLOCK; a batch is synchronous read()s until EAGAIN straight into one arena, and only when
 * nothing is queued do we pay for a `nonblocking: true` poll() (~30 µs thread hop). The poll also
 * watches an eventfd so close() wakes it at once instead of waiting out the timeout.
 */
import { check, cString, lastError, LINUX_E, linuxLibc } from "../libc.ts";
import { ifName, readCString } from "../struct.ts";

const O_RDWR = 2;
const O_NONBLOCK = 0x800;
const O_CLOEXEC = 0x80000;
const EFD_NONBLOCK = 0x800;
const EFD_CLOEXEC = 0x80000;
export const TUNSETIFF = 0x400454can;
export const IFF_TUN = 0x1;
export const IFF_NO_PI = 0x1000;
const POLLIN = 1;
/** Upper bound of one poll() so a stuck wake-up can never park a pool thread for long. */
const POLL_SLICE_MS = 250;
/** A read() buffer must hold the largest packet or the kernel truncates it. */
const MAX_PACKET = 65535;
const ARENA_SIZE = 1 << 20;
const MAX_BATCH = 256;

/** The 40-byte `ifreq` for TUNSETIFF: name ("tun%d" lets the kernel number it) + flags @16. */
export function encodeTunSetIff(
  name: string,
  flags = IFF_TUN | IFF_NO_PI,
): Uint8Array<ArrayBuffer> {
  const ifr = new Uint8Array(40);
  ifr.set(ifName(name));
  new DataView(ifr.buffer).setUint16(16, flags, true);
  return ifr;
}

/** if_nametoindex(3); 0 when there is no such interface. */
export function nameToIndex(name: string): number {
  return linuxLibc().if_nametoindex(cString(name));
}

/** if_indextoname(3); undefined when there is no such interface. */
export function indexToName(index: number): string | undefined {
  const buf = new Uint8Array(16);
  const p = linuxLibc().if_indextoname(index, buf);
  return p === null ? undefined : readCString(buf);
}

/**
 * Stop the kernel sending IPv6 router solicitations and MLD reports into the tun (os-ffi §1 item
 * 12). False when IPv6 is absent or /proc/sys is read-only; the reader passes any version anyway.
 */
export function disableIPv6(name: string): boolean {
  try {
    Deno.writeTextFileSync(`/proc/sys/net/ipv6/conf/${name}/disable_ipv6`, "1");
    return true;
  } catch {
    return false;
  }
}

export class LinuxTunDevice {
  readonly #fd: number;
  readonly #wake: number;
  readonly #arena = new Uint8Array(ARENA_SIZE);
  readonly #base: Deno.PointerObject;
  /** Two pollfds: the tun, then the wake-up eventfd. */
  readonly #pfds = new Uint8Array(16);
  readonly #wakeValue = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]);
  #reading = false;
  #closed = false;
  #released = false;

  private constructor(readonly name: string, readonly index: number, fd: number, wake: number) {
    this.#fd = fd;
    this.#wake = wake;
    this.#base = Deno.UnsafePointer.of(this.#arena)!;
    const dv = new DataView(this.#pfds.buffer);
    dv.setInt32(0, fd, true);
    dv.setInt16(4, POLLIN, true);
    dv.setInt32(8, wake, true);
    dv.setInt16(12, POLLIN, true);
  }

  /** Create the device (needs CAP_NET_ADMIN). Errors are OsErrors naming the failing step. */
  static open(name = "tun%d"): LinuxTunDevice {
    const lib = linuxLibc();
    const ifr = encodeTunSetIff(name);
    const fd = check(
      "open /dev/net/tun",
      lib.open(cString("/dev/net/tun"), O_RDWR | O_CLOEXEC | O_NONBLOCK, 0),
    );
    let wake = -1;
    try {
      check("ioctl TUNSETIFF", lib.ioctl(fd, TUNSETIFF, ifr));
      const actual = readCString(ifr.subarray(0, 16));
      const index = nameToIndex(actual);
      if (index === 0) throw lastError(`if_nametoindex ${actual}`);
      wake = check("eventfd", lib.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      return new LinuxTunDevice(actual, index, fd, wake);
    } catch (e) {
      lib.close(fd);
      if (wake >= 0) lib.close(wake);
      throw e;
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Wait up to `timeoutMs`, then return every queued packet as views into the arena (valid until
   * the next call). Resolves [] on timeout and promptly after close(). One reader at a time.
   */
  async read(timeoutMs: number): Promise<Uint8Array[]> {
    if (this.#closed) return [];
    if (this.#reading) throw new Error("LinuxTunDevice.read: another read is pending");
    this.#reading = true;
    try {
      let batch = this.#drain();
      const deadline = Date.now() + timeoutMs;
      while (batch.length === 0 && !this.#closed) {
        const left = deadline - Date.now();
        if (left <= 0) break;
        await linuxLibc().poll_nb(this.#pfds, 2n, Math.min(left, POLL_SLICE_MS));
        if (this.#closed) break;
        batch = this.#drain();
      }
      return this.#closed ? [] : batch;
    } finally {
      this.#reading = false;
      if (this.#closed) this.#release();
    }
  }

  /** Synchronous reads until EAGAIN (or the arena / batch cap is reached). */
  #drain(): Uint8Array[] {
    const lib = linuxLibc();
    const out: Uint8Array[] = [];
    let off = 0;
    while (out.length < MAX_BATCH && ARENA_SIZE - off >= MAX_PACKET) {
      const p = off === 0 ? this.#base : Deno.UnsafePointer.offset(this.#base, off);
      const n = Number(lib.read(this.#fd, p, 65535n));
      if (n < 0) {
        const e = lastError(`read ${this.name}`);
        if (e.errno === LINUX_E.EAGAIN) break;
        if (e.errno === LINUX_E.EINTR) continue;
        throw e;
      }
      if (n === 0) break;
      out.push(this.#arena.subarray(off, off + n));
      off += (n + 7) & ~7; // keep each packet 8-byte aligned for anyone viewing it wider
    }
    return out;
  }

  /** Write one whole IP packet. False when the kernel dropped it (queue full, malformed, closed). */
  write(packet: Uint8Array): boolean {
    if (this.#closed) return false;
    // FFI only needs the bytes' address; a view over a SharedArrayBuffer works the same.
    const buf = packet as Uint8Array<ArrayBuffer>;
    const n = Number(linuxLibc().write(this.#fd, buf, BigInt(buf.length)));
    if (n >= 0) return true;
    const e = lastError(`write ${this.name}`);
    if ([LINUX_E.EAGAIN, LINUX_E.EINVAL, 105, /* ENOBUFS */ 90 /* EMSGSIZE */].includes(e.errno)) {
      return false;
    }
    throw e;
  }

  /**
   * Close the fd, which removes the interface with its addresses and routes. A pending read is
   * woken through the eventfd and releases the fds itself, so no poll ever sees a reused fd number.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#reading) linuxLibc().write(this.#wake, this.#wakeValue, 8n);
    else this.#release();
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    const lib = linuxLibc();
    lib.close(this.#fd);
    lib.close(this.#wake);
  }
}
