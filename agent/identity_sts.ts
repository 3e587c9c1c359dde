/**
 * The agent's STS call for identity proofs (identity.ts's StsCall), sent where its config says.
 *
 * By default a proof goes to the STS host the client signed it for, as the instance resolves
 * that name (an STS VPC endpoint with private DNS needs nothing more). With `stsEndpoint` in
 * agent.yaml, or AWS_ENDPOINT_URL_STS in the agent's environment, it goes to that endpoint
 * instead, still with the Host header the client signed: the signature covers Host, and a VPC
 * endpoint answers for its own DNS names and STS's alike. fetch cannot send a Host other than
 * its URL's, so that path uses node:http(s), with TLS checked against the endpoint's name.
 * The signed path and query are sent as they are; a path in the endpoint URL is not used.
 */
import { type IncomingMessage, request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import {
  configuredStsHosts,
  executeProof,
  type ProofSender,
  type StsAnswer,
} from "../src/aws/identity_proof.ts";
import { UserError } from "../src/errors.ts";
import type { StsCall } from "./identity.ts";

/** STS's answer is a few hundred bytes; anything much bigger is not STS. */
const MAX_ANSWER_BYTES = 64 * 1024;

export interface StsRouting {
  /** Where proofs are sent; undefined: to each proof's own URL. */
  endpoint?: URL;
  /** Hosts accepted as STS besides its public names: the configured endpoints. */
  allowedHosts: string[];
}

/** The routing the config's stsEndpoint and the agent's environment ask for. */
export function stsRouting(
  stsEndpoint: string | undefined,
  env: Record<string, string | undefined>,
): StsRouting {
  const raw = stsEndpoint ?? env.AWS_ENDPOINT_URL_STS;
  let endpoint: URL | undefined;
  if (raw) {
    try {
      endpoint = new URL(raw);
    } catch {
      throw new UserError(
        `AWS_ENDPOINT_URL_STS "${raw}" is not a URL: fix the agent's environment`,
      );
    }
  }
  const hosts = [...configuredStsHosts(env), ...(endpoint ? [endpoint.host] : [])];
  return { endpoint, allowedHosts: [...new Set(hosts)] };
}

/** The real STS call: executeProof over `routing`. */
export function stsCall(routing: StsRouting, timeoutMs?: number): StsCall {
  const send = routing.endpoint ? endpointSender(routing.endpoint) : undefined;
  const sentTo = routing.endpoint?.host;
  return (proof, nonce) =>
    executeProof(proof, { nonce, allowedHosts: routing.allowedHosts, send, sentTo, timeoutMs });
}

/** Sends a proof to `endpoint` under the Host it was signed for. Never follows redirects. */
export function endpointSender(endpoint: URL): ProofSender {
  const tls = endpoint.protocol === "https:";
  const hostname = endpoint.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = Number(endpoint.port) || (tls ? 443 : 80);
  const isIp = /^[\d.]+$/.test(hostname) || hostname.includes(":");
  return (p, signal) =>
    new Promise<StsAnswer>((resolve, reject) => {
      const signed = new URL(p.url);
      const options = {
        hostname,
        port,
        method: p.method,
        path: `${signed.pathname}${signed.search}`,
        // A GET with no body: nothing beside the signed headers, not even a Content-Length.
        headers: { ...p.headers, host: signed.host },
        // A connection per proof: nothing lingers between the rare proofs.
        agent: false as const,
      };
      const onAnswer = (res: IncomingMessage) => {
        const decoder = new TextDecoder();
        let text = "";
        let size = 0;
        res.on("data", (c: Uint8Array) => {
          size += c.length;
          if (size > MAX_ANSWER_BYTES) {
            req.destroy(new Error(`its answer is over ${MAX_ANSWER_BYTES} bytes`));
          } else text += decoder.decode(c, { stream: true });
        });
        res.on("end", () => {
          if (size <= MAX_ANSWER_BYTES) resolve({ status: res.statusCode ?? 0, text });
        });
        res.on("error", reject);
      };
      const req = tls
        ? httpsRequest({ ...options, ...(isIp ? {} : { servername: hostname }) }, onAnswer)
        : httpRequest(options, onAnswer);
      req.on("error", reject);
      const abort = () => req.destroy(signal.reason ?? new Error("timed out"));
      if (signal.aborted) return abort();
      signal.addEventListener("abort", abort, { once: true });
      req.on("close", () => signal.removeEventListener("abort", abort));
      req.end();
    });
}
