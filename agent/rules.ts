/**
 * The per-principal policy language of agent.yaml's `policy:` (issue 15): its types, the
 * destination syntax, and reading it from YAML with `file:line: path: problem` errors. Pure.
 *
 *   policy:
 *     requireIdentity: true        # refuse tunnels whose principal was not verified
 *     rules:
 *       - principals: { permissionSets: [AdministratorAccess] }
 *         allow: [any]
 *       - principals: { accounts: ["123456789012"], roles: [AWSReservedSSO_Dev*_*] }
 *         allow: [10.0.5.0/24:443/tcp, 10.0.0.0/16:5432, fd00::/8/udp]
 *         deny: [10.0.9.0/24]
 *       - allow: [10.0.0.2/udp]    # no principals: every tunnel, verified or not
 *
 * Destinations: `network[:port[-port]][/tcp|/udp|/icmp]`.
 *   network  a.b.c.d/n (a bare a.b.c.d is /32); an IPv6 block ipv6/n, or [ipv6] / [ipv6/n] in
 *            brackets: an IPv6 network always has a /prefix or brackets, so a port can never be
 *            read as its last group; `any` is every address of both families. Host bits zero.
 *   ports    one port or a range lo-hi (0–65535); ports without a protocol mean TCP and UDP.
 *   protocol tcp, udp, or icmp (ICMPv6 for IPv6 networks); icmp takes no ports.
 * e.g. 10.0.5.0/24:443/tcp, 10.0.0.0/16:5432, fd00::/8/udp, [fd00::5]:8000-8999, any:22/tcp.
 *
 * Semantics (rules_compile.ts): the rules a tunnel's principal matches (each rule's principals
 * selector, see principal.ts; a rule without one matches every tunnel) pool their allow and deny
 * lists; a deny in any of them beats every allow; a destination no allow names is denied; the
 * built-in deny list (policy.ts) always applies. The old form `policy: {allow, deny}` is one
 * rule for every tunnel, an empty allow meaning everywhere as before.
 *
 * Patterns in `principals` are globs (* and ?, ignoring case); quote one that starts with `*`,
 * which YAML would read as an alias.
 */
import { isScalar, isSeq, type Node } from "yaml";
import type { YamlWalker } from "../src/config/yaml_walk.ts";
import { type Cidr, formatCidr, parseCidr } from "./cidr.ts";
import { type Cidr6, formatCidr6, parseCidr6 } from "./cidr6.ts";
import { type PrincipalSelector, SELECTOR_KEYS } from "./principal.ts";
import { parseIPv6 } from "../ffi/struct.ts";

export type Protocol = "tcp" | "udp" | "icmp";

export interface Dest {
  /** At least one of v4/v6 (both for `any`). */
  v4?: Cidr;
  v6?: Cidr6;
  /** Undefined: any protocol, or TCP and UDP when `ports` is set. */
  protocol?: Protocol;
  ports?: { lo: number; hi: number };
}

export interface PolicyRule {
  /** Undefined: every tunnel, including one whose principal was not verified. */
  principals?: PrincipalSelector;
  allow: Dest[];
  deny: Dest[];
}

export interface RulesPolicy {
  rules: PolicyRule[];
  /** Refuse a tunnel without a verified principal outright. */
  requireIdentity: boolean;
}

/** agent.yaml's `policy` as loaded: the old CIDR lists, or `rules` when the new form is used. */
export interface PolicyConfig {
  allow: string[];
  deny: string[];
  rules?: PolicyRule[];
  requireIdentity?: boolean;
}

const V4_ANY = parseCidr("0.0.0.0/0")!;
const V6_ANY = parseCidr6("::/0")!;
const EXAMPLE = "10.0.5.0/24:443/tcp";

/** One destination; a string is the problem, worded to follow `"text" `. */
export function parseDest(text: string): Dest | string {
  const bad = `is not a destination like ${EXAMPLE} (network[:port[-port]][/tcp|udp|icmp])`;
  let rest = text;
  let protocol: Protocol | undefined;
  const pm = /\/(tcp|udp|icmp)$/i.exec(rest);
  if (pm) {
    protocol = pm[1].toLowerCase() as Protocol;
    rest = rest.slice(0, pm.index);
  }
  let net: string, after: string;
  const bracket = /^\[([^\]]*)\](.*)$/.exec(rest);
  const prefixed = /^([^/[\]]*\/\d{1,3})(.*)$/.exec(rest);
  const plain = /^(any|[\d.]+)(.*)$/.exec(rest);
  if (bracket) {
    [, net, after] = bracket;
    if (!net.includes(":")) return `${bad}: brackets are for IPv6 addresses`;
  } else if (prefixed) [, net, after] = prefixed;
  else if (parseIPv6(rest)) {
    return `needs a /prefix or [brackets] (${rest}/128, [${rest}]:443), so a port cannot be read as part of it`;
  } else if (plain) [, net, after] = plain;
  else return bad;

  let dest: Dest;
  if (net === "any") dest = { v4: V4_ANY, v6: V6_ANY };
  else if (net.includes(":")) {
    const c = parseCidr6(net);
    if (!c) return parseCidr6(net, false) ? "has host bits set beyond its prefix" : bad;
    dest = { v6: c };
  } else {
    const c = parseCidr(net);
    if (!c) return parseCidr(net, false) ? "has host bits set beyond its prefix" : bad;
    dest = { v4: c };
  }
  if (after !== "") {
    const ports = /^:(\d{1,5})(?:-(\d{1,5}))?$/.exec(after);
    if (!ports) return bad;
    const lo = Number(ports[1]);
    const hi = ports[2] === undefined ? lo : Number(ports[2]);
    if (hi > 65535) return `has port ${hi}, beyond 65535`;
    if (lo > hi) return `has the empty port range ${lo}-${hi}`;
    if (protocol === "icmp") return "names ports, which icmp does not have";
    dest.ports = { lo, hi };
  }
  if (protocol) dest.protocol = protocol;
  return dest;
}

/** The canonical text of a destination (what parseDest reads back to the same thing). */
export function formatDest(d: Dest): string {
  const net = d.v4 && d.v6
    ? "any"
    : d.v4
    ? formatCidr(d.v4)
    : d.ports
    ? `[${formatCidr6(d.v6!)}]`
    : formatCidr6(d.v6!);
  const ports = d.ports ? `:${d.ports.lo}${d.ports.hi === d.ports.lo ? "" : `-${d.ports.hi}`}` : "";
  return `${net}${ports}${d.protocol ? `/${d.protocol}` : ""}`;
}

/**
 * The VPC resolver's DNS (TCP and UDP port 53) for every tunnel, put first: with rules, narrow
 * ones would otherwise break name lookups through the tunnel. A deny naming it still wins.
 */
export function resolverRule(resolver: string): PolicyRule | undefined {
  const dns = parseDest(`${resolver}:53`);
  return typeof dns === "string" ? undefined : { allow: [dns], deny: [] };
}

/** The old form as rules: one rule for every tunnel; an empty allow list means everywhere. */
export function rulesOf(policy: PolicyConfig): RulesPolicy {
  const requireIdentity = policy.requireIdentity ?? false;
  if (policy.rules) return { rules: policy.rules, requireIdentity };
  const cidr = (text: string): Dest =>
    text.includes(":") ? { v6: parseCidr6(text, false)! } : { v4: parseCidr(text, false)! };
  const allow = policy.allow.length ? policy.allow.map(cidr) : [{ v4: V4_ANY, v6: V6_ANY }];
  return { rules: [{ allow, deny: policy.deny.map(cidr) }], requireIdentity };
}

/** The walker config.ts reads agent.yaml with: YamlWalker plus its CIDR-list reader. */
export type PolicyWalker = YamlWalker & {
  cidrList(node: Node | undefined, path: string): string[];
};

const isNull = (node: Node | undefined) => isScalar(node) && node.value === null;

/** Read `policy:` (either form). */
export function parsePolicy(w: PolicyWalker, node: Node): PolicyConfig {
  const m = w.map(node, "policy", ["allow", "deny", "rules", "requireIdentity"]);
  const out: PolicyConfig = { allow: [], deny: [] };
  const rules = m.get("rules");
  if (rules) {
    for (const key of ["allow", "deny"]) {
      const n = m.get(key);
      if (n) {
        w.fail(
          n,
          `policy.${key}`,
          "use rules or allow/deny, not both (a rule without principals applies to every tunnel)",
        );
      }
    }
    out.rules = parseRuleList(w, rules, "policy.rules");
  } else {
    out.allow = w.cidrList(m.get("allow"), "policy.allow");
    out.deny = w.cidrList(m.get("deny"), "policy.deny");
  }
  const require = w.scalar(m.get("requireIdentity"), "policy.requireIdentity");
  if (require) {
    if (typeof require.value !== "boolean") {
      w.fail(
        require.node,
        "policy.requireIdentity",
        `expected true or false, got ${show(require.value)}`,
      );
    }
    out.requireIdentity = require.value;
  }
  return out;
}

/** A `rules:` list (agent.yaml's policy.rules, or a Parameter Store parameter's rules). */
export function parseRuleList(w: YamlWalker, node: Node, path: string): PolicyRule[] {
  if (!isSeq(node)) w.fail(node, path, "expected a list of rules");
  return node.items.map((item, i) => parseRule(w, item as Node, `${path}[${i}]`));
}

function parseRule(w: YamlWalker, node: Node, path: string): PolicyRule {
  const m = w.map(node, path, ["principals", "allow", "deny"]);
  if (!m.get("allow") && !m.get("deny")) w.fail(node, path, "a rule needs allow or deny (or both)");
  const rule: PolicyRule = {
    allow: destList(w, m.get("allow"), `${path}.allow`),
    deny: destList(w, m.get("deny"), `${path}.deny`),
  };
  const principals = m.get("principals");
  if (principals) rule.principals = parseSelector(w, principals, `${path}.principals`);
  return rule;
}

function destList(w: YamlWalker, node: Node | undefined, path: string): Dest[] {
  if (node === undefined || isNull(node)) return [];
  if (!isSeq(node)) w.fail(node, path, `expected a list of destinations like ${EXAMPLE}`);
  return node.items.map((item, i) => {
    const p = `${path}[${i}]`;
    const s = w.scalar(item as Node, p);
    if (!s || typeof s.value !== "string") {
      w.fail(item as Node, p, `expected a destination like ${EXAMPLE}`);
    }
    const dest = parseDest(s.value);
    if (typeof dest === "string") w.fail(s.node, p, `"${s.value}" ${dest}`);
    return dest;
  });
}

/** What each selector list may hold (globs add * and ?), so a misplaced value is caught. */
const PATTERN: Record<keyof PrincipalSelector, [RegExp, string]> = {
  accounts: [/^[\d*?]+$/, "a 12-digit account ID (quote one starting with 0)"],
  arns: [/^arn:/, "an ARN like arn:aws:sts::123456789012:assumed-role/Role/session"],
  users: [/^[\w+=,.@*?-]+$/, "an IAM user name (no path; use arns for paths)"],
  roles: [/^[\w+=,.@*?-]+$/, "a role name (for an ARN, use arns)"],
  permissionSets: [/^[\w+=,.@*?-]+$/, "a permission set name"],
  sessions: [/^[\w+=,.@*?-]+$/, "a session name"],
};

function parseSelector(w: YamlWalker, node: Node, path: string): PrincipalSelector {
  if (isNull(node)) w.fail(node, path, `expected a mapping of ${SELECTOR_KEYS.join(", ")}`);
  const m = w.map(node, path, [...SELECTOR_KEYS]);
  const selector: PrincipalSelector = {};
  for (const key of SELECTOR_KEYS) {
    const list = m.get(key);
    if (!list) continue;
    const p = `${path}.${key}`;
    if (!isSeq(list) || !list.items.length) {
      w.fail(list, p, "expected a non-empty list of patterns");
    }
    selector[key] = list.items.map((item, i) => {
      const s = w.scalar(item as Node, `${p}[${i}]`);
      let text = typeof s?.value === "string" ? s.value : undefined;
      // An unquoted account ID is a YAML number; one that lost leading zeros fails the length
      // check below, whose message says to quote it.
      if (key === "accounts" && Number.isInteger(s?.value)) text = String(s!.value);
      const [shape, what] = PATTERN[key];
      const exactAccount = key !== "accounts" || /[*?]/.test(text ?? "") || text?.length === 12;
      if (!s || text === undefined || !shape.test(text) || !exactAccount) {
        w.fail((s?.node ?? item) as Node, `${p}[${i}]`, `expected ${what}, got ${show(s?.value)}`);
      }
      return text;
    });
  }
  if (!Object.keys(selector).length) {
    w.fail(node, path, `name at least one of ${SELECTOR_KEYS.join(", ")}`);
  }
  return selector;
}

const show = (v: unknown) => (typeof v === "string" ? `"${v}"` : String(v));
