/**
 * An STS endpoint over https (agent/identity_sts.ts endpointSender): the proof goes to the
 * configured endpoint under the Host it was signed for, and TLS is checked against the
 * endpoint's own name — a certificate for any other name fails. A local TLS server with a test
 * CA stands in for an STS VPC endpoint; the agent's side runs in a child process trusting that
 * CA through DENO_CERT, as an instance's agent would trust its system roots.
 */
import assert from "node:assert/strict";
import { makePki } from "../eks/support.ts";

const ALICE_ARN = "arn:aws:sts::111122223333:assumed-role/Dev/alice";
const ANSWER = `<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>${ALICE_ARN}</Arn>` +
  `<UserId>AROADEV0000000000001:alice</UserId><Account>111122223333</Account>` +
  `</GetCallerIdentityResult></GetCallerIdentityResponse>`;

/** One HTTPS answer per connection; records each request's Host header. */
function fakeEndpoint(certPem: string, keyPem: string) {
  const listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: certPem, key: keyPem });
  const hosts: string[] = [];
  const done = (async () => {
    for await (const conn of listener) {
      try {
        const buf = new Uint8Array(16384);
        let head = "";
        while (!head.includes("\r\n\r\n")) {
          const n = await conn.read(buf);
          if (n === null) break;
          head += new TextDecoder().decode(buf.subarray(0, n));
        }
        hosts.push(/\r\nhost: *([^\r\n]*)/i.exec(head)?.[1] ?? "(none)");
        await conn.write(new TextEncoder().encode(
          `HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: ${ANSWER.length}\r\n` +
            `connection: close\r\n\r\n${ANSWER}`,
        ));
      } catch { /* a client that refused our certificate */ }
      try {
        conn.close();
      } catch { /* closed */ }
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    hosts,
    close: async () => {
      listener.close();
      await done.catch(() => {});
    },
  };
}

function pick(...names: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of names) {
    const v = Deno.env.get(n);
    if (v !== undefined) out[n] = v;
  }
  return out;
}

/** The agent's STS call for a proof signed for sts.eu-west-1, sent to `endpoint`, in a child. */
async function agentCall(endpoint: string, caFile: string): Promise<string> {
  const here = (p: string) => new URL(p, import.meta.url).href;
  const script = `
    import { buildProof } from "${here("../../src/aws/identity_proof.ts")}";
    import { stsCall, stsRouting } from "${here("../../agent/identity_sts.ts")}";
    const nonce = "n0nce-for-the-tls-test-0123456789";
    const proof = await buildProof({
      aws: { region: "eu-west-1" },
      nonce,
      credentials: { accessKeyId: "AKIATEST000000000001", secretAccessKey: "s" },
    });
    try {
      const who = await stsCall(stsRouting("${endpoint}", {}), 5000)(proof, nonce);
      console.log("ok " + who.arn);
    } catch (e) {
      console.log("failed " + e.message);
    }`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    // No AWS endpoint overrides from this process: the proof is signed for regional STS.
    clearEnv: true,
    env: {
      ...pick("HOME", "PATH", "DENO_DIR", "NO_COLOR"),
      DENO_CERT: caFile,
      AWS_EC2_METADATA_DISABLED: "true",
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return (new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr)).trim();
}

Deno.test("identity: an https STS endpoint gets the signed Host, and TLS checks the endpoint's name", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const [san, good] of [["DNS:localhost", true], ["DNS:vpce.example", false]] as const) {
      const pki = await makePki(san);
      const caFile = `${dir}/ca.pem`;
      await Deno.writeTextFile(caFile, pki.caPem);
      const srv = fakeEndpoint(pki.certPem, pki.keyPem);
      try {
        const said = await agentCall(`https://localhost:${srv.port}`, caFile);
        if (good) {
          assert.equal(said, `ok ${ALICE_ARN}`);
          assert.deepEqual(
            srv.hosts,
            ["sts.eu-west-1.amazonaws.com"],
            "the Host it was signed for",
          );
        } else {
          // A certificate for another name than the endpoint's: nothing is sent.
          assert.match(
            said,
            /^failed could not reach STS at localhost:\d+ to check an identity proof: .*(certificate|Certificate|NotValidForName|name)/,
            said,
          );
          assert.deepEqual(srv.hosts, []);
        }
      } finally {
        await srv.close();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
