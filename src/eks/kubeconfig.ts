/**
 * kubeconfig edits as pure text-to-text functions on the yaml Document API, so that other
 * clusters, users, contexts, comments and ordering survive untouched. What ssm-proxy knows
 * about its own entries (mode, local port, active) lives in a cluster extension named
 * `ssm-proxy`, a place kubectl reads past and preserves.
 */
import { Document, isMap, isScalar, isSeq, type Node, parseDocument, YAMLMap } from "yaml";
import { UserError } from "../errors.ts";

export type Mode = "port-forward" | "transparent" | "direct";

export interface SsmProxyMeta {
  mode: Mode;
  active: boolean;
  /** Local port of a port-forward entry. */
  port?: number;
  /** Transparent entry: the `ssm-proxy start` tunnel that connect started (stopped on disconnect). */
  tunnel?: string;
  region: string;
  cluster_name: string;
}

export interface KubeEntry {
  /** Cluster, user and context name: the clusters.yaml entry's name. */
  name: string;
  server: string;
  caData: string;
  /** Set when the server URL's host is not the certificate's (port-forward mode). */
  tlsServerName?: string;
  exec: { command: string; args: string[] };
  meta: SsmProxyMeta;
}

const EXTENSION = "ssm-proxy";

/** The file kubectl would write: the first of KUBECONFIG, else ~/.kube/config. */
export function kubeconfigPath(env: Record<string, string | undefined>): string {
  const first = (env.KUBECONFIG ?? "").split(":").find((p) => p !== "");
  if (first) return first;
  if (!env.HOME) throw new UserError("cannot find kubeconfig: neither KUBECONFIG nor HOME is set");
  return `${env.HOME}/.kube/config`;
}

function load(text: string, file: string): Document {
  const doc = parseDocument(text);
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    throw new UserError(
      `${file}:${e.linePos?.[0].line ?? 0}: not valid YAML, kubeconfig left as is: ${
        e.message.split("\n")[0]
      }`,
    );
  }
  if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
    return new Document({
      apiVersion: "v1",
      kind: "Config",
      preferences: {},
      clusters: [],
      users: [],
      contexts: [],
      "current-context": "",
    });
  }
  if (!isMap(doc.contents)) throw new UserError(`${file}: not a kubeconfig (expected a mapping)`);
  return doc;
}

/** The named item of `clusters`/`users`/`contexts`, created (empty) when absent. */
function named(doc: Document, list: string, name: string): YAMLMap {
  let seq = doc.get(list, true) as Node | undefined;
  if (!isSeq(seq)) {
    seq = doc.createNode([]) as Node;
    doc.set(list, seq);
  }
  if (!isSeq(seq)) throw new Error("unreachable");
  const found = seq.items.find((i) => isMap(i) && i.get("name") === name);
  if (found) return found as YAMLMap;
  const item = doc.createNode({ name }) as YAMLMap;
  seq.items.push(item);
  return item;
}

/** The inner map (`cluster:`, `user:`, `context:`) of an item, created when absent. */
function inner(doc: Document, item: YAMLMap, key: string): YAMLMap {
  const m = item.get(key, true);
  if (isMap(m)) return m as YAMLMap;
  const created = doc.createNode({}) as YAMLMap;
  item.set(key, created);
  return created;
}

function setMeta(doc: Document, cluster: YAMLMap, meta: SsmProxyMeta): void {
  let exts = cluster.get("extensions", true) as Node | undefined;
  if (!isSeq(exts)) {
    exts = doc.createNode([]) as Node;
    cluster.set("extensions", exts);
  }
  if (!isSeq(exts)) throw new Error("unreachable");
  const value = doc.createNode({ name: EXTENSION, extension: meta });
  const i = exts.items.findIndex((e) => isMap(e) && e.get("name") === EXTENSION);
  if (i >= 0) exts.items[i] = value;
  else exts.items.push(value);
}

/** Adds or updates the entry's cluster, user and context, and makes it the current context. */
export function mergeEntry(text: string, e: KubeEntry, file = "kubeconfig"): string {
  const doc = load(text, file);
  const cluster = inner(doc, named(doc, "clusters", e.name), "cluster");
  cluster.set("server", e.server);
  cluster.set("certificate-authority-data", e.caData);
  // A CA file the user once set would override the data we write: ours is the current one.
  cluster.delete("certificate-authority");
  if (e.tlsServerName) cluster.set("tls-server-name", e.tlsServerName);
  else cluster.delete("tls-server-name");
  setMeta(doc, cluster, e.meta);

  const user = inner(doc, named(doc, "users", e.name), "user");
  user.set(
    "exec",
    doc.createNode({
      apiVersion: "client.authentication.k8s.io/v1beta1",
      command: e.exec.command,
      args: e.exec.args,
      interactiveMode: "Never",
      provideClusterInfo: false,
    }),
  );
  const context = inner(doc, named(doc, "contexts", e.name), "context");
  context.set("cluster", e.name);
  context.set("user", e.name);
  doc.set("current-context", e.name);
  return doc.toString();
}

/** Switches the current context only (a reused connection). */
export function useContext(text: string, name: string, file = "kubeconfig"): string {
  const doc = load(text, file);
  doc.set("current-context", name);
  return doc.toString();
}

/** Marks ssm-proxy's entry inactive; server, CA, user and context stay for the next connect. */
export function markInactive(text: string, name: string, file = "kubeconfig"): string {
  const doc = load(text, file);
  const meta = readMeta(text).get(name);
  if (!meta) return text;
  const cluster = inner(doc, named(doc, "clusters", name), "cluster");
  setMeta(doc, cluster, { ...meta, active: false });
  return doc.toString();
}

/** ssm-proxy's metadata of every cluster that has some. */
export function readMeta(text: string): Map<string, SsmProxyMeta> {
  const out = new Map<string, SsmProxyMeta>();
  const doc = parseDocument(text);
  const clusters = doc.errors.length === 0 ? doc.get("clusters", true) : undefined;
  if (!isSeq(clusters)) return out;
  for (const item of clusters.items) {
    if (!isMap(item)) continue;
    const exts = item.getIn(["cluster", "extensions"], true);
    if (!isSeq(exts)) continue;
    for (const ext of exts.items) {
      if (isMap(ext) && ext.get("name") === EXTENSION) {
        const meta = (ext.toJSON() as { extension?: SsmProxyMeta }).extension;
        if (meta) out.set(String(item.get("name")), meta);
      }
    }
  }
  return out;
}

/** Local ports that kubeconfig clusters point at, ours or not: never hand them out again. */
export function localPortsInUse(text: string): Set<number> {
  const ports = new Set<number>();
  const doc = parseDocument(text);
  const clusters = doc.errors.length === 0 ? doc.get("clusters", true) : undefined;
  if (!isSeq(clusters)) return ports;
  for (const item of clusters.items) {
    const server = isMap(item) ? item.getIn(["cluster", "server"]) : undefined;
    const m = /^https?:\/\/(localhost|127\.0\.0\.1|\[::1\]):(\d+)/.exec(String(server ?? ""));
    if (m) ports.add(Number(m[2]));
  }
  return ports;
}
