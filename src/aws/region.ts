/**
 * The region calls go to, as the SDK settles it: the flag, the environment, else the profile's
 * `region` (which only the SDK's config loader reads). Loads client-sts, the smallest client.
 */
import { type AwsOptions, clientConfig, explicitRegion } from "./config.ts";

export async function resolvedRegion(
  aws: AwsOptions,
): Promise<{ region: string; from: "flag" | "profile" } | undefined> {
  const flag = explicitRegion(aws);
  if (flag) return { region: flag, from: "flag" };
  const { STSClient } = await import("@aws-sdk/client-sts");
  const c = new STSClient(clientConfig(aws));
  try {
    const r = await c.config.region().catch(() => "");
    return r ? { region: r, from: "profile" } : undefined;
  } finally {
    c.destroy();
  }
}
