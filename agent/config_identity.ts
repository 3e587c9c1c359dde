/**
 * agent.yaml's keys for identity, policy from Parameter Store and the audit trail (issue 15):
 *
 *   stsEndpoint: https://vpce-0abc-1xyz.sts.us-east-1.vpce.amazonaws.com
 *                              # where identity proofs are checked (default: the STS host the
 *                              # client signed for, as the instance resolves it, so an STS VPC
 *                              # endpoint with private DNS needs nothing here). The request keeps
 *                              # the Host it was signed for. AWS_ENDPOINT_URL_STS in the agent's
 *                              # environment counts too.
 *   policyParameterPath: /ssm-proxy/policy  # more rules from Parameter Store: every parameter
 *                              # under the path (recursive, by name) holds YAML `rules: [...]`;
 *                              # they follow the file's rules. Read at start and every
 *                              # policyRefresh; a broken one keeps the last good rules.
 *   policyRefresh: 60s         # a duration, ≥ 10s
 *   audit: off                 # off | journal | an absolute file path: one JSON line per flow
 *   auditMaxMB: 64             # a file audit is rotated at this size (path.1 … path.N)
 *   auditKeep: 5               # rotated files kept
 *
 * Pure: reads an already parsed document through the config's walker.
 */
import type { Node } from "yaml";
import type { MapView, YamlWalker } from "../src/config/yaml_walk.ts";
import { parseDuration } from "./duration.ts";

export type AuditConfig =
  | { to: "off" }
  | { to: "journal" }
  | { to: "file"; path: string; maxBytes: number; keep: number };

export interface IdentityConfig {
  /** URL identity proofs are sent to; undefined: the host each proof was signed for. */
  stsEndpoint?: string;
  /** Parameter Store path with more rules; undefined: rules from the file only. */
  policyParameterPath?: string;
  policyRefreshMs: number;
  audit: AuditConfig;
}

export const IDENTITY_KEYS = [
  "stsEndpoint",
  "policyParameterPath",
  "policyRefresh",
  "audit",
  "auditMaxMB",
  "auditKeep",
];

export function defaultIdentityConfig(): IdentityConfig {
  return { policyRefreshMs: 60_000, audit: { to: "off" } };
}

/** Parameter Store names: /-separated segments of a-zA-Z0-9_.- (the path itself may be "/"). */
const PARAMETER_PATH = /^\/(?:[A-Za-z0-9_.-]+\/?)*$/;

export function parseIdentityKeys(v: YamlWalker, top: MapView): IdentityConfig {
  const cfg = defaultIdentityConfig();
  const str = (key: string) => {
    const s = v.scalar(top.get(key), key);
    if (s && typeof s.value !== "string") v.fail(s.node, key, "expected a string");
    return s as { node: Node; value: string } | undefined;
  };
  const num = (key: string, lo: number, hi: number) => {
    const s = v.scalar(top.get(key), key);
    if (!s) return undefined;
    if (!Number.isInteger(s.value) || (s.value as number) < lo || (s.value as number) > hi) {
      v.fail(s.node, key, `expected an integer from ${lo} to ${hi}, got ${String(s.value)}`);
    }
    return s.value as number;
  };

  const sts = str("stsEndpoint");
  if (sts) {
    let url: URL | undefined;
    try {
      url = new URL(sts.value);
    } catch { /* reported below */ }
    if (!url || !/^https?:$/.test(url.protocol) || url.search || url.hash) {
      v.fail(sts.node, "stsEndpoint", `"${sts.value}" is not an http(s) URL like https://host`);
    }
    cfg.stsEndpoint = url.origin + (url.pathname === "/" ? "" : url.pathname);
  }
  const path = str("policyParameterPath");
  if (path) {
    if (!PARAMETER_PATH.test(path.value) || path.value.length > 2048) {
      v.fail(
        path.node,
        "policyParameterPath",
        `"${path.value}" is not a path like /ssm-proxy/policy`,
      );
    }
    cfg.policyParameterPath = path.value;
  }
  const refresh = str("policyRefresh");
  if (refresh) {
    const ms = parseDuration(refresh.value);
    if (ms === undefined || ms < 10_000) {
      v.fail(
        refresh.node,
        "policyRefresh",
        `expected a duration of 10s or more, got "${refresh.value}"`,
      );
    }
    cfg.policyRefreshMs = ms;
  }
  const audit = str("audit");
  const maxMB = num("auditMaxMB", 1, 100_000);
  const keep = num("auditKeep", 0, 100);
  if (audit) {
    if (audit.value === "off" || audit.value === "journal") cfg.audit = { to: audit.value };
    else if (audit.value.startsWith("/")) {
      cfg.audit = {
        to: "file",
        path: audit.value,
        maxBytes: (maxMB ?? 64) * 1024 * 1024,
        keep: keep ?? 5,
      };
    } else {
      v.fail(
        audit.node,
        "audit",
        `expected off, journal or an absolute file path, got "${audit.value}"`,
      );
    }
  }
  return cfg;
}
