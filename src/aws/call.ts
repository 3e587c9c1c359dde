/**
 * One SDK call: make the client, insist on a region, run, map errors, close the sockets.
 * A client per call keeps no connections open between calls (tests and short-lived commands
 * leak nothing) and costs little next to the request itself.
 */

import { type AwsOptions, type AwsService, missingRegion } from "./config.ts";
import { toUserError } from "./errors.ts";

export interface SdkClient {
  destroy(): void;
  config: { region: () => Promise<string> };
}

export interface CallSpec {
  service: AwsService;
  /** IAM action, e.g. `ssm:StartSession`, named in error messages. */
  action: string;
  /** The instance or session concerned, named in error messages. */
  subject?: string;
}

export async function callAws<C extends SdkClient, T>(
  o: AwsOptions,
  spec: CallSpec,
  make: () => Promise<C>,
  fn: (client: C) => Promise<T>,
): Promise<T> {
  const client = await make();
  try {
    const region = await client.config.region().catch(() => "");
    if (!region) throw missingRegion(o);
    try {
      return await fn(client);
    } catch (e) {
      throw toUserError(e, { ...spec, profile: o.profile, region });
    }
  } finally {
    client.destroy();
  }
}
