/**
 * Processes inside lab namespaces. `ip netns exec` execs the command after entering the
 * namespace, so the pid we get is the command's own and signals reach it directly.
 */

export interface ExecResult {
  code: number;
  success: boolean;
  stdout: string;
  stderr: string;
}

/** A long-running process; its output is kept (interleaved, in arrival order) for diagnosis. */
export class LabProcess {
  readonly pid: number;
  readonly status: Promise<Deno.CommandStatus>;
  #out = "";
  #child: Deno.ChildProcess;
  #done = false;
  #lineWaiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];

  constructor(readonly label: string, argv: string[], env: Record<string, string>) {
    this.#child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.pid = this.#child.pid;
    const pumps = [this.#pump(this.#child.stdout), this.#pump(this.#child.stderr)];
    this.status = this.#child.status.then(async (s) => {
      await Promise.all(pumps);
      this.#done = true;
      return s;
    });
  }

  get exited(): boolean {
    return this.#done;
  }

  /** Everything printed so far (stdout and stderr). */
  output(): string {
    return this.#out;
  }

  /** The last `n` lines, for error messages. */
  tail(n = 20): string {
    return this.#out.trimEnd().split("\n").slice(-n).join("\n");
  }

  /** Resolves with the first output line matching `re` (already printed or to come). */
  waitForLine(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    for (const line of this.#out.split("\n")) {
      const m = line.match(re);
      if (m) return Promise.resolve(m);
    }
    const { promise, resolve, reject } = Promise.withResolvers<RegExpMatchArray>();
    const timer = setTimeout(() => {
      reject(
        new Error(`${this.label}: no line matching ${re} in ${timeoutMs} ms:\n${this.tail()}`),
      );
    }, timeoutMs);
    this.#lineWaiters.push({
      re,
      resolve: (m) => {
        clearTimeout(timer);
        resolve(m);
      },
    });
    this.status.then(() => {
      clearTimeout(timer);
      reject(new Error(`${this.label} exited before printing ${re}:\n${this.tail()}`));
    });
    return promise;
  }

  kill(signal: Deno.Signal = "SIGTERM"): void {
    if (this.#done) return;
    try {
      this.#child.kill(signal);
    } catch {
      // Already gone.
    }
  }

  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
  async stop(graceMs = 3000): Promise<Deno.CommandStatus> {
    this.kill("SIGTERM");
    const timer = setTimeout(() => this.kill("SIGKILL"), graceMs);
    try {
      return await this.status;
    } finally {
      clearTimeout(timer);
    }
  }

  async #pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    const dec = new TextDecoder();
    let partial = "";
    for await (const chunk of stream) {
      const text = dec.decode(chunk, { stream: true });
      this.#out += text;
      partial += text;
      const lines = partial.split("\n");
      partial = lines.pop()!;
      for (const line of lines) this.#notify(line);
    }
    if (partial) this.#notify(partial);
  }

  #notify(line: string): void {
    this.#lineWaiters = this.#lineWaiters.filter((w) => {
      const m = line.match(w.re);
      if (m) w.resolve(m);
      return !m;
    });
  }
}

/** Run to completion and collect output. */
export async function run(argv: string[], env?: Record<string, string>): Promise<ExecResult> {
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    success: out.success,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

/** Run and throw with the command's stderr when it fails. */
export async function must(argv: string[]): Promise<string> {
  const r = await run(argv);
  if (!r.success) throw new Error(`${argv.join(" ")} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}
