/**
 * A failure the user can act on: one line saying what went wrong and what to do. main.ts prints
 * `error: <message>` and exits with `exitCode`; anything else is a bug and gets a stack trace.
 */
export class UserError extends Error {
  override name = "UserError";
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}

/** Exit codes, stable for scripts. */
export const ExitCode = {
  Ok: 0,
  Failure: 1,
  Usage: 2,
  /** Credentials missing, expired or denied. */
  Auth: 3,
  /** Target unknown, ambiguous or not online. */
  Target: 4,
  /** The remote end refused or the session could not be kept. */
  Remote: 5,
  Interrupted: 130,
} as const;
