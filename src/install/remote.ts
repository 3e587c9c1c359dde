/**
 * Runs one of scripts.ts's programs on an instance through an AWS-StartInteractiveCommand
 * session and turns its pty output into marker lines the caller can wait for.
 */
import type { AwsOptions } from "../aws/config.ts";
import { ExitCode, UserError } from "../errors.ts";
import type { ShellSession } from "../ssm/shell_session.ts";
import { type Marker, parseMarkers } from "./scripts.ts";

export const SHELL_DOCUMENT = "AWS-StartInteractiveCommand";

export class RemoteScript {
  #session!: ShellSession;
  #decoder = new TextDecoder();
  #rest = "";
  #markers: Marker[] = [];
  #other: string[] = [];
  #waiter?: () => void;
  #ended = false;
  #endMessage = "";

  private constructor(private instanceId: string) {}

  static async start(
    aws: AwsOptions,
    instanceId: string,
    script: string,
    log?: (line: string) => void,
  ): Promise<RemoteScript> {
    const ssm = await import("../aws/ssm.ts");
    const { ShellSession } = await import("../ssm/shell_session.ts");
    const r = new RemoteScript(instanceId);
    const grant = await ssm.startSession(aws, {
      target: instanceId,
      documentName: SHELL_DOCUMENT,
      parameters: { command: [script] },
      reason: "ssm-proxy agent install/status/uninstall",
    });
    r.#session = await ShellSession.open({
      grant,
      api: ssm.sessionApi(aws),
      output: (bytes) => r.#onOutput(bytes),
      log,
    });
    r.#session.ended.then((end) => {
      r.#ended = true;
      r.#endMessage = end.message;
      r.#wake();
    });
    return r;
  }

  get session(): ShellSession {
    return this.#session;
  }

  /** The session has ended (the script exited, or AWS or we ended it). */
  get ended(): boolean {
    return this.#ended;
  }

  /** Output lines that were not markers: what the shell said on its own (errors, mostly). */
  get otherOutput(): string[] {
    return this.#other;
  }

  /**
   * The next marker. A FAIL marker becomes a UserError carrying the script's own words; the
   * session ending first becomes one naming the last thing the shell printed.
   */
  async next(): Promise<Marker> {
    while (this.#markers.length === 0) {
      if (this.#ended) {
        this.#consume(this.#decoder.decode() + "\n");
        if (this.#markers.length > 0) break;
        const said = this.#other.slice(-3).join(" / ");
        throw new UserError(
          `the command on ${this.instanceId} ended unexpectedly${
            said ? `: ${said}` : ` (${this.#endMessage})`
          }`,
          ExitCode.Remote,
        );
      }
      await new Promise<void>((r) => (this.#waiter = r));
    }
    const m = this.#markers.shift()!;
    if (m.word === "FAIL") {
      throw new UserError(`on ${this.instanceId}: ${m.text}`, ExitCode.Remote);
    }
    return m;
  }

  /** The next marker, which must be `word`. */
  async expect(word: string): Promise<string> {
    const m = await this.next();
    if (m.word !== word) {
      throw new UserError(
        `unexpected answer from ${this.instanceId}: ${m.word} ${m.text} (wanted ${word})`,
        ExitCode.Remote,
      );
    }
    return m.text;
  }

  /** Every marker until DONE (or the end), as word → text (repeated words keep a list). */
  async collect(): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (;;) {
      const m = await this.next();
      if (m.word === "DONE") return out;
      out.set(m.word, [...(out.get(m.word) ?? []), m.text]);
    }
  }

  write(text: string | Uint8Array): Promise<void> {
    return this.#session.write(typeof text === "string" ? new TextEncoder().encode(text) : text);
  }

  /** Ends the session if the script has not already (TerminateSession by flag and API). */
  async close(): Promise<void> {
    await this.#session.terminate();
  }

  #onOutput(bytes: Uint8Array): void {
    this.#consume(this.#decoder.decode(bytes, { stream: true }));
  }

  #consume(text: string): void {
    const { markers, other, rest } = parseMarkers(this.#rest + text);
    this.#rest = rest;
    this.#markers.push(...markers);
    this.#other.push(...other);
    if (this.#other.length > 50) this.#other.splice(0, this.#other.length - 50);
    if (markers.length > 0) this.#wake();
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }
}
