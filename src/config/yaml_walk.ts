/**
 * Walking a parsed YAML document with errors that point at the place: `file:line: key: problem`.
 * Shared by every YAML file we validate (agent config, emulator fixtures); each adds its own
 * value readers on top.
 */
import { isMap, isScalar, type LineCounter, type Node } from "yaml";

export interface MapView {
  path: string;
  node: Node;
  get(key: string): Node | undefined;
}

export class YamlWalker {
  constructor(
    protected file: string,
    private lines: LineCounter,
    private makeError: (message: string) => Error,
  ) {}

  fail(node: Node | undefined, path: string, problem: string): never {
    const offset = node?.range?.[0];
    const line = offset === undefined ? "" : `:${this.lines.linePos(offset).line}`;
    throw this.makeError(`${this.file}${line}: ${path || "top level"}: ${problem}`);
  }

  /** A mapping whose keys must all be in `allowed`. */
  map(node: Node, path: string, allowed: string[]): MapView {
    if (!isMap(node)) this.fail(node, path, "expected a mapping");
    const seen = new Map<string, Node>();
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : "";
      const keyPath = path ? `${path}.${key}` : key;
      if (!allowed.includes(key)) {
        this.fail(pair.key as Node, keyPath, `unknown key (allowed: ${allowed.join(", ")})`);
      }
      seen.set(key, (pair.value ?? pair.key) as Node);
    }
    return { path, node, get: (k) => seen.get(k) };
  }

  /** A scalar value, or undefined for an absent or null (`key:`) entry. */
  scalar(node: Node | undefined, path: string): { node: Node; value: unknown } | undefined {
    if (node === undefined) return undefined;
    if (!isScalar(node)) this.fail(node, path, "expected a single value");
    if (node.value === null) return undefined;
    return { node, value: node.value };
  }
}
