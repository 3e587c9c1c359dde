/**
 * The AWS region the agent's own calls (Parameter Store) go to: AWS_REGION or AWS_DEFAULT_REGION
 * when set, else the instance's region from instance metadata (IMDSv2: a session token, then
 * `placement/region`). The SDK's default chain finds the instance profile's credentials through
 * IMDS by itself but not the region, hence this.
 *
 * AWS_EC2_METADATA_SERVICE_ENDPOINT and AWS_EC2_METADATA_DISABLED are honoured as the SDK honours
 * them for credentials.
 */
import { explicitRegion } from "../src/aws/config.ts";

const IMDS = "http://169.254.169.254";
/** Metadata answers in milliseconds on EC2; off EC2 nothing answers, so do not wait long. */
const TIMEOUT_MS = 1500;

type Env = Record<string, string | undefined>;

/** The region, or undefined when neither the environment nor instance metadata tells it. */
export async function agentRegion(env: Env = Deno.env.toObject()): Promise<string | undefined> {
  return explicitRegion({}, env) ?? await imdsRegion(env);
}

async function imdsRegion(env: Env): Promise<string | undefined> {
  if (env.AWS_EC2_METADATA_DISABLED?.toLowerCase() === "true") return undefined;
  const base = (env.AWS_EC2_METADATA_SERVICE_ENDPOINT || IMDS).replace(/\/+$/, "");
  try {
    const token = await call(`${base}/latest/api/token`, {
      method: "PUT",
      headers: { "X-aws-ec2-metadata-token-ttl-seconds": "60" },
    });
    const region = await call(`${base}/latest/meta-data/placement/region`, {
      headers: { "X-aws-ec2-metadata-token": token },
    });
    return /^[a-z]{2}(-[a-z]+)+-\d+$/.test(region) ? region : undefined;
  } catch {
    return undefined;
  }
}

async function call(url: string, init: RequestInit): Promise<string> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), TIMEOUT_MS);
  try {
    const res = await fetch(url, { ...init, signal: abort.signal });
    const text = await res.text();
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
    return text.trim();
  } finally {
    clearTimeout(timer);
  }
}
