/**
 * A Linux TUN device (os-ffi §9.1) and its packet reader. Reading follows deno-platform §2: the fd
 * is O_NONBLOCK; a batch is synchronous read()s until EAGAIN straight into one arena, and only when
 * nothing is queued do we pay for a `nonblocking: true` poll() (~30 µs thread hop). The poll also
 * watches an eventfd so close() wakes it at once instead of waiting out the timeout.
 */
import { check, cString, lastError, LINUX_E, linuxLibc } from "../libc.ts";
import { ifName, readCString } from "../struct.ts";
import { WaitableFd } from "./waitable_fd.ts";

const O_RDWR = 2;
const O_NONBLOCK = 0x800;
const O_CLOEXEC = 0x80000;
export const TUNSETIFF = 0x400454can;
export const IFF_TUN = 0x1;
export const IFF_NO_PI = 0x1000;
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

/** The opposite, for a tun that carries IPv6: a host whose default is off would refuse the address. */
export function enableIPv6(name: string): boolean {
  try {
    Deno.writeTextFileSync(`/proc/sys/net/ipv6/conf/${name}/disable_ipv6`, "0");
    return true;
  } catch {
    return false;
  }
}

export class LinuxTunDevice {
  readonly #io: WaitableFd;
  readonly #fd: number;
  readonly #arena = new Uint8Array(ARENA_SIZE);
  readonly #base: Deno.PointerObject;
  #reading = false;

  private constructor(readonly name: string, readonly index: number, io: WaitableFd) {
    this.#io = io;
    this.#fd = io.fd;
    this.#base = Deno.UnsafePointer.of(this.#arena)!;
  }

  /** Create the device (needs CAP_NET_ADMIN). Errors are OsErrors naming the failing step. */
  static open(name = "tun%d"): LinuxTunDevice {
    const lib = linuxLibc();
    const ifr = encodeTunSetIff(name);
    const fd = check(
      "open /dev/net/tun",
      lib.open(cString("/dev/net/tun"), O_RDWR | O_CLOEXEC | O_NONBLOCK, 0),
    );
    try {
      check("ioctl TUNSETIFF", lib.ioctl(fd, TUNSETIFF, ifr));
      const actual = readCString(ifr.subarray(0, 16));
      const index = nameToIndex(actual);
      if (index === 0) throw lastError(`if_nametoindex ${actual}`);
      return new LinuxTunDevice(actual, index, WaitableFd.open(fd));
    } catch (e) {
      lib.close(fd);
      throw e;
    }
  }

  get closed(): boolean {
    return this.#io.closed;
  }

  /**
   * Wait up to `timeoutMs`, then return every queued packet as views into the arena (valid until
   * the next call). Resolves [] on timeout and promptly after close(). One reader at a time.
   */
  async read(timeoutMs: number): Promise<Uint8Array[]> {
    const io = this.#io;
    if (io.closed) return [];
    if (this.#reading) throw new Error("LinuxTunDevice.read: another read is pending");
    this.#reading = true;
    try {
      return await io.use(async () => {
        let batch = this.#drain();
        const deadline = Date.now() + timeoutMs;
        while (batch.length === 0 && !io.closed) {
          const left = deadline - Date.now();
          if (left <= 0) break;
          await io.wait("in", left);
          if (io.closed) break;
          batch = this.#drain();
        }
        return io.closed ? [] : batch;
      });
    } finally {
      this.#reading = false;
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
    if (this.#io.closed) return false;
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
    this.#io.close();
  }
}
