/** Point the AWS SDK at an emulator for the duration of a test, and put the environment back. */
export function awsEnv(url: string): Record<string, string> {
  return {
    AWS_ENDPOINT_URL: url,
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "AKIDEMULATOR",
    AWS_SECRET_ACCESS_KEY: "emulator-secret",
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_CONFIG_FILE: "/nonexistent/aws-config",
    AWS_SHARED_CREDENTIALS_FILE: "/nonexistent/aws-credentials",
  };
}

export async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = new Map<string, string | undefined>();
  for (const [k, v] of Object.entries(vars)) {
    saved.set(k, Deno.env.get(k));
    Deno.env.set(k, v);
  }
  for (const k of ["AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"]) {
    if (!(k in vars)) {
      saved.set(k, Deno.env.get(k));
      Deno.env.delete(k);
    }
  }
  try {
    return await fn();
  } finally {
    for (const [k, v] of saved) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
  }
}
