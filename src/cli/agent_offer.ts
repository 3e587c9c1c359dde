/**
 * `start` meeting an instance without a usable ssm-proxy-agent (nothing on the agent port, or
 * one that does not speak our protocol): say so in one line, then install it when asked to
 * (`--install-agent`) or when the user says yes at the prompt, and connect again.
 */
import type { AwsOptions } from "../aws/config.ts";
import type { ResolvedTarget } from "../aws/targets.ts";
import { ExitCode, UserError } from "../errors.ts";
import { AgentUnavailable } from "../tunnel/stripe.ts";

export interface OfferOptions {
  aws: AwsOptions;
  target: ResolvedTarget;
  /** `--install-agent`: install without asking. */
  install?: boolean;
  binary?: string;
  /** Sessions the upload is split across; the default of `agent install` when absent. */
  parallel?: number;
  progress(line: string): void;
  /** Asks yes/no; undefined when nobody can answer (no terminal, background). */
  ask?: (question: string) => boolean;
  /** How to install; `ssm-proxy agent install`'s code unless a test says otherwise. */
  installer?: (force: boolean) => Promise<void>;
  /** How long a just-installed agent may take to listen. */
  startingMs?: number;
}

export function terminalAsk(): OfferOptions["ask"] {
  if (!Deno.stdin.isTerminal() || !Deno.stderr.isTerminal()) return undefined;
  return (q) => confirm(q);
}

export async function connectOrInstall<T>(connect: () => Promise<T>, o: OfferOptions): Promise<T> {
  try {
    return await connect();
  } catch (e) {
    if (!(e instanceof AgentUnavailable)) throw e;
    const id = o.target.instanceId;
    let go = o.install === true;
    if (!go && o.ask) {
      o.progress(e.message);
      go = o.ask(
        `ssm-proxy: ${e.reason === "old" ? "update" : "install"} ssm-proxy-agent on ${id} now?`,
      );
    }
    if (!go) {
      throw new UserError(
        `${
          e.message.replace(/ \(ssm-proxy agent install.*$/, "")
        }; fix: ssm-proxy agent install --target ${id}, or start again with --install-agent`,
        ExitCode.Remote,
      );
    }
    o.progress(`${e.reason === "old" ? "updating" : "installing"} ssm-proxy-agent on ${id}`);
    const force = e.reason === "old";
    if (o.installer) await o.installer(force);
    else {
      const { installOnTarget } = await import("./agent.ts");
      await installOnTarget(o.aws, o.target, { binary: o.binary, force, parallel: o.parallel });
    }
    o.progress("connecting again");
    return await connectWhileStarting(connect, o.startingMs);
  }
}

/**
 * systemd calls a Type=simple unit active once it has forked, a moment before the agent
 * listens: give a just-installed agent a few seconds to open its port.
 */
async function connectWhileStarting<T>(connect: () => Promise<T>, forMs = 20_000): Promise<T> {
  const deadline = Date.now() + forMs;
  for (;;) {
    try {
      return await connect();
    } catch (e) {
      if (!(e instanceof AgentUnavailable) || e.reason !== "missing" || Date.now() > deadline) {
        throw e;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}
