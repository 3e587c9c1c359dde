/**
 * The agent's YAML config (/etc/ssm-proxy/agent.yaml). Every key is optional:
 *
 *   listen: 127.0.0.1:7797     # where the SSM agent's Port session connects (host:port)
 *   pool: 100.64.0.0/16        # tunnel addresses; the agent's tun takes the first host address
 *   pool6: fd7a:5353:5d8b::/48 # tunnel IPv6 addresses (a ULA fd00::/8 block, /48 to /112): a
 *                              # tunnel gets the same host index as in pool (100.64.0.2 → ::2)
 *   ipv6: auto                 # auto | on | off: auto is on when NAT66 can be set up (nat via
 *                              # nft) and the uplink has a global IPv6 address; clients get
 *                              # IPv6 only when their hello asks for it
 *   mtu: 1400                  # tun MTU; a client gets min(its MTU, this)
 *   tunName: ssmp%d            # %d lets the kernel number the device
 *   uplink: eth0               # masquerade out of here (default: the default route's interface)
 *   resolver: 10.0.0.2         # told to clients for split DNS (default: first nameserver in
 *                              # /etc/resolv.conf, or systemd-resolved's upstream if that is 127.x)
 *   nat: auto                  # auto (nft, else iptables) | nft | iptables | off
 *   policy:
 *     allow: [10.0.0.0/8]      # default: everywhere (0.0.0.0/0 and ::/0); IPv6 CIDRs too. A
 *                              # list of one family allows nothing of the other
 *     deny: [10.0.9.0/24]
 *     # or, per IAM principal: rules: [{principals: {roles: [...]}, allow: [...], deny: [...]}]
 *     # and requireIdentity: true; see agent/rules.ts for the rule language
 *   leaseGraceSeconds: 120     # a tunnel keeps its address this long after its last stripe
 *   stateDir: /var/lib/ssm-proxy  # leases kept here survive a restart of the agent (default:
 *                              # systemd's $STATE_DIRECTORY; unset: not kept)
 *   runtimeDir: /run/ssm-proxy-agent  # status.json for `ssm-proxy-agent status` (default:
 *                              # systemd's $RUNTIME_DIRECTORY, else /run/ssm-proxy-agent)
 *   idleStopAfter: 30m         # idle stop, off by default (absent or 0): see below
 *   idleStopCommand: systemctl poweroff  # split on whitespace, run without a shell
 *   stsEndpoint, policyParameterPath, policyRefresh, audit, auditMaxMB, auditKeep:
 *                              # identity proofs, rules from Parameter Store, the audit trail
 *                              # (config_identity.ts)
 *
 * Idle stop: when no tunnel has been connected for `idleStopAfter` (a duration: 90s, 30m, 2h,
 * 1h30m; a bare number is seconds), counted from the agent's start and restarted whenever a
 * tunnel connects, the agent logs one line and runs `idleStopCommand` once, then keeps serving
 * (a failure is logged). A tunnel whose stripes are all gone counts as idle even while its
 * address is still kept for `leaseGraceSeconds`. The command runs again only after a tunnel has
 * connected and the agent has been idle that long once more. On EC2, `systemctl poweroff`
 * stops the instance only when its shutdown behaviour is "stop" (the default; with
 * "terminate" the instance is gone for good); `ssm-proxy start --wake` starts it again.
 *
 * Always denied whatever `policy` says: 169.254.0.0/16 (instance metadata, link-local),
 * 127.0.0.0/8, 0.0.0.0/8, 224.0.0.0/4 and the pool itself (tunnels cannot reach each other); for
 * IPv6 fe80::/10, ff00::/8, ::1, ::, ::ffff:0:0/96, fd00:ec2::/32 (EC2's metadata, DNS and time
 * services) and pool6. A NAT64 destination (64:ff9b::/96) must also pass the IPv4 rules for the
 * IPv4 address it embeds.
 *
 * Unknown keys and wrong types are errors naming the file, line and key.
 */
import { isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";
import { YamlWalker } from "../src/config/yaml_walk.ts";
import { UserError } from "../src/errors.ts";
import { type Cidr, parseCidr, parseIpv4 } from "./cidr.ts";
import { type Cidr6, DEFAULT_POOL6, formatCidr6, parseCidr6, pool6Misfit } from "./cidr6.ts";
import { parseDuration } from "./duration.ts";
import { parsePolicy, type PolicyConfig } from "./rules.ts";
import {
  defaultIdentityConfig,
  IDENTITY_KEYS,
  type IdentityConfig,
  parseIdentityKeys,
} from "./config_identity.ts";

export type NatMode = "auto" | "nft" | "iptables" | "off";
export type Ipv6Mode = "auto" | "on" | "off";

/** Identity, Parameter Store policy and audit keys: config_identity.ts. */
export interface AgentConfig extends IdentityConfig {
  listen: { hostname: string; port: number };
  pool: Cidr;
  /** Tunnels' IPv6 addresses, same host index as in `pool`. */
  pool6: Cidr6;
  ipv6: Ipv6Mode;
  mtu: number;
  tunName: string;
  /** Undefined: detect from /proc/net/route at start. */
  uplink?: string;
  /** Undefined: detect from /etc/resolv.conf at start. */
  resolver?: string;
  nat: NatMode;
  /** The old CIDR lists, or per-principal `rules` (agent/rules.ts; `rulesOf` reads both). */
  policy: PolicyConfig;
  leaseGraceSeconds: number;
  /** Where leases are persisted; undefined: not persisted. */
  stateDir?: string;
  /** Where status.json is kept; undefined: no status file (main.ts fills in the default). */
  runtimeDir?: string;
  /** Idle stop after this long without a connected tunnel; 0: off. */
  idleStopAfterMs: number;
  /** argv of the idle stop command. */
  idleStopCommand: string[];
  /** The file it was read from, for messages (undefined: built-in defaults). */
  file?: string;
}

export const DEFAULT_CONFIG_PATH = "/etc/ssm-proxy/agent.yaml";

export function defaultConfig(): AgentConfig {
  return {
    listen: { hostname: "127.0.0.1", port: 7797 },
    pool: parseCidr("100.64.0.0/16")!,
    pool6: parseCidr6(DEFAULT_POOL6)!,
    ipv6: "auto",
    mtu: 1400,
    tunName: "ssmp%d",
    nat: "auto",
    policy: { allow: [], deny: [] },
    leaseGraceSeconds: 120,
    idleStopAfterMs: 0,
    idleStopCommand: ["systemctl", "poweroff"],
    ...defaultIdentityConfig(),
  };
}

/** Interface names go into nft text and iptables arguments, so only plain characters pass. */
export const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
const TUN_NAME = /^[A-Za-z0-9_.-]*(%d)?[A-Za-z0-9_.-]*$/;
const KEYS = [
  "listen",
  "pool",
  "pool6",
  "ipv6",
  "mtu",
  "tunName",
  "uplink",
  "resolver",
  "nat",
  "policy",
  "leaseGraceSeconds",
  "stateDir",
  "runtimeDir",
  "idleStopAfter",
  "idleStopCommand",
  ...IDENTITY_KEYS,
];

export class ConfigError extends UserError {
  override name = "ConfigError";
}

/** `listen` text ("host:port") → parts; undefined when malformed. */
export function parseListen(text: string): { hostname: string; port: number } | undefined {
  const m = /^(.+):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[2]);
  const hostname = m[1];
  if (port > 65535 || (hostname !== "localhost" && parseIpv4(hostname) === undefined)) {
    return undefined;
  }
  return { hostname, port };
}

/** Read and validate a config file. A missing file is an error only when `required`. */
export async function loadConfig(path: string, required: boolean): Promise<AgentConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound && !required) return defaultConfig();
    if (e instanceof Deno.errors.NotFound) throw new ConfigError(`config file ${path} not found`);
    const why = (e as Error).message.replace(/ \(os error \d+\).*$/, "");
    throw new ConfigError(`cannot read config ${path}: ${why}`);
  }
  return { ...parseConfig(text, path), file: path };
}

export function parseConfig(text: string, file = "<config>"): AgentConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines });
  if (doc.errors.length) {
    const e = doc.errors[0];
    throw new ConfigError(`${file}:${e.linePos?.[0].line ?? 0}: ${e.message.split("\n")[0]}`);
  }
  const cfg = defaultConfig();
  const root = doc.contents;
  if (root === null || (isScalar(root) && root.value === null)) return cfg;
  const v: Validator = new Validator(file, lines);
  const top = v.map(root, "", KEYS);

  const scalar = (key: string) => v.scalar(top.get(key), key);
  const str = (key: string) => {
    const s = scalar(key);
    if (s && typeof s.value !== "string") v.fail(s.node, key, "expected a string");
    return s as { node: Node; value: string } | undefined;
  };

  const listen = str("listen");
  if (listen) {
    cfg.listen = parseListen(listen.value) ??
      v.fail(listen.node, "listen", `"${listen.value}" is not an IPv4 host:port`);
  }
  const pool = str("pool");
  if (pool) {
    const c = parseCidr(pool.value);
    if (!c) v.fail(pool.node, "pool", `"${pool.value}" is not an IPv4 network like 100.64.0.0/16`);
    if (c.prefix < 8 || c.prefix > 30) {
      v.fail(pool.node, "pool", `prefix /${c.prefix} must be between /8 and /30`);
    }
    cfg.pool = c;
  }
  const pool6 = str("pool6");
  if (pool6) {
    const c = parseCidr6(pool6.value);
    if (!c) {
      v.fail(pool6.node, "pool6", `"${pool6.value}" is not an IPv6 network like ${DEFAULT_POOL6}`);
    }
    if (c.bytes[0] !== 0xfd) {
      v.fail(pool6.node, "pool6", `${formatCidr6(c)} is not a unique local (fd00::/8) block`);
    }
    if (c.prefix < 48 || c.prefix > 112) {
      v.fail(pool6.node, "pool6", `prefix /${c.prefix} must be between /48 and /112`);
    }
    cfg.pool6 = c;
  }
  const misfit = pool6Misfit(cfg.pool6, cfg.pool);
  if (misfit) v.fail((pool6 ?? pool)!.node, pool6 ? "pool6" : "pool", misfit);
  const ipv6 = str("ipv6");
  if (ipv6) {
    if (!["auto", "on", "off"].includes(ipv6.value)) {
      v.fail(ipv6.node, "ipv6", `expected auto, on or off, got "${ipv6.value}"`);
    }
    cfg.ipv6 = ipv6.value as Ipv6Mode;
  }
  const mtu = scalar("mtu");
  if (mtu) {
    if (
      !Number.isInteger(mtu.value) || (mtu.value as number) < 576 || (mtu.value as number) > 65533
    ) {
      v.fail(mtu.node, "mtu", `expected an integer from 576 to 65533, got ${show(mtu.value)}`);
    }
    cfg.mtu = mtu.value as number;
  }
  const tunName = str("tunName");
  if (tunName) {
    if (!TUN_NAME.test(tunName.value) || tunName.value.replace("%d", "0").length > 15) {
      v.fail(
        tunName.node,
        "tunName",
        `"${tunName.value}" is not an interface name (≤15 of A-Z a-z 0-9 _ . -, optional %d)`,
      );
    }
    cfg.tunName = tunName.value;
  }
  const uplink = str("uplink");
  if (uplink) {
    if (!IFNAME.test(uplink.value)) {
      v.fail(uplink.node, "uplink", `"${uplink.value}" is not an interface name`);
    }
    cfg.uplink = uplink.value;
  }
  const resolver = str("resolver");
  if (resolver) {
    if (parseIpv4(resolver.value) === undefined) {
      v.fail(resolver.node, "resolver", `"${resolver.value}" is not an IPv4 address`);
    }
    cfg.resolver = resolver.value;
  }
  const nat = str("nat");
  if (nat) {
    if (!["auto", "nft", "iptables", "off"].includes(nat.value)) {
      v.fail(nat.node, "nat", `expected auto, nft, iptables or off, got "${nat.value}"`);
    }
    cfg.nat = nat.value as NatMode;
  }
  const policyNode = top.get("policy");
  if (policyNode && !(isScalar(policyNode) && policyNode.value === null)) {
    cfg.policy = parsePolicy(v, policyNode);
  }
  const grace = scalar("leaseGraceSeconds");
  if (grace) {
    if (typeof grace.value !== "number" || !(grace.value >= 0) || !isFinite(grace.value)) {
      v.fail(grace.node, "leaseGraceSeconds", `expected a number ≥ 0, got ${show(grace.value)}`);
    }
    cfg.leaseGraceSeconds = grace.value;
  }
  const stateDir = str("stateDir");
  if (stateDir) {
    if (!stateDir.value.startsWith("/")) {
      v.fail(stateDir.node, "stateDir", `expected an absolute path, got "${stateDir.value}"`);
    }
    cfg.stateDir = stateDir.value;
  }
  const runtimeDir = str("runtimeDir");
  if (runtimeDir) {
    if (!runtimeDir.value.startsWith("/")) {
      v.fail(runtimeDir.node, "runtimeDir", `expected an absolute path, got "${runtimeDir.value}"`);
    }
    cfg.runtimeDir = runtimeDir.value;
  }
  const idle = scalar("idleStopAfter");
  if (idle) {
    const ms = typeof idle.value === "number" && idle.value >= 0 && isFinite(idle.value)
      ? Math.round(idle.value * 1000)
      : typeof idle.value === "string"
      ? parseDuration(idle.value)
      : undefined;
    if (ms === undefined) {
      v.fail(
        idle.node,
        "idleStopAfter",
        `expected a duration like 90s, 30m or 2h (0: off), got ${show(idle.value)}`,
      );
    }
    cfg.idleStopAfterMs = ms;
  }
  const command = str("idleStopCommand");
  if (command) {
    const argv = command.value.split(/\s+/).filter(Boolean);
    if (!argv.length) v.fail(command.node, "idleStopCommand", "expected a command, got nothing");
    cfg.idleStopCommand = argv;
  }
  Object.assign(cfg, parseIdentityKeys(v, top));
  return cfg;
}

const show = (v: unknown) => (typeof v === "string" ? `"${v}"` : String(v));

/** The agent config's walker: ConfigError, plus CIDR lists. */
class Validator extends YamlWalker {
  constructor(file: string, lines: LineCounter) {
    super(file, lines, (m) => new ConfigError(m));
  }

  cidrList(node: Node | undefined, path: string): string[] {
    if (node === undefined || (isScalar(node) && node.value === null)) return [];
    if (!isSeq(node)) this.fail(node, path, "expected a list of CIDRs");
    return node.items.map((item, i) => {
      const p = `${path}[${i}]`;
      const s = this.scalar(item as Node, p);
      if (!s || typeof s.value !== "string") {
        this.fail(item as Node, p, "expected a CIDR like 10.0.0.0/16 or 2600:1f18::/56");
      }
      if (!(s.value.includes(":") ? parseCidr6(s.value) : parseCidr(s.value))) {
        this.fail(
          s.node,
          p,
          `"${s.value}" is not a network like 10.0.0.0/16 or 2600:1f18::/56 (host bits zero)`,
        );
      }
      return s.value;
    });
  }
}
