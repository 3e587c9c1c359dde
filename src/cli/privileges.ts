/** Root checks and the sudo environment (DESIGN §4 "Credentials"). */
import { ExitCode, UserError } from "../errors.ts";

export function requireRoot(command: string): void {
  if (Deno.uid() !== 0) {
    throw new UserError(
      `${command} creates a network interface and routes, which needs root: run it with sudo`,
      ExitCode.Usage,
    );
  }
}

/**
 * Under sudo, HOME is root's but the AWS profile is the invoking user's: point the SDK at the
 * user's config and credentials files (read only; nothing root-owned is written there).
 */
export function useInvokingUsersAwsConfig(): void {
  const user = Deno.env.get("SUDO_USER");
  if (!user || user === "root") return;
  const home = homeOf(user);
  if (!home) return;
  if (!Deno.env.get("AWS_CONFIG_FILE")) Deno.env.set("AWS_CONFIG_FILE", `${home}/.aws/config`);
  if (!Deno.env.get("AWS_SHARED_CREDENTIALS_FILE")) {
    Deno.env.set("AWS_SHARED_CREDENTIALS_FILE", `${home}/.aws/credentials`);
  }
}

/**
 * Under sudo, ssm-proxy's own config (saved tunnels, clusters) is also the invoking user's:
 * `sudo ssm-proxy start prod` must find what `ssm-proxy config pull` wrote as that user.
 */
export function useInvokingUsersConfig(): void {
  const user = Deno.env.get("SUDO_USER");
  if (!user || user === "root") return;
  if (Deno.env.get("SSM_PROXY_CONFIG") || Deno.env.get("XDG_CONFIG_HOME")) return;
  const home = homeOf(user);
  if (home) Deno.env.set("XDG_CONFIG_HOME", `${home}/.config`);
}

function homeOf(user: string): string | undefined {
  try {
    for (const line of Deno.readTextFileSync("/etc/passwd").split("\n")) {
      const f = line.split(":");
      if (f[0] === user) return f[5];
    }
  } catch { /* macOS keeps users in Directory Services */ }
  return Deno.build.os === "darwin" ? `/Users/${user}` : undefined;
}
