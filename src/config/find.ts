/**
 * Named tunnels for `start NAME`, `stop NAME`, `status NAME`: the local config first, then the
 * team's entry in Parameter Store. The local one wins so that anyone can override a team entry
 * without asking the team.
 */
import { ExitCode, UserError } from "../errors.ts";
import type { AwsOptions } from "../aws/config.ts";
import { validName } from "../tunnel/state.ts";
import { readConfig } from "./file.ts";
import { fetchTeamTunnel, teamRoot } from "./team.ts";
import type { TunnelProfile } from "./tunnels.ts";

export interface FoundTunnel {
  profile: TunnelProfile;
  source: "local" | "team";
  /** `file:line`, or the parameter name. */
  where: string;
}

export interface FindOptions {
  /** `--config FILE` */
  configFile?: string;
  /** For the team lookup. */
  aws: AwsOptions;
  /** Parameter Store root (default /ssm-proxy). */
  teamPath?: string;
  env?: Record<string, string | undefined>;
}

/**
 * The tunnel called `name`, or undefined if neither the config nor the team has one. A broken
 * config or team entry is a ConfigError naming its place; a refused ssm:GetParameter is the
 * usual one-line access-denied UserError.
 */
export async function findTunnel(name: string, o: FindOptions): Promise<FoundTunnel | undefined> {
  if (!validName(name)) {
    throw new UserError(
      `"${name}" is not a tunnel name: 1 to 32 of a-z, 0-9, - and _, starting with a letter or digit`,
      ExitCode.Usage,
    );
  }
  const local = await readConfig(o.configFile, { env: o.env });
  const hit = local?.tunnels.find((t) => t.profile.name === name);
  if (local && hit) {
    return { profile: hit.profile, source: "local", where: `${local.path}:${hit.line}` };
  }
  const team = await fetchTeamTunnel(o.aws, teamRoot(o.teamPath), name);
  return team ? { ...team, source: "team" } : undefined;
}
