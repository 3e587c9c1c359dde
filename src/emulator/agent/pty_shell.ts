/**
 * The process side of an emulated shell session (specs/ssm-protocol.md §9): a program on a real
 * pty, its input written in order with backpressure, its output read after the agent's initial
 * wait and passed through the agent's UTF-8 re-assembly (stdout_utf8.ts).
 *
 * Input: at most `MAX_PENDING_INPUT` bytes wait for the pty; past that `input()` says "not
 * ready", so the engine neither acks nor advances and the client resends later (§5). The pty
 * write itself waits for POLLOUT, so a program that does not read holds everything back.
 *
 * Output: read, re-assembled, handed to the session, and no further read until the session's
 * pipe has room: a slow client stops the reads and then the program's writes.
 *
 * End: when the program exits we drop our own slave fd; the reader goes on until the kernel
 * reports the hang-up (every byte written before the exit has been read by then), or until the
 * pty has been quiet for `EXIT_QUIET_MS` (a background job kept the slave open). Then `finished`.
 */
import { killProcessGroup, LinuxPty, spawnOnPty } from "../../../ffi/linux/pty.ts";
import { StdoutReassembler } from "./stdout_utf8.ts";

export interface PtyShellHost {
  /** Output bytes, already re-assembled. */
  out(bytes: Uint8Array): void;
  /** Resolves when the session can take more output. */
  room(): Promise<void>;
  /** Input was refused before and there is room again. */
  inputReady(): void;
  /** The program exited and its output has all been read. */
  finished(): void;
  log(line: string): void;
}

export interface PtyShellOptions {
  argv: string[];
  env: Record<string, string>;
  initialWaitMs: number;
  cwd?: string;
}

/** Input held for the pty beyond what the kernel buffers: a few client messages' worth. */
export const MAX_PENDING_INPUT = 16 * 1024;
const EXIT_QUIET_MS = 1000;
const READ_WAIT_MS = 250;

export class PtyShell {
  readonly #pty: LinuxPty;
  readonly #child: Deno.ChildProcess;
  readonly #utf8 = new StdoutReassembler();
  #queue: Uint8Array[] = [];
  #queued = 0;
  #refused = false;
  #writer: Promise<void> = Promise.resolve();
  #writing = false;
  #reader: Promise<void>;
  #exited = false;
  #closed = false;
  #wakeInitial?: () => void;
  #closing?: Promise<void>;
  readonly #status: Promise<Deno.CommandStatus>;

  /** Throws (OsError, NotFound…) when no pty or process can be had. */
  constructor(opts: PtyShellOptions, private host: PtyShellHost) {
    this.#pty = LinuxPty.open();
    try {
      this.#child = spawnOnPty(this.#pty, opts.argv, opts.env, opts.cwd);
    } catch (e) {
      this.#pty.close();
      throw e;
    }
    this.#status = this.#child.status.then((s) => {
      this.#exited = true;
      // Only the program's side holds the slave now: its exit shows as a hang-up.
      this.#pty.releaseSlave();
      host.log(`agent: shell pid ${this.#child.pid} exited (${s.signal ?? s.code})`);
      return s;
    });
    this.#reader = this.#readLoop(opts.initialWaitMs);
  }

  get pid(): number {
    return this.#child.pid;
  }

  get pendingInput(): number {
    return this.#queued;
  }

  /** Queue bytes for the pty. False: too much is pending; the caller must not ack. */
  input(bytes: Uint8Array): boolean {
    // Nobody will read it any more; accepting it keeps the client from resending forever.
    if (this.#closed || this.#exited) return true;
    if (this.#queued >= MAX_PENDING_INPUT) {
      this.#refused = true;
      return false;
    }
    this.#queue.push(bytes);
    this.#queued += bytes.length;
    if (!this.#writing) {
      this.#writing = true;
      this.#writer = this.#writeLoop();
    }
    return true;
  }

  resize(cols: number, rows: number): void {
    if (this.#closed) return;
    try {
      this.#pty.setSize(cols, rows);
    } catch (e) {
      this.host.log(`agent: resize failed: ${(e as Error).message}`);
    }
  }

  /**
   * Kill the process group, close the pty, wait for every loop and the process. The kill is
   * synchronous, before the first await: an emulator exiting right after calling close() leaves
   * no shell behind. Every call returns the same promise.
   */
  close(): Promise<void> {
    return this.#closing ??= this.#close();
  }

  async #close(): Promise<void> {
    this.#closed = true;
    this.#wakeInitial?.();
    // After a normal exit only the group is signalled (background jobs left over); the pid
    // alone may already belong to someone else.
    killProcessGroup(this.#child.pid, !this.#exited);
    this.#pty.close();
    this.#queue = [];
    this.#queued = 0;
    await Promise.all([this.#reader, this.#writer, this.#status]);
  }

  async #writeLoop(): Promise<void> {
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        const bytes = this.#queue[0];
        const ok = await this.#pty.write(bytes);
        if (this.#closed) return;
        this.#queue.shift();
        this.#queued -= bytes.length;
        if (!ok) this.host.log("agent: pty hung up; input dropped");
        if (this.#refused && this.#queued < MAX_PENDING_INPUT) {
          this.#refused = false;
          this.host.inputReady();
        }
      }
    } catch (e) {
      this.host.log(`agent: pty write failed: ${(e as Error).message}`);
    } finally {
      this.#writing = false;
    }
  }

  async #readLoop(initialWaitMs: number): Promise<void> {
    // The agent's writePump sleeps before its first read (§6 step 5); input is taken meanwhile.
    if (initialWaitMs > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, initialWaitMs);
        this.#wakeInitial = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    try {
      while (!this.#closed) {
        const exited = this.#exited;
        const r = await this.#pty.read(exited ? EXIT_QUIET_MS : READ_WAIT_MS);
        if (r === "closed") return;
        if (r instanceof Uint8Array) {
          const out = this.#utf8.push(r);
          if (out.length > 0) this.host.out(out);
          await this.host.room();
          continue;
        }
        // A hang-up before the exit cannot come from the program (we hold a slave fd then).
        if (exited && (r === "hangup" || r === "timeout")) break;
        if (r === "hangup") await new Promise((res) => setTimeout(res, 10));
      }
    } catch (e) {
      this.host.log(`agent: pty read failed: ${(e as Error).message}`);
    }
    if (this.#closed) return;
    if (this.#utf8.held > 0) {
      this.host.log(`agent: ${this.#utf8.held} trailing byte(s) lost at EOF (as the agent does)`);
    }
    this.host.finished();
  }
}
