/**
 * Ctrl-C and SIGTERM for the long-running commands (forward, start, eks connect, emulator). The
 * contract: exit 0 within 1 s of the signal, in any phase, after undoing what the command changed.
 *
 * So the listeners go in before any setup (a signal while resolving the target or waiting for a
 * handshake must not kill the process with the system half changed), and stay until exit (a
 * second Ctrl-C must not cut the undo short). The undo's network parts are bounded (`within`): a
 * TerminateSession to an endpoint that no longer answers must not hold the process. And the end
 * is an explicit exit: a backoff timer, a keep-alive socket or a pending poll left by some layer
 * must not keep a stopped command alive.
 */

export type StopSignal = "SIGINT" | "SIGTERM";

const STOP_SIGNALS: StopSignal[] = ["SIGINT", "SIGTERM"];

/** What a network undo step (ending sessions, closing servers) may take before we go on. */
export const NETWORK_UNDO_MS = 350;

/** A command interrupted by a stop signal: the reason its AbortSignal carries. */
export class Stopped extends Error {
  override name = "Stopped";
  constructor(readonly signal: StopSignal) {
    super(`stopped (${signal})`);
  }
}

/** The stop signals of one command, from construction until the process exits. */
export class StopSignals {
  readonly #ctl = new AbortController();
  readonly #stopped = Promise.withResolvers<StopSignal>();
  readonly #handlers: [StopSignal, () => void][];

  constructor(onRepeat: (signal: StopSignal) => void = () => {}) {
    this.#handlers = STOP_SIGNALS.map((s) => {
      const h = () => {
        if (this.#ctl.signal.aborted) return onRepeat(s);
        this.#ctl.abort(new Stopped(s));
        this.#stopped.resolve(s);
      };
      Deno.addSignalListener(s, h);
      return [s, h];
    });
  }

  /** Aborted (with a Stopped reason) at the first signal. */
  get abort(): AbortSignal {
    return this.#ctl.signal;
  }

  /** Resolves with the first signal. */
  get stopped(): Promise<StopSignal> {
    return this.#stopped.promise;
  }

  /** The first signal, once one came. */
  get signal(): StopSignal | undefined {
    return this.#ctl.signal.aborted ? (this.#ctl.signal.reason as Stopped).signal : undefined;
  }

  /** `p`, unless a signal comes first: then it rejects with Stopped and `p` goes on unwatched. */
  race<T>(p: Promise<T>): Promise<T> {
    return raceAbort(p, this.#ctl.signal);
  }

  /** For a command that ends by itself (not by a signal) and returns normally. */
  dispose(): void {
    for (const [s, h] of this.#handlers) Deno.removeSignalListener(s, h);
  }
}

/** `p`, or the signal's reason as a rejection if it is aborted first. */
export function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    p.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Waits for `p` to settle, at most `ms`; true if it did. Never rejects. */
export async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([p.then(() => true, () => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The end of a command stopped by a signal: its one line, then exit 0 whatever is still open. */
export function exitStopped(line: string): never {
  console.error(`ssm-proxy: ${line}`);
  Deno.exit(0);
}
