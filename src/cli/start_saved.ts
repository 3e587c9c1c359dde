/**
 * `start [NAME]`: a saved tunnel (the config's `tunnels:`, else the team's entry in Parameter
 * Store) supplies the flags the command line leaves out. The command line always wins.
 */
import { ExitCode, UserError } from "../errors.ts";
import { parseMode, type StartOptions } from "../start/options.ts";
import type { TunnelProfile } from "../config/tunnels.ts";
import { runStart } from "./start.ts";
import { requireRoot, useInvokingUsersConfig } from "./privileges.ts";

/** What commander hands over: every flag, defaults filled in. */
export type StartFlags =
  & Omit<StartOptions, "target" | "mode" | "name" | "stripes">
  & { target?: string; mode: string; name?: string; stripes: number | "auto"; config?: string };

/** Saved values under flags the user did not type; `given(flag)` says which they did. */
export function withSaved(
  flags: StartFlags,
  saved: TunnelProfile | undefined,
  given: (flag: string) => boolean,
): StartFlags {
  if (!saved) return flags;
  const pick = <T>(flag: string, mine: T, theirs: T | undefined): T =>
    given(flag) || theirs === undefined ? mine : theirs;
  return {
    ...flags,
    target: pick("target", flags.target, saved.target),
    cidr: pick("cidr", flags.cidr, saved.cidrs),
    exclude: pick("exclude", flags.exclude, saved.exclude),
    // --no-dns and --dns-domain each override both saved DNS keys: they answer one question.
    dnsDomain: given("dns")
      ? flags.dnsDomain
      : pick("dnsDomain", flags.dnsDomain, saved.dnsDomains),
    dns: given("dnsDomain") ? flags.dns : pick("dns", flags.dns, saved.dns),
    stripes: pick("stripes", flags.stripes, saved.stripes),
    mode: pick("mode", flags.mode, saved.mode),
    profile: pick("profile", flags.profile, saved.profile),
    region: pick("region", flags.region, saved.region),
  };
}

export async function runStartCommand(
  name: string | undefined,
  flags: StartFlags,
  given: (flag: string) => boolean,
): Promise<void> {
  if (name !== undefined && flags.name !== undefined && flags.name !== name) {
    throw new UserError(
      `start ${name} --name ${flags.name}: name the tunnel once (start ${name})`,
      ExitCode.Usage,
    );
  }
  // Before any lookup: a saved or team entry must not cost an AWS call only to fail on root.
  if (!flags.dryRun) requireRoot("ssm-proxy start");
  let merged = flags;
  if (name !== undefined) {
    useInvokingUsersConfig();
    const { findTunnel } = await import("../config/find.ts");
    const { ConfigError } = await import("../config/clusters.ts");
    const found = await findTunnel(name, {
      configFile: flags.config,
      aws: { profile: flags.profile, region: flags.region },
    }).catch((e) => {
      // With --target the saved entry is optional: a team lookup that fails (no permission,
      // no credentials yet) must not stop a tunnel the command line fully describes.
      if (flags.target === undefined || e instanceof ConfigError || !(e instanceof UserError)) {
        throw e;
      }
      console.error(`ssm-proxy: no saved settings for "${name}" (${e.message})`);
      return undefined;
    });
    if (!found && flags.target === undefined) {
      throw new UserError(
        `no saved tunnel named "${name}" (in your config's tunnels: or the team's /ssm-proxy/tunnels/${name}): add it with ssm-proxy config, or pass --target`,
        ExitCode.Usage,
      );
    }
    if (found) {
      console.error(`ssm-proxy: tunnel "${name}" from ${found.where}`);
      merged = withSaved(flags, found.profile, given);
    }
  }
  await runStart({
    ...merged,
    name: name ?? flags.name ?? "default",
    mode: parseMode(merged.mode),
  });
}
