/**
 * The EKS API endpoint inside the lab's vpc namespace (run with `ip netns exec`):
 *   deno run -A eks_api.ts HOST PORT PKI_JSON CLUSTER REGION ACCESS_KEY SECRET
 * Serves /version to a valid `k8s-aws-v1.` token over TLS with the lab CA's certificate.
 */
import { startApiServer } from "../eks/support.ts";

const [hostname, port, pkiFile, cluster, region, accessKeyId, secretAccessKey] = Deno.args;
const pki = JSON.parse(await Deno.readTextFile(pkiFile));
startApiServer(pki, cluster, region, { accessKeyId, secretAccessKey }, {
  hostname,
  port: Number(port),
});
console.log("eks api listening");
