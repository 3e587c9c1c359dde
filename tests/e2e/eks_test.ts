/**
 * `eks connect` in transparent mode for real: run as root in the lab's laptop, it starts an
 * `ssm-proxy start` tunnel to the bastion for the cluster's VPC, writes kubeconfig with the real
 * endpoint (a TLS API server in the vpc namespace, cert signed by the cluster CA), and kubectl
 * reaches it through the tunnel with TLS verified; `eks disconnect` stops the tunnel.
 */
import assert from "node:assert/strict";
import { parseDocument } from "yaml";
import { ssmProxyArgv, tunnelStatus } from "../../scripts/lab/stack.ts";
import { e2eTest, withStack } from "../support/lab.ts";
import { makePki } from "../eks/support.ts";

const CREDS = { accessKeyId: "AKIDEKSLAB", secretAccessKey: "eks-lab-secret" };

e2eTest("e2e: eks connect starts a tunnel and kubectl reaches the private endpoint", async (t) => {
  let pki: Awaited<ReturnType<typeof makePki>>;
  await withStack({
    fixtures: async (lab) => {
      pki = await makePki(`IP:${lab.serviceAddress}`);
      const file = `${lab.dir}/fixtures.yaml`;
      await Deno.writeTextFile(
        file,
        [
          "instances:",
          "  - { id: i-0123456789abcdef0, name: bastion, tags: { Purpose: bastion }, vpc: vpc-0a1b2c3d }",
          "vpcs:",
          `  - { id: vpc-0a1b2c3d, cidr: ${lab.vpcNetwork} }`,
          "clusters:",
          "  - name: lab",
          `    endpoint: https://${lab.serviceAddress}`,
          "    vpc: vpc-0a1b2c3d",
          "    privateAccess: true",
          "    publicAccess: false",
          "    ca: |",
          ...pki.caPem.trim().split("\n").map((l) => `      ${l}`),
        ].join("\n") + "\n",
      );
      return file;
    },
  }, async ({ lab }) => {
    const dir = lab.dir;
    await Deno.writeTextFile(`${dir}/pki.json`, JSON.stringify(pki));
    const api = lab.spawn(
      "vpc",
      [
        Deno.execPath(),
        "run",
        "-A",
        new URL("./eks_api.ts", import.meta.url).pathname,
        lab.serviceAddress,
        "443",
        `${dir}/pki.json`,
        "lab",
        "us-east-1",
        CREDS.accessKeyId,
        CREDS.secretAccessKey,
      ],
      {},
      "eks-api",
    );
    await api.waitForLine(/eks api listening/, 30_000);
    await Deno.writeTextFile(`${dir}/aws-config`, "[profile emu]\nregion = us-east-1\n");
    await Deno.writeTextFile(
      `${dir}/aws-credentials`,
      `[emu]\naws_access_key_id = ${CREDS.accessKeyId}\naws_secret_access_key = ${CREDS.secretAccessKey}\n`,
    );
    await Deno.writeTextFile(
      `${dir}/clusters.yaml`,
      "clusters:\n  - { name: lab, region: us-east-1, cluster_name: lab, profile: emu }\n",
    );
    const kubeconfig = `${dir}/kubeconfig`;
    const env: Record<string, string> = {
      AWS_ENDPOINT_URL: `http://${lab.instanceAddress}:4566`,
      AWS_CONFIG_FILE: `${dir}/aws-config`,
      AWS_SHARED_CREDENTIALS_FILE: `${dir}/aws-credentials`,
      AWS_EC2_METADATA_DISABLED: "true",
      SSM_PROXY_STATE_DIR: `${dir}/state-laptop`,
      KUBECONFIG: kubeconfig,
      HOME: dir,
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      NO_COLOR: "1",
    };

    await t.step("connect starts the tunnel and writes the real endpoint", async () => {
      const r = await lab.exec(
        "laptop",
        ssmProxyArgv(["eks", "connect", "lab", "--clusters", `${dir}/clusters.yaml`]),
        env,
      );
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const s = await tunnelStatus(lab, "laptop", "eks-lab");
      assert.equal(s?.status, "up", "the eks-lab tunnel is up");
      const doc = parseDocument(await Deno.readTextFile(kubeconfig)).toJS();
      assert.equal(doc.clusters[0].cluster.server, `https://${lab.serviceAddress}`);
      assert.equal(doc["current-context"], "lab");
    });

    await t.step("kubectl reaches the private endpoint with TLS verified", async () => {
      const r = await lab.exec("laptop", ["kubectl", "get", "--raw", "/version"], env);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /v1\.31\.0-eks-emulated/);
    });

    await t.step("disconnect stops the tunnel and marks the entry inactive", async () => {
      const r = await lab.exec("laptop", ssmProxyArgv(["eks", "disconnect", "lab"]), env);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /tunnel "eks-lab" stopped/);
      assert.equal(await tunnelStatus(lab, "laptop", "eks-lab"), undefined);
      const k = await lab.exec("laptop", [
        "kubectl",
        "get",
        "--raw",
        "/version",
        "--request-timeout=3s",
      ], env);
      assert.notEqual(k.code, 0, "kubectl no longer reaches the endpoint");
    });
  });
});
