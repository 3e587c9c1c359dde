/**
 * Adding entries to the config file the user keeps by hand: the YAML Document is edited in
 * place so their comments, key order and layout survive. The text transform is pure; writing is
 * atomic (temp file + rename in the same directory) so a crash never leaves half a config.
 */
import { dirname } from "node:path";
import { isMap, isScalar, isSeq, type Node, parseDocument, type YAMLMap, type YAMLSeq } from "yaml";
import { ConfigError } from "./clusters.ts";
import type { Entries } from "./merge.ts";
import { tunnelToEntry } from "./tunnels.ts";

/** The config text with `add` appended to `tunnels:` and `clusters:` (created if missing). */
export function addEntries(
  text: string,
  add: Entries,
  note: (kind: "tunnel" | "cluster", name: string) => string | undefined = () => undefined,
): string {
  const doc = parseDocument(text);
  if (doc.errors.length) throw new ConfigError(doc.errors[0].message.split("\n")[0]);
  const section = (key: string, make: () => YAMLMap | YAMLSeq) => {
    if (doc.contents !== null && !isMap(doc.contents)) {
      throw new ConfigError(`cannot add "${key}:" to a config that is not a mapping`);
    }
    const cur = doc.get(key, true) as Node | undefined;
    if (cur === undefined || (isScalar(cur) && cur.value === null)) {
      const fresh = make();
      doc.set(key, fresh);
      return fresh;
    }
    return cur;
  };

  if (add.tunnels.length) {
    const map = section("tunnels", () => doc.createNode({}) as YAMLMap);
    if (!isMap(map)) throw new ConfigError(`"tunnels:" is not a mapping`);
    if (map.items.length === 0) map.flow = false;
    for (const t of add.tunnels) {
      const value = doc.createNode(tunnelToEntry(t)) as YAMLMap;
      for (const pair of value.items) if (isSeq(pair.value)) pair.value.flow = true;
      const pair = doc.createPair(t.name, value);
      const c = note("tunnel", t.name);
      if (c && isScalar(pair.key)) pair.key.commentBefore = ` ${c}`;
      map.items.push(pair);
    }
  }
  if (add.clusters.length) {
    const seq = section("clusters", () => doc.createNode([]) as YAMLSeq);
    if (!isSeq(seq)) throw new ConfigError(`"clusters:" is not a list`);
    if (seq.items.length === 0) seq.flow = false;
    for (const c of add.clusters) {
      const node = doc.createNode(c) as YAMLMap;
      const n = note("cluster", c.name);
      if (n) node.commentBefore = ` ${n}`;
      seq.items.push(node);
    }
  }
  // Flow lists as people write them: [10.0.0.0/16], not [ 10.0.0.0/16 ].
  return doc.toString({ flowCollectionPadding: false });
}

/** Writes `text` to `path` atomically, creating the directory; keeps an existing file's mode. */
export async function writeAtomic(file: string, text: string): Promise<void> {
  // Through a symlink (dotfile managers keep configs that way) to the file it points at.
  const path = await Deno.realPath(file).catch(() => file);
  await Deno.mkdir(dirname(path), { recursive: true });
  const mode = await Deno.stat(path).then((s) => s.mode ?? 0o644, () => 0o644);
  const tmp = `${path}.${Deno.pid}.tmp`;
  try {
    await Deno.writeTextFile(tmp, text, { mode: mode & 0o7777 });
    await Deno.chmod(tmp, mode & 0o7777);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new ConfigError(`${path}: cannot write: ${(e as Error).message.split("\n")[0]}`);
  }
}
