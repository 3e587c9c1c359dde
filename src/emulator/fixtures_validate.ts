/**
 * Reading the fixtures YAML: the one-line FixtureError and a walker with typed value readers
 * whose failures say `file:line: key.path: problem`.
 */

import { isMap, isScalar, isSeq, type LineCounter, type Node } from "yaml";
import { type MapView, YamlWalker } from "../config/yaml_walk.ts";
import { parseGoIP } from "./agent/forbidden.ts";
import { formatHostPort, parseDestination } from "./destinations.ts";
import { ExitCode, UserError } from "../errors.ts";

/** A bad fixtures file is the user's to fix, so it prints as one line, not a stack trace. */
export class FixtureError extends UserError {
  override name = "FixtureError";
  constructor(message: string) {
    super(message, ExitCode.Usage);
  }
}

/** The fixtures' walker: FixtureError, plus typed value readers. */
export class Validator extends YamlWalker {
  constructor(file: string, lines: LineCounter) {
    super(file, lines, (m) => new FixtureError(m));
  }

  #scalar(m: MapView, key: string): { node: Node; value: unknown; path: string } | undefined {
    const node = m.get(key);
    const path = m.path ? `${m.path}.${key}` : key;
    if (node === undefined) return undefined;
    if (!isScalar(node)) this.fail(node, path, "expected a single value");
    if (node.value === null) return undefined;
    return { node, value: node.value, path };
  }

  optStr(m: MapView, key: string, re?: RegExp, what?: string): string | undefined {
    const s = this.#scalar(m, key);
    if (!s) return undefined;
    if (typeof s.value !== "string" && typeof s.value !== "number") {
      this.fail(s.node, s.path, "expected a string");
    }
    const str = String(s.value);
    if (re && !re.test(str)) this.fail(s.node, s.path, `"${str}" is not ${what}`);
    return str;
  }

  reqStr(m: MapView, key: string, re?: RegExp, what?: string): string {
    const s = this.optStr(m, key, re, what);
    if (s === undefined) this.fail(m.node, m.path ? `${m.path}.${key}` : key, "required");
    return s;
  }

  optNum(m: MapView, key: string): number | undefined {
    const s = this.#scalar(m, key);
    if (!s) return undefined;
    if (typeof s.value !== "number" || s.value < 0) {
      this.fail(s.node, s.path, "expected a non-negative number");
    }
    return s.value;
  }

  optBool(m: MapView, key: string): boolean | undefined {
    const s = this.#scalar(m, key);
    if (!s) return undefined;
    if (typeof s.value !== "boolean") this.fail(s.node, s.path, "expected true or false");
    return s.value;
  }

  optEnum<T extends string>(m: MapView, key: string, values: readonly T[]): T | undefined {
    const s = this.optStr(m, key);
    if (s === undefined) return undefined;
    if (!values.includes(s as T)) {
      this.fail(m.get(key), `${m.path}.${key}`, `"${s}" is not one of ${values.join(", ")}`);
    }
    return s as T;
  }

  tags(m: MapView, key: string): Record<string, string> | undefined {
    const node = m.get(key);
    if (node === undefined) return undefined;
    const path = `${m.path}.${key}`;
    if (!isMap(node)) this.fail(node, path, "expected a mapping of tag key to value");
    const out: Record<string, string> = {};
    for (const pair of node.items) {
      const k = isScalar(pair.key) ? String(pair.key.value) : "";
      if (!isScalar(pair.value) || pair.value.value === null) {
        this.fail((pair.value ?? pair.key) as Node, `${path}.${k}`, "expected a tag value");
      }
      out[k] = String(pair.value.value);
    }
    return out;
  }

  strList(m: MapView, key: string): string[] | undefined {
    const node = m.get(key);
    if (node === undefined) return undefined;
    const path = `${m.path}.${key}`;
    if (!isSeq(node)) this.fail(node, path, "expected a list");
    return node.items.map((item, i) => {
      if (!isScalar(item)) this.fail(item as Node, `${path}[${i}]`, "expected a string");
      return String(item.value);
    });
  }

  /** A list of IP addresses, as the agent's net.ParseIP reads them (an empty list is fine). */
  ipList(m: MapView, key: string): string[] | undefined {
    const node = m.get(key);
    if (node === undefined) return undefined;
    const path = `${m.path}.${key}`;
    if (isScalar(node) && node.value === null) return [];
    if (!isSeq(node)) this.fail(node, path, "expected a list of IP addresses");
    return node.items.map((item, i) => {
      const text = isScalar(item) ? String(item.value) : "";
      if (!isScalar(item) || !parseGoIP(text)) {
        this.fail(
          item as Node,
          `${path}[${i}]`,
          `"${text}" is not an IP address (the agent compares addresses, never names or CIDRs)`,
        );
      }
      return text;
    });
  }

  /** `destinations`: address:port → address:port, stored in canonical form. */
  destinations(m: MapView, key: string): Record<string, string> | undefined {
    const node = m.get(key);
    if (node === undefined) return undefined;
    if (isScalar(node) && node.value === null) return {};
    if (!isMap(node)) this.fail(node, key, "expected a mapping of address:port to address:port");
    const out: Record<string, string> = {};
    const firstSpelling = new Map<string, string>();
    for (const pair of node.items) {
      const keyNode = pair.key as Node;
      if (!isScalar(keyNode) || typeof keyNode.value !== "string") {
        this.fail(
          keyNode,
          key,
          'each key must be a quoted "address:port" (a bare [ starts a YAML list)',
        );
      }
      const from = keyNode.value;
      const path = `${key}[${JSON.stringify(from)}]`;
      const valueNode = (pair.value ?? keyNode) as Node;
      if (!isScalar(valueNode) || typeof valueNode.value !== "string") {
        this.fail(valueNode, path, "expected the address:port to dial instead");
      }
      const d = parseDestination(from, valueNode.value);
      if ("problem" in d) {
        this.fail(d.side === "key" ? keyNode : valueNode, path, `${d.side}: ${d.problem}`);
      }
      const earlier = firstSpelling.get(d.key);
      if (earlier !== undefined) {
        this.fail(keyNode, path, `the same destination as ${JSON.stringify(earlier)} above`);
      }
      firstSpelling.set(d.key, from);
      out[d.key] = formatHostPort(d.to);
    }
    return out;
  }

  list<T>(m: MapView, key: string, each: (n: Node, path: string) => T): T[] | undefined {
    const node = m.get(key);
    if (node === undefined) return undefined;
    const path = m.path ? `${m.path}.${key}` : key;
    if (!isSeq(node)) this.fail(node, path, "expected a list");
    return node.items.map((item, i) => each(item as Node, `${path}[${i}]`));
  }
}
