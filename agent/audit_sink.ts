/**
 * Where the audit's JSON lines go (agent.yaml `audit:`, config_identity.ts):
 *
 * - journal: one line per flow on stdout as `audit {...}`. Under the systemd unit stdout goes to
 *   the journal, one entry per line, while the agent's own messages go to stderr as
 *   `ssm-proxy-agent: ...`; so `journalctl -u ssm-proxy-agent -o cat | grep '^audit '` (or
 *   `--grep '^audit '`) gives the trail, and `sed 's/^audit //'` makes it JSON lines again.
 * - file: JSON lines appended to the path (0640; its directory made 0750 if missing), rotated
 *   when the next line would pass maxBytes: path → path.1 → … → path.keep, the oldest dropped.
 *   A file moved or removed from under us (logrotate, rm -r) is noticed at the next flush and
 *   opened afresh.
 *
 * write() only queues the line: the data path never waits for a disk or the journal. The queue
 * is flushed every second (sooner past 1 MiB) and on close. A failed flush (disk full, read-only
 * file system, directory gone) logs one line and keeps the lines for the next try; past 8 MiB
 * waiting, new lines are dropped and counted, and the count is logged once writing works again.
 */
import { dirname } from "node:path";
import type { AuditConfig } from "./config_identity.ts";

export interface AuditSink {
  /** Queue one line (no newline). Never blocks or throws. */
  write(line: string): void;
  /** Flush what is queued, then stop. */
  close(): Promise<void>;
}

export interface AuditSinkOptions {
  /** Default 1000. */
  flushMs?: number;
  /** Bytes queued before new lines are dropped; default 8 MiB. */
  maxPendingBytes?: number;
  /** The journal's stream; default Deno.stdout. */
  stdout?: { write(p: Uint8Array): Promise<number> };
}

/** Prefix of a journal line, so the trail can be told from the agent's other output. */
export const JOURNAL_PREFIX = "audit ";

const EARLY_FLUSH_BYTES = 1 << 20;
const NEWLINE = 10;

/** The sink for `cfg`; undefined when the audit is off. Never throws: problems are logged. */
export async function openAuditSink(
  cfg: AuditConfig,
  log: (line: string) => void,
  opts: AuditSinkOptions = {},
): Promise<AuditSink | undefined> {
  if (cfg.to === "off") return undefined;
  const out = cfg.to === "journal"
    ? new StreamOutput(opts.stdout ?? Deno.stdout)
    : new FileOutput(cfg.path, cfg.maxBytes, cfg.keep);
  const sink = new BufferedSink(out, cfg.to === "journal" ? JOURNAL_PREFIX : "", log, opts);
  await sink.start();
  return sink;
}

/** Somewhere bytes go: write() returns how much it wrote, and the error that stopped it. */
interface Output {
  readonly name: string;
  /** Make it ready to write (a file: open it); throws on failure. */
  open(): Promise<void>;
  write(data: Uint8Array): Promise<{ written: number; error?: unknown }>;
  close(): void;
}

class BufferedSink implements AuditSink {
  #lines: string[] = [];
  #pending = 0;
  /** Bytes a failed write left unwritten, written first next time. */
  #carry = new Uint8Array(0);
  #dropped = 0;
  #failing = false;
  #flushing: Promise<void> | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #closed = false;
  readonly #max: number;
  readonly #encoder = new TextEncoder();

  constructor(
    private readonly out: Output,
    private readonly prefix: string,
    private readonly log: (line: string) => void,
    private readonly opts: AuditSinkOptions,
  ) {
    this.#max = opts.maxPendingBytes ?? 8 << 20;
  }

  async start(): Promise<void> {
    try {
      await this.out.open();
    } catch (e) {
      this.#fail(e);
    }
    const timer = setInterval(() => void this.#flush(), this.opts.flushMs ?? 1000);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  write(line: string): void {
    if (this.#closed) return;
    const size = line.length + this.prefix.length + 1;
    if (this.#pending + this.#carry.length + size > this.#max) {
      this.#dropped++;
      return;
    }
    this.#lines.push(line);
    this.#pending += size;
    if (this.#pending >= EARLY_FLUSH_BYTES && !this.#flushing) void this.#flush();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#flushing;
    await this.#flush();
    this.out.close();
    const lost = this.#lines.length + this.#carry.filter((b) => b === NEWLINE).length;
    if (lost) this.log(`audit: ${lost} lines could not be written to ${this.out.name}`);
  }

  /** One flush at a time; a call during one waits for it instead of starting another. */
  #flush(): Promise<void> {
    this.#flushing ??= this.#flushOnce()
      .catch((e) => this.#fail(e))
      .finally(() => (this.#flushing = undefined));
    return this.#flushing;
  }

  async #flushOnce(): Promise<void> {
    if (!this.#lines.length && !this.#carry.length) return;
    const text = this.#lines.length ? this.#lines.map((l) => this.prefix + l + "\n").join("") : "";
    this.#lines = [];
    this.#pending = 0;
    const fresh = this.#encoder.encode(text);
    let data = fresh;
    if (this.#carry.length) {
      data = new Uint8Array(this.#carry.length + fresh.length);
      data.set(this.#carry);
      data.set(fresh, this.#carry.length);
    }
    const { written, error } = await this.out.write(data);
    this.#carry = data.slice(written);
    if (error !== undefined) return this.#fail(error);
    const dropped = this.#dropped;
    if (this.#failing) {
      const meanwhile = dropped ? `; ${dropped} lines were dropped meanwhile` : "";
      this.log(`audit: writing to ${this.out.name} again${meanwhile}`);
    } else if (dropped) {
      this.log(
        `audit: ${dropped} lines dropped: more than ${this.#max} bytes were waiting for ` +
          this.out.name,
      );
    }
    this.#failing = false;
    this.#dropped = 0;
  }

  #fail(e: unknown): void {
    if (this.#failing) return;
    this.#failing = true;
    const why = e instanceof Error ? e.message : String(e);
    const hint = e instanceof Error && /read-only file system/i.test(e.message)
      ? " (under systemd's ProtectSystem=strict, give the unit LogsDirectory=ssm-proxy and " +
        "write under /var/log/ssm-proxy)"
      : "";
    this.log(
      `audit: cannot write to ${this.out.name}: ${why}${hint}; keeping lines and retrying ` +
        `every second`,
    );
  }
}

class StreamOutput implements Output {
  readonly name = "stdout";
  constructor(private readonly stream: { write(p: Uint8Array): Promise<number> }) {}

  open(): Promise<void> {
    return Promise.resolve();
  }

  async write(data: Uint8Array): Promise<{ written: number; error?: unknown }> {
    let o = 0;
    try {
      while (o < data.length) o += await this.stream.write(data.subarray(o));
      return { written: o };
    } catch (error) {
      return { written: o, error };
    }
  }

  close(): void {}
}

const exists = async (path: string) => {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
};

class FileOutput implements Output {
  #file: Deno.FsFile | undefined;
  #ino: number | null = null;
  #size = 0;
  /** The last byte written was not a newline: a line is half written. */
  #midLine = false;

  constructor(readonly name: string, readonly maxBytes: number, readonly keep: number) {}

  async open(): Promise<void> {
    this.close();
    const dir = dirname(this.name);
    if (!(await exists(dir))) {
      await Deno.mkdir(dir, { recursive: true, mode: 0o750 });
      await Deno.chmod(dir, 0o750); // whatever the umask
    }
    let file: Deno.FsFile;
    try {
      file = await Deno.open(this.name, { append: true, createNew: true, mode: 0o640 });
      await Deno.chmod(this.name, 0o640);
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      file = await Deno.open(this.name, { append: true });
    }
    const st = await file.stat();
    this.#file = file;
    this.#ino = st.ino;
    this.#size = st.size;
  }

  async write(data: Uint8Array): Promise<{ written: number; error?: unknown }> {
    let o = 0;
    try {
      if (!this.#file || (await this.#replaced())) {
        const before = this.#ino;
        await this.open();
        // The rest of a half-written line would start a new file with garbage: skip it.
        if (this.#midLine && this.#ino !== before) {
          const nl = data.indexOf(NEWLINE);
          o = nl < 0 ? data.length : nl + 1;
          this.#midLine = false;
        }
      }
      while (o < data.length) {
        let end = data.length;
        if (this.#size + (end - o) > this.maxBytes) {
          // Whole lines that still fit, then a new file; a line longer than maxBytes gets one.
          const room = Math.max(0, this.maxBytes - this.#size);
          const cut = data.subarray(o, o + room).lastIndexOf(NEWLINE);
          if (cut >= 0) end = o + cut + 1;
          else if (this.#size > 0 && !this.#midLine) {
            await this.#rotate();
            continue;
          } else {
            // Alone in a file, or the end of a half-written one: never split a line.
            const nl = data.indexOf(NEWLINE, o);
            end = nl < 0 ? data.length : nl + 1;
          }
        }
        while (o < end) {
          const n = await this.#file!.write(data.subarray(o, end));
          o += n;
          this.#size += n;
          if (n) this.#midLine = data[o - 1] !== NEWLINE;
        }
        if (o < data.length) await this.#rotate();
      }
      return { written: o };
    } catch (error) {
      // Reopen next time (a rename may be half done); the same file goes on where it stopped.
      this.close();
      return { written: o, error };
    }
  }

  /** Has the path been removed or replaced since we opened it? */
  async #replaced(): Promise<boolean> {
    try {
      return (await Deno.stat(this.name)).ino !== this.#ino;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return true;
      throw e;
    }
  }

  /** path.(keep-1) → path.keep, …, path → path.1 (rename replaces the oldest), then a new path. */
  async #rotate(): Promise<void> {
    this.close();
    for (let i = this.keep - 1; i >= 1; i--) {
      try {
        await Deno.rename(`${this.name}.${i}`, `${this.name}.${i + 1}`);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
    }
    if (this.keep > 0) await Deno.rename(this.name, `${this.name}.1`);
    else await Deno.remove(this.name);
    this.#midLine = false;
    await this.open();
  }

  close(): void {
    try {
      this.#file?.close();
    } catch { /* already closed */ }
    this.#file = undefined;
  }
}
