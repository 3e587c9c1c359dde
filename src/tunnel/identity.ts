/**
 * The client's side of identity proofs in the tunnel handshake (wire.ts CHALLENGE/PROOF, issue
 * 15), as the tunnel layer sees it: a prover it calls per nonce (built elsewhere, with the AWS
 * SDK, which this layer knows nothing of), the refusals that end a tunnel for good, and what
 * the user is told about the identity the agent verified. Pure.
 */
import { ExitCode, UserError } from "../errors.ts";
import type { Welcome, WireErrorCode } from "./wire.ts";

/**
 * Signs a proof of the client's IAM identity bound to the agent's nonce; resolves with the
 * proof's text as the PROOF frame carries it (encodeProof). Called once per stripe handshake
 * that the agent challenges, so it must be quick after the first call.
 */
export type Prover = (nonce: string) => Promise<string>;

export type IdentityCode = Extract<WireErrorCode, "identity-required" | "identity-refused">;

/**
 * The agent will not let this identity (or a client without one) in. Another session cannot
 * change that, so healing stops rather than retrying: the tunnel ends with this line.
 */
export class IdentityRefused extends UserError {
  override name = "IdentityRefused";
  constructor(readonly code: IdentityCode, message: string) {
    super(message, ExitCode.Auth);
  }
}

export function isIdentityCode(code: string): code is IdentityCode {
  return code === "identity-required" || code === "identity-refused";
}

/** Whitespace runs (an agent's multi-line message) become one space. */
function oneLine(s: string): string {
  return s.replace(/\s+/g, " ").trim();
}

/**
 * The one line a refusal becomes: whose refusal, the agent's own words, what to do. `where`
 * names the instance ("i-0abc…"), `offered` whether this HELLO offered a proof.
 */
export function identityRefusal(
  code: IdentityCode,
  agentMessage: string,
  where: string,
  offered: boolean,
): IdentityRefused {
  const said = oneLine(agentMessage) || code;
  const who = `ssm-proxy-agent on ${where}`;
  if (code === "identity-required") {
    return new IdentityRefused(
      code,
      offered
        ? `${who} requires a verified IAM identity and took none from this client: ${said}; ask its administrator`
        : `${who} requires a verified IAM identity: ${said}; this command offers none (\`ssm-proxy start\` does)`,
    );
  }
  return new IdentityRefused(
    code,
    `${who} refused this client's IAM identity: ${said}; use credentials its policy allows (--profile), or ask its administrator to allow yours`,
  );
}

/**
 * What the agent made of the client's identity, for `status` and the "up" line: the ARN it
 * verified, why it could not, or that it does not check (an older agent, or one not set up to).
 */
export function identityText(w: Pick<Welcome, "identity" | "identityUnverified">): string {
  if (w.identity) return w.identity.arn;
  if (w.identityUnverified !== undefined) {
    return `not verified: ${oneLine(w.identityUnverified) || "no reason given"}`;
  }
  return "agent does not check identities";
}
