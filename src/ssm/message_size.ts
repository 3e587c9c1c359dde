/** SSM_PROXY_MESSAGE_SIZE: how large the data-channel messages we send may be. */
import { ExitCode, UserError } from "../errors.ts";

/**
 * Largest payload we put in one message to the agent. 1024 bytes is what the AWS plugin sends
 * and so what the real service is known to accept; larger messages cut per-message cost (the
 * limit on loopback) but are unproven against AWS, hence opt-in.
 */
export function messageSize(env = Deno.env.get("SSM_PROXY_MESSAGE_SIZE")): number {
  if (env === undefined || env === "") return 1024;
  const n = Number(env);
  if (!Number.isInteger(n) || n < 64 || n > 32768) {
    throw new UserError(
      `SSM_PROXY_MESSAGE_SIZE=${
        JSON.stringify(env)
      } is not a whole number of bytes from 64 to 32768`,
      ExitCode.Usage,
    );
  }
  return n;
}
