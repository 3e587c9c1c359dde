/**
 * Applies and removes the forwarding/NAT rules of nat_rules.ts with `nft -f -` (or `iptables`
 * when nft is missing). These two commands are the only programs the agent runs (apart from the
 * idle stop command a config may name: idle.ts).
 */
import { UserError } from "../src/errors.ts";
import type { NatMode } from "./config.ts";
import {
  IPT_FWD_CHAIN,
  IPT_NAT_CHAIN,
  iptablesSetup,
  iptablesTeardown,
  type Nat6Params,
  type NatParams,
  NFT_TABLE,
  nftDropStale6,
  nftRuleset,
  nftRuleset6,
  nftTeardown,
  nftTeardown6,
} from "./nat_rules.ts";

export interface NatHandle {
  readonly backend: "nft" | "iptables";
  /** Remove exactly what was installed. Never throws: shutdown must finish. */
  remove(): Promise<string | undefined>;
}

interface RunResult {
  ok: boolean;
  stderr: string;
}

/** Run a command; NotFound (no such binary) is returned as undefined, not thrown. */
async function run(cmd: string, args: string[], stdin?: string): Promise<RunResult | undefined> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(cmd, {
      args,
      stdin: stdin === undefined ? "null" : "piped",
      stdout: "null",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  return { ok: out.success, stderr: new TextDecoder().decode(out.stderr).trim() };
}

const firstLine = (s: string) => s.split("\n").find((l) => l.trim()) ?? "";

async function applyNft(p: NatParams): Promise<NatHandle | undefined> {
  const r = await run("nft", ["-f", "-"], nftRuleset(p));
  if (r === undefined) return undefined;
  if (!r.ok) throw new UserError(`nft could not install the NAT rules: ${firstLine(r.stderr)}`);
  return {
    backend: "nft",
    async remove() {
      const r = await run("nft", ["-f", "-"], nftTeardown());
      return r?.ok ? undefined : `nft could not remove table: ${firstLine(r?.stderr ?? "")}`;
    },
  };
}

async function iptablesTearDown(): Promise<void> {
  for (const args of iptablesTeardown()) await run("iptables", ["-w", ...args]);
}

async function applyIptables(p: NatParams): Promise<NatHandle | undefined> {
  if ((await run("iptables", ["--version"])) === undefined) return undefined;
  await iptablesTearDown(); // chains left by a crashed run
  for (const args of iptablesSetup(p)) {
    const r = await run("iptables", ["-w", ...args]);
    if (!r?.ok) {
      await iptablesTearDown();
      throw new UserError(
        `iptables ${args.join(" ")} failed: ${firstLine(r?.stderr ?? "not found")}`,
      );
    }
  }
  return {
    backend: "iptables",
    async remove() {
      await iptablesTearDown();
      return undefined;
    },
  };
}

/** Install the rules with the configured backend; throws a UserError saying what to do. */
export async function installNat(mode: Exclude<NatMode, "off">, p: NatParams): Promise<NatHandle> {
  if (mode === "nft" || mode === "auto") {
    const h = await applyNft(p);
    if (h) return h;
    if (mode === "nft") throw new UserError("nat: nft, but the nft command is not installed");
  }
  const h = await applyIptables(p);
  if (h) return h;
  throw new UserError(
    mode === "iptables"
      ? "nat: iptables, but the iptables command is not installed"
      : "neither nft nor iptables is installed: install nftables, or set nat: off in the config",
  );
}

/** NAT66 (nft only); throws a UserError saying what went wrong. */
export async function installNat6(p: Nat6Params): Promise<NatHandle> {
  const r = await run("nft", ["-f", "-"], nftRuleset6(p));
  if (r === undefined) throw new UserError("NAT66 needs nft, which is not installed");
  if (!r.ok) throw new UserError(`nft could not install the NAT66 rules: ${firstLine(r.stderr)}`);
  return {
    backend: "nft",
    async remove() {
      const r = await run("nft", ["-f", "-"], nftTeardown6());
      return r?.ok ? undefined : `nft could not remove table ip6: ${firstLine(r?.stderr ?? "")}`;
    },
  };
}

/**
 * With IPv6 off now, remove the NAT66 table an earlier run with IPv6 on kept (a stop with a state
 * dir keeps NAT rules). Best effort: a missing table or nft is fine.
 */
export async function dropStaleNat6(): Promise<void> {
  await run("nft", ["-f", "-"], nftDropStale6());
}

/**
 * Remove whatever rules an earlier run left (a crash, or a stop with a state dir, which keeps
 * them on purpose), whichever backend it used: for `ssm-proxy-agent cleanup` after the service
 * is stopped. Says what it removed and what it could not; a missing nft or iptables is skipped.
 */
export async function removeLeftoverNat(): Promise<{ removed: string[]; problems: string[] }> {
  const removed: string[] = [];
  const problems: string[] = [];
  for (const [family, teardown] of [["ip", nftTeardown()], ["ip6", nftTeardown6()]] as const) {
    if (!(await run("nft", ["list", "table", family, NFT_TABLE]))?.ok) continue;
    const r = await run("nft", ["-f", "-"], teardown);
    if (r?.ok) removed.push(`nft table ${family} ${NFT_TABLE}`);
    else {
      problems.push(
        `nft could not remove table ${family} ${NFT_TABLE}: ${firstLine(r?.stderr ?? "")}`,
      );
    }
  }
  const chains = async () => {
    const fwd = await run("iptables", ["-w", "-n", "-L", IPT_FWD_CHAIN]);
    const nat = await run("iptables", ["-w", "-t", "nat", "-n", "-L", IPT_NAT_CHAIN]);
    return [fwd?.ok && IPT_FWD_CHAIN, nat?.ok && `${IPT_NAT_CHAIN} (nat)`].filter(Boolean);
  };
  const before = await chains();
  if (before.length) {
    await iptablesTearDown();
    const after = await chains();
    if (after.length) problems.push(`iptables could not remove chains ${after.join(", ")}`);
    else removed.push(`iptables chains ${before.join(", ")}`);
  }
  return { removed, problems };
}
