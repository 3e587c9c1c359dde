/**
 * Idle stop (config.ts): once no tunnel has been connected for `afterMs`, run a command (by
 * default `systemctl poweroff`) so an instance kept only for ssm-proxy stops costing money.
 *
 * The idle clock starts with the agent and restarts whenever the last tunnel goes; a tunnel in
 * its lease grace is idle (its laptop is gone, or healing, and a healing client that comes back
 * re-arms everything). The command runs once per idle spell: if it fails, or does not stop the
 * machine, the agent keeps serving and does not retry until a tunnel has come and gone again.
 * It runs without a shell: the config's text is split on whitespace, so nothing is interpreted.
 */
import { fmtDuration } from "../src/format.ts";
import type { IdleStopStatus } from "./status.ts";

/** setTimeout's limit (2^31-1 ms, about 24.8 days); longer waits are re-armed in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface IdleStopOptions {
  afterMs: number;
  command: string[];
  log: (line: string) => void;
  /** Clock (ms); tests pass a fake one and call check() themselves. */
  now?: () => number;
  /** Runs the command; a one-line problem, or undefined on success. Default: runCommand. */
  run?: (argv: string[]) => Promise<string | undefined>;
}

export class IdleStop {
  /** Since when nothing is connected; undefined while a tunnel is. */
  idleSince?: number;
  /** When the command last ran. */
  ranAt?: number;
  #o: IdleStopOptions;
  #now: () => number;
  #timer?: ReturnType<typeof setTimeout>;
  #running?: Promise<void>;
  /** The idleSince whose spell already ran the command: once per spell. */
  #ranFor?: number;
  #closed = false;

  constructor(o: IdleStopOptions, connected = 0) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.update(connected);
  }

  /** The number of connected tunnels changed (or may have). */
  update(connected: number): void {
    if (this.#closed) return;
    if (connected > 0) {
      this.idleSince = undefined;
      clearTimeout(this.#timer);
      this.#timer = undefined;
    } else if (this.idleSince === undefined) {
      this.idleSince = this.#now();
      this.#arm();
    }
  }

  status(): IdleStopStatus {
    const iso = (t?: number) => (t === undefined ? null : new Date(t).toISOString());
    return {
      afterSeconds: this.#o.afterMs / 1000,
      command: this.#o.command,
      idleSince: iso(this.idleSince),
      ranAt: iso(this.ranAt),
    };
  }

  /** Stop the clock; waits (briefly) for a command still running. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    if (!this.#running) return;
    let t: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.#running, new Promise((r) => (t = setTimeout(r, 2000)))]);
    clearTimeout(t);
  }

  /** Run the command if this idle spell has lasted long enough and has not run it yet. */
  check(): boolean {
    const since = this.idleSince;
    if (this.#closed || since === undefined || this.#ranFor === since) return false;
    if (this.#now() - since < this.#o.afterMs) return false;
    this.#ranFor = since;
    const argv = this.#o.command;
    this.ranAt = this.#now();
    this.#o.log(
      `no tunnel connected for ${fmtDuration(this.#o.afterMs)}; ` +
        `running the idle stop command: ${argv.join(" ")}`,
    );
    this.#running = (this.#o.run ?? runCommand)(argv).then((problem) => {
      if (problem) this.#o.log(`idle stop command failed: ${problem}`);
    }).finally(() => (this.#running = undefined));
    return true;
  }

  #arm(): void {
    clearTimeout(this.#timer);
    const since = this.idleSince!;
    const left = since + this.#o.afterMs - this.#now();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#closed || this.idleSince !== since || this.check()) return;
      if (this.#ranFor !== since) this.#arm(); // woken early (a long wait is done in steps)
    }, Math.min(Math.max(0, left), MAX_TIMER_MS));
  }
}

/** Run argv without a shell; a one-line problem, or undefined when it exited 0. */
export async function runCommand(argv: string[]): Promise<string | undefined> {
  try {
    const out = await new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    if (out.success) return undefined;
    const err = new TextDecoder().decode(out.stderr).trim().split("\n")[0];
    return `${argv[0]} exited with status ${out.code}${err ? `: ${err}` : ""}`;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return `${argv[0]}: command not found`;
    return `${argv[0]}: ${(e as Error).message}`;
  }
}
