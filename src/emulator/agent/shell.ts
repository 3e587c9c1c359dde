/**
 * One emulated agent shell session, Standard_Stream or InteractiveCommands without KMS
 * (specs/ssm-protocol.md §2, §6, §9): no handshake, so the engine takes input at once and its
 * seq 0 (SYN) is the shell's first output; a real pty (pty_shell.ts); input PayloadType 1 to the
 * pty in order and with backpressure; PayloadType 3 `{"cols":N,"rows":N}` resizes it; output as
 * PayloadType 1 through the same paced pump as a Port session (session_core.ts).
 *
 * End: when the program has exited and its output is read, sent and acked, the agent sends
 * agent_session_state "Terminating" and the session ends with no output text (MGS then sends
 * channel_closed with empty Output, §10/§11.6). No exit code is reported (§9). Flag 2
 * (TerminateSession) and session close kill the process group.
 */
import { parseFlag, PayloadType } from "../../ssm/message.ts";
import { corruptPayload } from "./corrupt.ts";
import { resolveShellDocument, type ShellDocument } from "./document.ts";
import { PtyShell } from "./pty_shell.ts";
import type { AgentSessionInit } from "./session.ts";
import { EmulatedSessionCore } from "./session_core.ts";

/** How long a finished shell waits for the client to ack its last output before ending anyway. */
const FINAL_ACK_WAIT_MS = 10_000;
const TERMINATE_SESSION = 2;

/** The shell's environment (§9): ours, TERM always, LANG if unset, then the configured extras. */
export function shellEnvironment(
  inherited: Record<string, string>,
  extra: Record<string, string>,
): Record<string, string> {
  const env: Record<string, string> = { ...inherited, TERM: "xterm-256color" };
  if (env.LANG === undefined) env.LANG = "C.UTF-8";
  return { ...env, ...extra };
}

/** A Size payload, or undefined when it is not `{"cols":uint,"rows":uint}`. */
export function parseSize(payload: Uint8Array): { cols: number; rows: number } | undefined {
  try {
    const v = JSON.parse(new TextDecoder().decode(payload));
    const ok = (n: unknown) => Number.isInteger(n) && (n as number) >= 0;
    return ok(v?.cols) && ok(v?.rows) ? { cols: v.cols, rows: v.rows } : undefined;
  } catch {
    return undefined;
  }
}

export class ShellSession extends EmulatedSessionCore<ShellDocument> {
  #shell?: PtyShell;
  #finishedAt?: number;
  /** Bytes of PayloadType 1 input accepted so far: the corruptInput fault's offsets. */
  #inputOffset = 0;
  #corruptAfter?: number;

  constructor(init: AgentSessionInit) {
    super(init, {
      resolve: resolveShellDocument,
      engine: (doc) => ({
        sessionType: doc?.sessionType ?? "Standard_Stream",
        properties: null,
        handshake: false,
      }),
      endedWithoutReason: "shell finished",
    });
  }

  /** The shell's pid (its process group), once started. */
  get pid(): number | undefined {
    return this.#shell?.pid;
  }

  corruptInput(afterBytes: number): void {
    this.#corruptAfter = afterBytes;
  }

  /** At the first attach: no handshake, so the pty starts at once. */
  protected onStart(): void {
    const { agent, log } = this.init;
    try {
      this.#shell = new PtyShell({
        argv: this.doc!.argv,
        env: shellEnvironment(Deno.env.toObject(), agent.shellEnv),
        initialWaitMs: agent.shellInitialWaitMs,
        cwd: agent.shellCwd,
      }, {
        out: (bytes) => this.pump.push(bytes),
        room: () => this.pump.room(),
        inputReady: () => this.engine.retryInput(Date.now()),
        finished: () => {
          this.#finishedAt = Date.now();
          this.#maybeEnd();
        },
        log,
      });
    } catch (e) {
      this.end(`Unable to start the shell: ${(e as Error).message}`);
      return;
    }
    log(`agent: ${this.init.sessionId}: ${this.doc!.sessionType} pid ${this.#shell.pid}`);
  }

  protected override afterStep(): void {
    this.#maybeEnd();
  }

  /** The processes first, before anything that could wait (the pump, the loops). */
  override async close(): Promise<void> {
    const shell = this.#shell?.close();
    await super.close();
    await shell;
  }

  protected async onClose(): Promise<void> {
    await this.#shell?.close();
  }

  /** Ends a finished shell once its output is all on the wire and acked (or waited for enough). */
  #maybeEnd(): void {
    if (this.ended || this.#finishedAt === undefined) return;
    const drained = this.pump.buffered === 0 && this.engine.unackedCount === 0;
    if (!drained && Date.now() - this.#finishedAt < FINAL_ACK_WAIT_MS) return;
    this.init.sessionState?.("Terminating");
    this.end(undefined);
  }

  protected onInput(payloadType: number, payload: Uint8Array): boolean {
    switch (payloadType) {
      case PayloadType.Output:
        return this.#write(payload);
      case PayloadType.Size: {
        const size = parseSize(payload);
        if (size) this.#shell?.resize(size.cols, size.rows);
        else this.init.log("agent: ignored a malformed Size message");
        return true;
      }
      case PayloadType.Flag: {
        let flag: number | undefined;
        try {
          flag = parseFlag(payload);
        } catch {
          flag = undefined;
        }
        if (flag === TERMINATE_SESSION) this.end(undefined);
        return true;
      }
      default:
        return true;
    }
  }

  #write(payload: Uint8Array): boolean {
    if (!this.#shell) return true;
    const armed = this.#corruptAfter;
    const hit = armed === undefined
      ? { payload }
      : corruptPayload(payload, this.#inputOffset, armed);
    if (!this.#shell.input(hit.payload)) return false;
    this.#inputOffset += payload.length;
    if (hit.at !== undefined) {
      this.#corruptAfter = undefined;
      this.init.log(`agent: fault: corrupted shell input byte at offset ${hit.at}`);
    }
    return true;
  }
}
