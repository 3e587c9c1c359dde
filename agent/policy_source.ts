/**
 * Rules from Parameter Store for the agent (agent.yaml's `policyParameterPath`, issue 15): read
 * at start and every `policyRefresh`, handed on only when they changed. The file's rules come
 * first and always apply (rules_parameter.ts says how the two combine).
 *
 * A read that fails (unreachable, access denied, a parameter with a YAML or rule error) changes
 * nothing: the last good rules stay, or none if there never were any, and the next refresh tries
 * again. It is all or nothing, so one broken parameter never leaves the others' allows in force
 * without a deny it held. Each distinct problem is logged once, not at every refresh, and shown by
 * status() until a read succeeds.
 */
import { getParametersByPath } from "../src/aws/parameters.ts";
import { UserError } from "../src/errors.ts";
import { agentRegion } from "./instance_region.ts";
import { formatDest, type PolicyRule } from "./rules.ts";
import { parseRulesParameters } from "./rules_parameter.ts";

export type LoadParameters = (path: string) => Promise<{ name: string; value: string }[]>;

export interface PolicySourceOptions {
  /** The Parameter Store path: every parameter under it, recursively. */
  path: string;
  refreshMs: number;
  log: (line: string) => void;
  /** Reads the parameters; default: GetParametersByPath with the instance's credentials. */
  load?: LoadParameters;
  /** Wall clock in ms, for the times in status(). */
  now?: () => number;
  /**
   * How long one read may take before it counts as failed (default 20s): the SDK sets no timeout
   * of its own, and a read that never ends would stop every later one.
   */
  timeoutMs?: number;
}

/** For status.json and `ssm-proxy-agent status`. */
export interface PolicySourceStatus {
  path: string;
  /** Parameters and rules in force (the last good read). */
  parameters: number;
  rules: number;
  /** When the rules in force were last read successfully (ISO 8601); absent: never. */
  loadedAt?: string;
  /** When the path was last read, successfully or not. */
  lastCheckedAt?: string;
  /** Why the last read failed; absent when it succeeded. */
  error?: string;
}

export class PolicySource {
  #opts: PolicySourceOptions;
  #load: LoadParameters;
  #now: () => number;
  #onRules: (rules: PolicyRule[]) => void = () => {};
  /** Canonical text of the rules in force, to tell a change from a re-read of the same. */
  #key = "[]";
  #parameters = 0;
  #rules = 0;
  #loadedAt?: number;
  #checkedAt?: number;
  #error?: string;
  #timer?: ReturnType<typeof setTimeout>;
  #inflight?: Promise<void>;
  #closed = false;

  constructor(opts: PolicySourceOptions) {
    this.#opts = opts;
    this.#load = opts.load ?? instanceLoader();
    this.#now = opts.now ?? Date.now;
  }

  /**
   * Reads once, then every refreshMs. `onRules` gets the store's rules whenever they differ from
   * the last it got (at first: none), so an empty or unreadable path at start calls it not at all.
   */
  async start(onRules: (rules: PolicyRule[]) => void): Promise<void> {
    this.#onRules = onRules;
    await this.check();
    this.#schedule();
  }

  /** One read now (start() and the timer call it; exposed for tests and a future reload). */
  check(): Promise<void> {
    this.#inflight ??= this.#read().finally(() => (this.#inflight = undefined));
    return this.#inflight;
  }

  status(): PolicySourceStatus {
    const iso = (ms?: number) => (ms === undefined ? undefined : new Date(ms).toISOString());
    return {
      path: this.#opts.path,
      parameters: this.#parameters,
      rules: this.#rules,
      ...(this.#loadedAt !== undefined ? { loadedAt: iso(this.#loadedAt) } : {}),
      ...(this.#checkedAt !== undefined ? { lastCheckedAt: iso(this.#checkedAt) } : {}),
      ...(this.#error ? { error: this.#error } : {}),
    };
  }

  /** Stops the refreshes; resolves once a read under way has finished (its result is dropped). */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#inflight?.catch(() => {});
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(async () => {
      await this.check();
      this.#schedule();
    }, this.#opts.refreshMs);
  }

  async #read(): Promise<void> {
    const { path, log } = this.#opts;
    let params: { name: string; value: string }[];
    let rules: PolicyRule[];
    try {
      params = await withTimeout(this.#load(path), this.#opts.timeoutMs ?? 20_000);
      rules = parseRulesParameters(params);
    } catch (e) {
      if (this.#closed) return;
      this.#checkedAt = this.#now();
      const why = oneLine(e);
      if (why !== this.#error) {
        const kept = this.#loadedAt === undefined
          ? "using agent.yaml's rules only until it can be read (retrying every " +
            `${seconds(this.#opts.refreshMs)})`
          : `keeping the last good ${plural(this.#rules, "rule")}`;
        log(`policy from Parameter Store ${path}: ${why}; ${kept}`);
      }
      this.#error = why;
      return;
    }
    if (this.#closed) return;
    const key = canonical(rules);
    const changed = key !== this.#key;
    const first = this.#loadedAt === undefined;
    const worth = changed || first || this.#error !== undefined;
    if (changed) {
      try {
        this.#onRules(rules);
      } catch (e) {
        // Not taken: the rules in force stay as they are, and the next read offers these again.
        this.#checkedAt = this.#now();
        log(`policy from Parameter Store ${path}: applying the rules failed: ${oneLine(e)}`);
        return;
      }
    }
    this.#checkedAt = this.#loadedAt = this.#now();
    this.#error = undefined;
    this.#parameters = params.length;
    this.#rules = rules.length;
    this.#key = key;
    if (worth) {
      log(
        `policy from Parameter Store ${path}: ${plural(rules.length, "rule")} from ` +
          `${plural(params.length, "parameter")}${changed || first ? "" : " (unchanged)"}`,
      );
    }
  }
}

/** The default loader: the instance's credentials, AWS_REGION or the instance's region. */
function instanceLoader(): LoadParameters {
  let region: string | undefined;
  return async (path) => {
    region ??= await agentRegion();
    if (!region) {
      throw new UserError(
        "cannot tell the AWS region: set AWS_REGION in the agent's environment (instance " +
          "metadata did not answer)",
      );
    }
    const params = await getParametersByPath({ region }, path);
    return params.map((p) => ({ name: p.name, value: p.value }));
  };
}

/** `p`, or a failure after `ms`; a late answer is dropped. */
async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new UserError(`no answer within ${seconds(ms)}`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

function canonical(rules: PolicyRule[]): string {
  return JSON.stringify(rules.map((r) => [
    r.principals ?? null,
    r.allow.map(formatDest),
    r.deny.map(formatDest),
  ]));
}

function oneLine(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  return message.split("\n")[0];
}

const seconds = (ms: number) => (ms % 1000 ? `${ms}ms` : `${ms / 1000}s`);

const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;
