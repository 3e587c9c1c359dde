/** kubeconfig merge: ours updated in place, everything else (entries, comments, order) kept. */
import assert from "node:assert/strict";
import { parseDocument } from "yaml";
import {
  kubeconfigPath,
  type KubeEntry,
  localPortsInUse,
  markInactive,
  mergeEntry,
  readMeta,
  useContext,
} from "../../src/eks/kubeconfig.ts";
import { editKubeconfig, readKubeconfig } from "../../src/eks/kubefile.ts";

const EXISTING = `# my kubeconfig: keep this comment
apiVersion: v1
kind: Config
clusters:
  # the minikube cluster
  - name: minikube
    cluster:
      server: https://192.168.49.2:8443
      certificate-authority: /home/u/.minikube/ca.crt
  - name: old-forward
    cluster:
      server: https://localhost:50000
users:
  - name: minikube
    user:
      client-certificate: /home/u/.minikube/client.crt # inline comment
contexts:
  - name: minikube
    context:
      cluster: minikube
      user: minikube
      namespace: dev
current-context: minikube
preferences: {}
`;

const ENTRY: KubeEntry = {
  name: "dev",
  server: "https://localhost:51234",
  caData: "Q0E=",
  tlsServerName: "ABC.gr7.eu-west-1.eks.amazonaws.com",
  exec: { command: "/usr/local/bin/ssm-proxy", args: ["eks", "token", "--cluster", "dev-eks"] },
  meta: {
    mode: "port-forward",
    active: true,
    port: 51234,
    region: "eu-west-1",
    cluster_name: "dev-eks",
  },
};

Deno.test("kubeconfig: merge adds ours and keeps other entries, comments and order", () => {
  const out = mergeEntry(EXISTING, ENTRY);
  // Everything that was there is still there, byte for byte, in the same order.
  for (const line of EXISTING.split("\n").filter((l) => !l.startsWith("current-context"))) {
    assert.ok(out.includes(line), `kept: ${line}`);
  }
  assert.ok(out.indexOf("# my kubeconfig") < out.indexOf("# the minikube cluster"));
  const cfg = parseDocument(out).toJS();
  assert.deepEqual(cfg.clusters.map((c: { name: string }) => c.name), [
    "minikube",
    "old-forward",
    "dev",
  ]);
  assert.equal(cfg["current-context"], "dev");
  assert.deepEqual(cfg.clusters[2].cluster, {
    server: "https://localhost:51234",
    "certificate-authority-data": "Q0E=",
    "tls-server-name": "ABC.gr7.eu-west-1.eks.amazonaws.com",
    extensions: [{ name: "ssm-proxy", extension: ENTRY.meta }],
  });
  assert.deepEqual(cfg.users[1], {
    name: "dev",
    user: {
      exec: {
        apiVersion: "client.authentication.k8s.io/v1beta1",
        command: "/usr/local/bin/ssm-proxy",
        args: ["eks", "token", "--cluster", "dev-eks"],
        interactiveMode: "Never",
        provideClusterInfo: false,
      },
    },
  });
  assert.deepEqual(cfg.contexts[1], { name: "dev", context: { cluster: "dev", user: "dev" } });
});

Deno.test("kubeconfig: merging again updates in place and keeps the user's own additions", () => {
  let text = mergeEntry(EXISTING, ENTRY);
  const doc = parseDocument(text);
  doc.setIn(["contexts", 1, "context", "namespace"], "team-a");
  doc.setIn(["clusters", 2, "cluster", "proxy-url"], "socks5://localhost:1080");
  text = doc.toString();
  const again = mergeEntry(text, {
    ...ENTRY,
    server: "https://real.example",
    tlsServerName: undefined,
    meta: { ...ENTRY.meta, mode: "transparent", port: undefined },
  });
  const cfg = parseDocument(again).toJS();
  assert.equal(cfg.clusters.length, 3);
  assert.equal(cfg.contexts[1].context.namespace, "team-a");
  assert.equal(cfg.clusters[2].cluster["proxy-url"], "socks5://localhost:1080");
  assert.equal(cfg.clusters[2].cluster.server, "https://real.example");
  assert.equal(cfg.clusters[2].cluster["tls-server-name"], undefined);
  assert.equal(cfg.clusters[2].cluster.extensions.length, 1);
  assert.equal(readMeta(again).get("dev")?.mode, "transparent");
});

Deno.test("kubeconfig: an empty or missing file becomes a whole kubeconfig", () => {
  const cfg = parseDocument(mergeEntry("", ENTRY)).toJS();
  assert.equal(cfg.apiVersion, "v1");
  assert.equal(cfg.kind, "Config");
  assert.equal(cfg.clusters.length, 1);
  assert.equal(cfg["current-context"], "dev");
});

Deno.test("kubeconfig: markInactive keeps server, CA, user and context; others untouched", () => {
  const merged = mergeEntry(EXISTING, ENTRY);
  const out = markInactive(merged, "dev");
  assert.equal(readMeta(out).get("dev")?.active, false);
  const a = parseDocument(merged).toJS();
  const b = parseDocument(out).toJS();
  a.clusters[2].cluster.extensions[0].extension.active = false;
  assert.deepEqual(b, a);
  assert.equal(markInactive(EXISTING, "minikube"), EXISTING, "not ours: left alone");
});

Deno.test("kubeconfig: useContext switches only the current context", () => {
  const out = useContext(EXISTING, "dev");
  assert.equal(out, EXISTING.replace("current-context: minikube", "current-context: dev"));
});

Deno.test("kubeconfig: local ports already pointed at are reported, ours or not", () => {
  const out = mergeEntry(EXISTING, ENTRY);
  assert.deepEqual([...localPortsInUse(out)].sort(), [50000, 51234]);
  assert.deepEqual([...localPortsInUse("not: [valid")], []);
});

Deno.test("kubeconfig: invalid YAML is refused, never rewritten", () => {
  assert.throws(
    () => mergeEntry("clusters: [a\n", ENTRY, "/k/config"),
    /^UserError: \/k\/config:\d+: not valid YAML, kubeconfig left as is/,
  );
  assert.throws(() => mergeEntry("- a\n", ENTRY, "/k/config"), /not a kubeconfig/);
});

Deno.test("kubeconfig: KUBECONFIG's first file, else ~/.kube/config", () => {
  assert.equal(kubeconfigPath({ KUBECONFIG: "/a:/b", HOME: "/h" }), "/a");
  assert.equal(kubeconfigPath({ KUBECONFIG: ":/b", HOME: "/h" }), "/b");
  assert.equal(kubeconfigPath({ HOME: "/h" }), "/h/.kube/config");
  assert.throws(() => kubeconfigPath({}), /neither KUBECONFIG nor HOME/);
});

Deno.test("kubeconfig: file edits are atomic and keep the file's mode", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/sub/config`;
    await editKubeconfig(path, (t) => mergeEntry(t, ENTRY));
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    await Deno.chmod(path, 0o640);
    await editKubeconfig(path, (t) => markInactive(t, "dev"));
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o640);
    assert.equal(readMeta(await readKubeconfig(path)).get("dev")?.active, false);
    assert.deepEqual([...Deno.readDirSync(`${dir}/sub`)].map((e) => e.name), ["config"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
