/**
 * A nonblocking fd that can be waited on without blocking the event loop (deno-platform §2):
 * callers do synchronous read()/write() until EAGAIN and only then `wait()` in a
 * `nonblocking: true` poll() on a pool thread. The poll also watches an eventfd, so close() wakes
 * a pending wait at once, and the fds are closed only when no operation is still under way, so
 * no poll ever sees a reused fd number. Shared by the TUN device and the emulator's pty.
 */
import { check, linuxLibc } from "../libc.ts";

const EFD_NONBLOCK = 0x800;
const EFD_CLOEXEC = 0x80000;
const POLLIN = 1;
const POLLOUT = 4;
/** Upper bound of one poll() so a stuck wake-up can never park a pool thread for long. */
const POLL_SLICE_MS = 250;

export class WaitableFd {
  /** pollfds for "readable" and "writable": the fd, then the wake-up eventfd. */
  readonly #pfds: Record<"in" | "out", Uint8Array>;
  readonly #wakeValue = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]);
  #pending = 0;
  #closed = false;
  #released = false;

  private constructor(
    readonly fd: number,
    readonly wake: number,
    private onRelease?: () => void,
  ) {
    const pfds = (events: number) => {
      const b = new Uint8Array(16);
      const dv = new DataView(b.buffer);
      dv.setInt32(0, fd, true);
      dv.setInt16(4, events, true);
      dv.setInt32(8, wake, true);
      dv.setInt16(12, POLLIN, true);
      return b;
    };
    this.#pfds = { in: pfds(POLLIN), out: pfds(POLLOUT) };
  }

  /**
   * Takes ownership of `fd` (nonblocking) once this returns; if the eventfd cannot be made, it
   * throws and `fd` stays the caller's to close. `onRelease` runs when the fds are closed.
   */
  static open(fd: number, onRelease?: () => void): WaitableFd {
    const wake = check("eventfd", linuxLibc().eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    return new WaitableFd(fd, wake, onRelease);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Runs an operation that may wait; the fds stay open until it (and every other) finishes. */
  async use<T>(op: () => Promise<T>): Promise<T> {
    this.#pending++;
    try {
      return await op();
    } finally {
      this.#pending--;
      if (this.#closed && this.#pending === 0) this.#release();
    }
  }

  /** Waits until the fd is readable ("in") or writable ("out"), close(), or up to `ms`. */
  async wait(events: "in" | "out", ms: number): Promise<void> {
    await linuxLibc().poll_nb(this.#pfds[events], 2n, Math.min(ms, POLL_SLICE_MS));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#pending > 0) linuxLibc().write(this.wake, this.#wakeValue, 8n);
    else this.#release();
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    const lib = linuxLibc();
    lib.close(this.fd);
    lib.close(this.wake);
    this.onRelease?.();
  }
}
