/**
 * `eks connect` end to end on loopback: the emulator (STS, EKS, EC2, SSM, MGS, agent), an HTTPS
 * server with a certificate for the cluster endpoint signed by the cluster CA, and the real
 * kubectl calling `eks token` through the kubeconfig that connect wrote.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parseDocument } from "yaml";
import { connectCluster } from "../../src/cli/eks_connect.ts";
import type { ClusterEntry } from "../../src/config/clusters.ts";
import { defaultFixtures } from "../../src/emulator/fixtures.ts";
import { startEmulator } from "../../src/emulator/server.ts";
import { readMeta } from "../../src/eks/kubeconfig.ts";
import { readForwardState } from "../../src/eks/state.ts";
import { awsEnv, withEnv } from "../support/aws_env.ts";
import { base64, makePki, type Pki, startApiServer } from "./support.ts";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
const SELF = {
  command: Deno.execPath(),
  args: ["run", "-A", "--config", `${REPO}deno.json`, `${REPO}main.ts`],
};
const CREDS = { accessKeyId: "AKIDEMULATOR", secretAccessKey: "emulator-secret" };
const ENTRY: ClusterEntry = {
  name: "lab-dev",
  region: "us-east-1",
  cluster_name: "lab",
  profile: "emu",
  environment: "dev",
  direct_connect: false,
};
const quiet = () => {};

interface Rig {
  dir: string;
  kubeconfig: string;
  env: Record<string, string>;
  api: ReturnType<typeof startApiServer>;
  emu: Awaited<ReturnType<typeof startEmulator>>;
}

let pkiCache: { good: Pki; other: Pki } | undefined;
async function pkis() {
  pkiCache ??= { good: await makePki("IP:127.0.0.1"), other: await makePki("IP:127.0.0.1") };
  return pkiCache;
}

async function rig<T>(fn: (r: Rig) => Promise<T>, opts: { publicAccess?: boolean } = {}) {
  const { good } = await pkis();
  const api = startApiServer(good, "lab", "us-east-1", CREDS);
  const fixtures = defaultFixtures();
  fixtures.clusters[0] = {
    ...fixtures.clusters[0],
    endpoint: `https://127.0.0.1:${api.port}`,
    caData: base64(good.caPem),
    publicAccess: opts.publicAccess ?? false,
  };
  const emu = await startEmulator({ port: 0, pacing: false, fixtures });
  const dir = await Deno.makeTempDir({ prefix: "eks-connect-" });
  await Deno.writeTextFile(`${dir}/aws-config`, "[profile emu]\nregion = us-east-1\n");
  await Deno.writeTextFile(
    `${dir}/aws-credentials`,
    `[emu]\naws_access_key_id = ${CREDS.accessKeyId}\naws_secret_access_key = ${CREDS.secretAccessKey}\n`,
  );
  const env = {
    ...awsEnv(emu.url),
    // The entry's profile supplies the credentials, as it would for a real user.
    AWS_ACCESS_KEY_ID: "",
    AWS_SECRET_ACCESS_KEY: "",
    AWS_CONFIG_FILE: `${dir}/aws-config`,
    AWS_SHARED_CREDENTIALS_FILE: `${dir}/aws-credentials`,
    HOME: dir,
    KUBECONFIG: `${dir}/kube/config`,
    SSM_PROXY_EKS_STATE_DIR: `${dir}/eks-state`,
    SSM_PROXY_STATE_DIR: `${dir}/tunnels`,
  };
  try {
    return await withEnv(env, () => fn({ dir, kubeconfig: env.KUBECONFIG, env, api, emu }));
  } finally {
    await api.close();
    await emu.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function kubectl(env: Record<string, string>, ...args: string[]) {
  const out = await new Deno.Command("kubectl", {
    args,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { ok: out.success, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function editCluster(path: string, key: string, value: string | undefined) {
  const doc = parseDocument(await Deno.readTextFile(path));
  if (value === undefined) doc.deleteIn(["clusters", 0, "cluster", key]);
  else doc.setIn(["clusters", 0, "cluster", key], value);
  await Deno.writeTextFile(path, doc.toString());
}

Deno.test("eks connect --port-forward: kubectl get --raw /version with TLS verified by the cluster CA", async () => {
  await rig(async ({ kubeconfig, env, api }) => {
    const conn = await connectCluster(ENTRY, { portForward: true, self: SELF, log: quiet });
    try {
      assert.equal(conn.mode, "port-forward");
      assert.ok(conn.port! >= 49152 && conn.port! <= 65535, `port ${conn.port}`);
      const cfg = parseDocument(await Deno.readTextFile(kubeconfig)).toJS();
      assert.equal(cfg["current-context"], "lab-dev");
      const c = cfg.clusters[0].cluster;
      assert.equal(c.server, `https://localhost:${conn.port}`);
      assert.equal(c["tls-server-name"], "127.0.0.1");
      assert.equal(c["certificate-authority-data"], base64((await pkis()).good.caPem));
      assert.equal(cfg.users[0].user.exec.command, Deno.execPath());
      assert.deepEqual(cfg.users[0].user.exec.args, [
        ...SELF.args,
        ...["eks", "token", "--cluster", "lab", "--region", "us-east-1", "--profile", "emu"],
      ]);
      const state = await readForwardState("lab-dev");
      assert.equal(state?.port, conn.port);

      const r = await kubectl(env, "get", "--raw", "/version");
      assert.ok(r.ok, r.stderr);
      assert.equal(JSON.parse(r.stdout).gitVersion, "v1.31.0-eks-emulated");
      assert.deepEqual(api.refusals, []);

      // Another CA: the same server must now be refused by kubectl.
      await editCluster(
        kubeconfig,
        "certificate-authority-data",
        base64((await pkis()).other.caPem),
      );
      const bad = await kubectl(env, "get", "--raw", "/version");
      assert.ok(!bad.ok);
      assert.match(bad.stderr, /x509|certificate/i);

      // The right CA but no tls-server-name: the certificate is not for "localhost".
      await editCluster(
        kubeconfig,
        "certificate-authority-data",
        base64((await pkis()).good.caPem),
      );
      await editCluster(kubeconfig, "tls-server-name", undefined);
      const noName = await kubectl(env, "get", "--raw", "/version");
      assert.ok(!noName.ok);
      assert.match(noName.stderr, /x509|certificate/i);
    } finally {
      await conn.close();
    }
    assert.equal(await readForwardState("lab-dev"), undefined);
    const meta = readMeta(await Deno.readTextFile(kubeconfig)).get("lab-dev");
    assert.equal(meta?.active, false);
    assert.equal(meta?.mode, "port-forward");
  });
});

Deno.test("eks connect without --port-forward and no tunnel, not root: says how to start one", async () => {
  await rig(async () => {
    await assert.rejects(
      connectCluster(ENTRY, { self: SELF, log: quiet, root: false }),
      (e: Error) => {
        assert.match(
          e.message,
          /^transparent mode needs a tunnel routing 10\.99\.0\.0\/16: run "sudo ssm-proxy eks connect lab-dev" \(it starts one\), or "sudo ssm-proxy --profile emu --region us-east-1 start --target i-0123456789abcdef0 --cidr 10\.99\.0\.0\/16 -d" first, or pass --port-forward/,
        );
        return true;
      },
    );
  });
});

Deno.test("eks connect as root with no tunnel: starts one for the VPC, kubeconfig to the real endpoint", async () => {
  await rig(async ({ kubeconfig }) => {
    const started: string[][] = [];
    const conn = await connectCluster(ENTRY, {
      self: SELF,
      log: quiet,
      root: true,
      startTunnel: (args) => (started.push(args), Promise.resolve()),
    });
    assert.deepEqual(started, [[
      "--profile",
      "emu",
      "--region",
      "us-east-1",
      "start",
      "--target",
      "i-0123456789abcdef0",
      "--cidr",
      "10.99.0.0/16",
      "--name",
      "eks-lab-dev",
      "-d",
    ]]);
    assert.equal(conn.mode, "transparent");
    const doc = parseDocument(await Deno.readTextFile(kubeconfig)).toJS();
    assert.equal(doc.clusters[0].cluster.server, conn.server);
    const meta = readMeta(await Deno.readTextFile(kubeconfig)).get("lab-dev");
    assert.equal(meta?.mode, "transparent");
    assert.equal(meta?.tunnel, "eks-lab-dev");
  });
});

Deno.test("eks connect with a running tunnel covering the VPC: transparent, real endpoint", async () => {
  await rig(async ({ dir, kubeconfig, env }) => {
    await Deno.mkdir(`${dir}/tunnels`);
    await Deno.writeTextFile(
      `${dir}/tunnels/vpc.json`,
      JSON.stringify({ name: "vpc", pid: Deno.pid, status: "up", cidrs: ["10.0.0.0/8"] }),
    );
    const conn = await connectCluster(ENTRY, { self: SELF, log: quiet });
    assert.equal(conn.mode, "transparent");
    const c = parseDocument(await Deno.readTextFile(kubeconfig)).toJS().clusters[0].cluster;
    assert.equal(c.server, conn.server);
    assert.equal(c["tls-server-name"], undefined);
    // The endpoint is reachable from here, so kubectl works against it as through a tunnel.
    const r = await kubectl(env, "get", "--raw", "/version");
    assert.ok(r.ok, r.stderr);
  });
});

Deno.test("eks connect direct_connect: refused for a private-only endpoint, else direct", async () => {
  const direct = { ...ENTRY, direct_connect: true };
  await rig(async () => {
    await assert.rejects(
      connectCluster(direct, { self: SELF, log: quiet }),
      /direct_connect: true but its endpoint has no public access/,
    );
  });
  await rig(async ({ kubeconfig, env }) => {
    const conn = await connectCluster(direct, { self: SELF, log: quiet });
    assert.equal(conn.mode, "direct");
    assert.equal(readMeta(await Deno.readTextFile(kubeconfig)).get("lab-dev")?.mode, "direct");
    assert.ok((await kubectl(env, "get", "--raw", "/version")).ok);
  }, { publicAccess: true });
});

Deno.test("eks connect: an unknown cluster and denied credentials are one clear line", async () => {
  await rig(async ({ emu }) => {
    await assert.rejects(
      connectCluster({ ...ENTRY, cluster_name: "nope" }, { self: SELF, log: quiet }),
      /EKS cluster "nope" does not exist in region us-east-1/,
    );
    emu.fixtures.deny.push({ action: "GetCallerIdentity" });
    await assert.rejects(
      connectCluster(ENTRY, { self: SELF, log: quiet }),
      /access denied: .* may not call sts:GetCallerIdentity/,
    );
  });
});

Deno.test("eks connect -d: background forward, reuse on a second connect, disconnect stops it", async () => {
  await rig(async ({ dir, kubeconfig, env }) => {
    const clusters = `${dir}/clusters.yaml`;
    await Deno.writeTextFile(
      clusters,
      "clusters:\n  - name: lab-dev\n    region: us-east-1\n    cluster_name: lab\n    profile: emu\n",
    );
    const { runConnect, runDisconnect } = await import("../../src/cli/eks.ts");
    const lines: string[] = [];
    const log = console.log;
    console.log = (...a: unknown[]) => lines.push(a.join(" "));
    try {
      await runConnect("lab-dev", { portForward: true, background: true, clusters, self: SELF });
      const state = await readForwardState("lab-dev");
      assert.ok(state && state.pid !== Deno.pid, "a child runs the forward");
      const r = await kubectl(env, "get", "--raw", "/version");
      assert.ok(r.ok, r.stderr);

      await runConnect("lab-dev", { portForward: true, clusters, self: SELF });
      assert.match(lines.at(-1)!, /already connected on localhost:\d+ .*switched kubectl/);

      await runDisconnect("lab-dev", {});
      assert.equal(await readForwardState("lab-dev"), undefined);
      assert.equal(readMeta(await Deno.readTextFile(kubeconfig)).get("lab-dev")?.active, false);
      const after = await kubectl(env, "get", "--raw", "/version");
      assert.ok(!after.ok, "the forward is gone");
    } finally {
      console.log = log;
      await runDisconnect(undefined, { all: true }).catch(() => {});
    }
  });
});

Deno.test("eks connect: headless selection and exit, then kill_all", async () => {
  await rig(async ({ dir, kubeconfig, env }) => {
    const clusters = `${dir}/clusters.yaml`;
    await Deno.writeTextFile(
      clusters,
      "clusters:\n  - name: lab-dev\n    region: us-east-1\n    cluster_name: lab\n    profile: emu\n",
    );
    const { runConnect } = await import("../../src/cli/eks.ts");
    const log = console.log;
    console.log = () => {};
    const headless = (sel: string) =>
      withEnv(
        { KUBECTL_SSM_HEADLESS_SELECTION: sel, KUBECTL_SSM_HEADLESS_EXIT: "1" },
        () => runConnect(undefined, { portForward: true, clusters, self: SELF }),
      );
    try {
      await headless("lab-dev");
      assert.ok((await readForwardState("lab-dev"))?.pid !== Deno.pid);
      assert.ok((await kubectl(env, "get", "--raw", "/version")).ok);
      await headless("kill_all");
      assert.equal(await readForwardState("lab-dev"), undefined);
      assert.equal(readMeta(await Deno.readTextFile(kubeconfig)).get("lab-dev")?.active, false);
      await assert.rejects(headless("qa"), /KUBECTL_SSM_HEADLESS_SELECTION=qa names no cluster/);
    } finally {
      console.log = log;
    }
  });
});

Deno.test("eks connect: a profile without credentials says what to run", async () => {
  await rig(async () => {
    await assert.rejects(
      connectCluster({ ...ENTRY, profile: "gone" }, { self: SELF, log: quiet }),
      /sts:GetCallerIdentity.*run "aws sso login --profile gone"/,
    );
  });
});
