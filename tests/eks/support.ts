/**
 * EKS test rig: a CA and a server certificate made with openssl, and a tiny HTTPS server that
 * plays the cluster's API endpoint. Like EKS (aws-iam-authenticator) it accepts only a
 * `k8s-aws-v1.` token whose presigned STS URL carries a valid signature over
 * `x-k8s-aws-id: <cluster>`; here the signature is checked by recomputing it with the same
 * credentials instead of by asking STS.
 */
import { Sha256 } from "@aws-crypto/sha256-js";
import { SignatureV4 } from "@smithy/signature-v4";
import { decodeToken } from "../../src/eks/token.ts";

export interface Pki {
  caPem: string;
  certPem: string;
  keyPem: string;
}

async function openssl(dir: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd: dir, stderr: "piped" }).output();
  if (!out.success) throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
}

/** A fresh CA and a leaf for `san` (e.g. `IP:127.0.0.1`) signed by it. */
export async function makePki(san: string): Promise<Pki> {
  const dir = await Deno.makeTempDir({ prefix: "eks-pki-" });
  try {
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    await openssl(
      dir,
      "req",
      "-x509",
      ...ec,
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
      "-days",
      "2",
      "-subj",
      "/CN=test-eks-ca",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    );
    await openssl(
      dir,
      "req",
      ...ec,
      "-keyout",
      "leaf.key",
      "-out",
      "leaf.csr",
      "-subj",
      "/CN=kube-apiserver",
    );
    await Deno.writeTextFile(`${dir}/ext`, `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`);
    await openssl(
      dir,
      "x509",
      "-req",
      "-in",
      "leaf.csr",
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      "leaf.crt",
      "-days",
      "2",
      "-extfile",
      "ext",
    );
    const read = (f: string) => Deno.readTextFile(`${dir}/${f}`);
    return {
      caPem: await read("ca.crt"),
      certPem: await read("leaf.crt"),
      keyPem: await read("leaf.key"),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

export interface Creds {
  accessKeyId: string;
  secretAccessKey: string;
}

/** Why a token is refused, or undefined when it is good for `cluster`. */
export async function checkToken(
  auth: string | null,
  cluster: string,
  region: string,
  creds: Creds,
  now = new Date(),
): Promise<string | undefined> {
  const token = auth?.replace(/^Bearer /, "");
  const url = token ? decodeToken(token) : undefined;
  if (!url) return "no k8s-aws-v1. bearer token";
  const u = new URL(url);
  if (u.protocol !== "https:" || u.host !== `sts.${region}.amazonaws.com` || u.pathname !== "/") {
    return `token URL goes to ${u.origin}${u.pathname}`;
  }
  const p = Object.fromEntries(u.searchParams);
  if (p.Action !== "GetCallerIdentity" || p.Version !== "2011-06-15") {
    return "not GetCallerIdentity";
  }
  if (p["X-Amz-Expires"] !== "60") return `X-Amz-Expires=${p["X-Amz-Expires"]}`;
  if (p["X-Amz-SignedHeaders"] !== "host;x-k8s-aws-id") return "x-k8s-aws-id not signed";
  const m = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/.exec(p["X-Amz-Date"] ?? "");
  if (!m) return "bad X-Amz-Date";
  const date = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
  if (Math.abs(now.getTime() - date.getTime()) > 15 * 60_000) return "token expired";
  const signer = new SignatureV4({ service: "sts", region, credentials: creds, sha256: Sha256 });
  const again = await signer.presign({
    method: "GET",
    protocol: "https:",
    hostname: u.host,
    path: "/",
    query: { Action: p.Action, Version: p.Version },
    headers: { host: u.host, "x-k8s-aws-id": cluster },
  }, { expiresIn: 60, signingDate: date });
  if (again.query?.["X-Amz-Signature"] !== p["X-Amz-Signature"]) return "signature mismatch";
  return undefined;
}

/** The API endpoint: `/version` for a good token, 401 otherwise. */
export function startApiServer(
  pki: Pki,
  cluster: string,
  region: string,
  creds: Creds,
  at: { hostname: string; port: number } = { hostname: "127.0.0.1", port: 0 },
) {
  const refusals: string[] = [];
  const server = Deno.serve({
    hostname: at.hostname,
    port: at.port,
    cert: pki.certPem,
    key: pki.keyPem,
    onListen: () => {},
  }, async (req) => {
    const why = await checkToken(req.headers.get("authorization"), cluster, region, creds);
    if (why) {
      refusals.push(why);
      return Response.json(
        { kind: "Status", status: "Failure", reason: "Unauthorized", code: 401 },
        {
          status: 401,
        },
      );
    }
    if (new URL(req.url).pathname !== "/version") return new Response("not found", { status: 404 });
    return Response.json({ major: "1", minor: "31", gitVersion: "v1.31.0-eks-emulated" });
  });
  return { port: (server.addr as Deno.NetAddr).port, refusals, close: () => server.shutdown() };
}

export function base64(s: string): string {
  return btoa(String.fromCharCode(...new TextEncoder().encode(s)));
}
