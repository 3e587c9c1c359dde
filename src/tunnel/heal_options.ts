/**
 * Healing settings for `start`: from options when the CLI passes them, else from the
 * environment (SSM_PROXY_KEEPALIVE_SECONDS, SSM_PROXY_GIVE_UP_SECONDS,
 * SSM_PROXY_MAX_SESSION_SECONDS), else defaults. Pure apart from reading `env`.
 */
import { ExitCode, UserError } from "../errors.ts";

export interface HealSettings {
  /** Stripe PING interval; 0 turns the keepalive off. */
  keepaliveMs: number;
  giveUpMs: number;
  /** Known maximum session duration (the account's Session Manager preference), if any. */
  maxSessionMs?: number;
}

export interface HealFlags {
  keepaliveSeconds?: number | string;
  giveUpSeconds?: number | string;
  maxSessionSeconds?: number | string;
}

export function healSettings(
  f: HealFlags,
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): HealSettings {
  const pick = (v: number | string | undefined, name: string, flag: string) => {
    const raw = v ?? env(name);
    if (raw === undefined || raw === "") return undefined;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < 0) {
      throw new UserError(`${flag} must be a number of seconds, not ${raw}`, ExitCode.Usage);
    }
    return n * 1000;
  };
  const keepaliveMs = pick(f.keepaliveSeconds, "SSM_PROXY_KEEPALIVE_SECONDS", "--keepalive") ??
    10_000;
  const giveUpMs = pick(f.giveUpSeconds, "SSM_PROXY_GIVE_UP_SECONDS", "--give-up") ?? 600_000;
  const max = pick(f.maxSessionSeconds, "SSM_PROXY_MAX_SESSION_SECONDS", "--max-session");
  return { keepaliveMs, giveUpMs, ...(max ? { maxSessionMs: max } : {}) };
}
