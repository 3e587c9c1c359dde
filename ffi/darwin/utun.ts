/**
 * A macOS utun device (os-ffi §5) and its packet reader. Creation: a PF_SYSTEM control socket,
 * CTLIOCGINFO for com.apple.net.utun_control, connect (sc_unit 0 = the kernel picks), then
 * UTUN_OPT_IFNAME for the name. Reading follows ffi/linux/tun.ts: the fd is O_NONBLOCK, a batch is
 * synchronous read()s until EAGAIN straight into one arena, and only when nothing is queued do we
 * pay for a `nonblocking: true` poll(). darwin has no eventfd, so close() wakes the poll through a
 * pipe. Every packet carries a 4-byte big-endian address family, stripped on read, added on write.
 */
import { DARWIN_E } from "../libc.ts";
import {
  CTLIOCGINFO,
  F_GETFL,
  F_SETFD,
  F_SETFL,
  FD_CLOEXEC,
  O_NONBLOCK,
  PF_SYSTEM,
  POLLIN,
  SOCK_DGRAM,
  SYSPROTO_CONTROL,
  UTUN_OPT_IFNAME,
} from "./constants.ts";
import { decodeCtlId, encodeCtlInfo, encodeSockaddrCtl, frameUtunPacket } from "./structs.ts";
import { type DarwinSys, fcntl, ioctl, nameToIndex, sysCheck, sysError } from "./sys.ts";

/** Upper bound of one poll() so a lost wake-up can never park a pool thread for long. */
const POLL_SLICE_MS = 250;
/** Largest IP packet plus the 4-byte family header; a shorter buffer truncates the packet. */
const MAX_FRAME = 65535 + 4;
const ARENA_SIZE = 1 << 20;
const MAX_BATCH = 256;
/** How often to re-ask for "any unit" when another process takes the one we were given. */
const CONNECT_ATTEMPTS = 3;

/** "utun7" → 7; undefined for names macOS cannot give us (ssmp%d, tun0, ...). */
export function utunUnit(name: string | undefined): number | undefined {
  const m = name && /^utun(\d{1,5})$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** Set O_NONBLOCK and FD_CLOEXEC (no SOCK_CLOEXEC on darwin). */
function nonblockCloexec(sys: DarwinSys, fd: number): void {
  const fl = fcntl(sys, fd, F_GETFL);
  fcntl(sys, fd, F_SETFL, fl | O_NONBLOCK);
  fcntl(sys, fd, F_SETFD, FD_CLOEXEC);
}

/** One attempt: socket, CTLIOCGINFO, connect(unit), getsockopt name. Closes the fd on failure. */
function connectUtun(sys: DarwinSys, unit: number): { fd: number; name: string } {
  const fd = sysCheck(
    sys,
    "socket PF_SYSTEM",
    sys.socket(PF_SYSTEM, SOCK_DGRAM, SYSPROTO_CONTROL),
  );
  try {
    const info = encodeCtlInfo();
    ioctl(sys, fd, CTLIOCGINFO, info);
    const id = decodeCtlId(info);
    // 0 would mean the ioctl never saw our buffer: the variadic trap (os-ffi §2.3) in action.
    if (id === 0) throw new Error("CTLIOCGINFO returned control id 0 (ioctl argument passing?)");
    const sc = encodeSockaddrCtl(id, unit);
    sysCheck(sys, `connect utun unit ${unit}`, sys.connect(fd, sc, sc.length));
    const nameBuf = new Uint8Array(16);
    const lenBuf = new Uint8Array(4);
    new DataView(lenBuf.buffer).setUint32(0, 16, true);
    sysCheck(
      sys,
      "getsockopt UTUN_OPT_IFNAME",
      sys.getsockopt(fd, SYSPROTO_CONTROL, UTUN_OPT_IFNAME, nameBuf, lenBuf),
    );
    const len = Math.min(16, new DataView(lenBuf.buffer).getUint32(0, true));
    const raw = nameBuf.subarray(0, len);
    const end = raw.indexOf(0);
    const name = new TextDecoder().decode(end < 0 ? raw : raw.subarray(0, end));
    nonblockCloexec(sys, fd);
    return { fd, name };
  } catch (e) {
    sys.close(fd);
    throw e;
  }
}

export class UtunDevice {
  readonly #sys: DarwinSys;
  readonly #fd: number;
  readonly #wakeR: number;
  readonly #wakeW: number;
  readonly #arena = new Uint8Array(ARENA_SIZE);
  readonly #wbuf = new Uint8Array(MAX_FRAME);
  /** Two pollfds: the utun, then the wake-up pipe. */
  readonly #pfds = new Uint8Array(16);
  readonly #one = new Uint8Array([1]);
  #reading = false;
  #closed = false;
  #released = false;

  private constructor(
    sys: DarwinSys,
    readonly name: string,
    readonly index: number,
    fd: number,
    wake: [number, number],
  ) {
    this.#sys = sys;
    this.#fd = fd;
    [this.#wakeR, this.#wakeW] = wake;
    const dv = new DataView(this.#pfds.buffer);
    dv.setInt32(0, fd, true);
    dv.setInt16(4, POLLIN, true);
    dv.setInt32(8, this.#wakeR, true);
    dv.setInt16(12, POLLIN, true);
  }

  /**
   * Create a utun (needs root: EPERM otherwise). `name` "utunN" asks for that unit; if it is busy,
   * or for any other name, the kernel picks. Errors are OsErrors naming the failing step.
   */
  static open(sys: DarwinSys, name?: string): UtunDevice {
    const wanted = utunUnit(name);
    let unit = wanted === undefined ? 0 : wanted + 1;
    let got: { fd: number; name: string } | undefined;
    for (let attempt = 1; !got; attempt++) {
      try {
        got = connectUtun(sys, unit);
      } catch (e) {
        // EBUSY: the unit is taken (asked for utunN, or another VPN raced us to the one the kernel
        // chose). Asking again for "any" is what every VPN client does.
        const busy = (e as { errno?: number }).errno === DARWIN_E.EBUSY;
        if (!busy || attempt >= CONNECT_ATTEMPTS) throw e;
        unit = 0;
      }
    }
    const { fd } = got;
    try {
      const index = nameToIndex(sys, got.name);
      if (index === 0) throw sysError(sys, `if_nametoindex ${got.name}`);
      const fds = new Uint8Array(8);
      sysCheck(sys, "pipe", sys.pipe(fds));
      const dv = new DataView(fds.buffer);
      const wake: [number, number] = [dv.getInt32(0, true), dv.getInt32(4, true)];
      return new UtunDevice(sys, got.name, index, fd, wake);
    } catch (e) {
      sys.close(fd);
      throw e;
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Wait up to `timeoutMs`, then return every queued packet (header stripped) as views into the
   * arena, valid until the next call. [] on timeout and promptly after close(). One reader.
   */
  async read(timeoutMs: number): Promise<Uint8Array[]> {
    if (this.#closed) return [];
    if (this.#reading) throw new Error("UtunDevice.read: another read is pending");
    this.#reading = true;
    try {
      let batch = this.#drain();
      const deadline = Date.now() + timeoutMs;
      while (batch.length === 0 && !this.#closed) {
        const left = deadline - Date.now();
        if (left <= 0) break;
        await this.#sys.poll_nb(this.#pfds, 2, Math.min(left, POLL_SLICE_MS));
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
    const sys = this.#sys;
    const out: Uint8Array[] = [];
    let off = 0;
    while (out.length < MAX_BATCH && ARENA_SIZE - off >= MAX_FRAME) {
      const n = Number(sys.read(this.#fd, this.#arena.subarray(off), BigInt(MAX_FRAME)));
      if (n < 0) {
        const e = sysError(sys, `read ${this.name}`);
        if (e.errno === DARWIN_E.EAGAIN) break;
        if (e.errno === DARWIN_E.EINTR) continue;
        throw e;
      }
      if (n === 0) break;
      // n ≤ 4 would be a header without a packet: nothing to hand on.
      if (n > 4) out.push(this.#arena.subarray(off + 4, off + n));
      off += (n + 7) & ~7; // packets start 8-byte aligned (+4 header keeps IP 4-aligned)
    }
    return out;
  }

  /** Write one IP packet (header added). False when dropped (queue full, not IP, closed). */
  write(packet: Uint8Array): boolean {
    if (this.#closed) return false;
    const n = frameUtunPacket(packet, this.#wbuf);
    if (n === 0) return false;
    const ret = Number(this.#sys.write(this.#fd, this.#wbuf, BigInt(n)));
    if (ret >= 0) return true;
    const e = sysError(this.#sys, `write ${this.name}`);
    const drop: number[] = [
      DARWIN_E.EAGAIN,
      DARWIN_E.ENOBUFS,
      DARWIN_E.EINVAL,
      DARWIN_E.EMSGSIZE,
    ];
    if (drop.includes(e.errno)) return false;
    throw e;
  }

  /**
   * Close the fd, which destroys the interface with its addresses and routes. A pending read is
   * woken through the pipe and releases the fds itself, so no poll ever sees a reused fd number.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#reading) this.#sys.write(this.#wakeW, this.#one, 1n);
    else this.#release();
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#sys.close(this.#fd);
    this.#sys.close(this.#wakeR);
    this.#sys.close(this.#wakeW);
  }
}
