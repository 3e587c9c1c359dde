/**
 * Who is on the other end of a stripe (issue 15): the nonce a CHALLENGE carries, what a PROOF
 * amounts to, and what the agent then does with the stripe. The STS call is injected
 * (identity_sts.ts does it for real), so everything here runs without a network.
 *
 * A proof that STS refuses, or that cannot be sent, and STS being unreachable: without
 * requireIdentity the stripe goes on unverified and the WELCOME says why; with it, the stripe is
 * refused. Either way
 * the agent remembers for a minute that STS was unreachable, so the next stripes (a healing
 * client opens several at once) are answered at once instead of each waiting for a timeout.
 */
import { decodeProof, type IdentityProof, NONCE_HEADER } from "../src/aws/identity_proof_shape.ts";
import { checkLocally, proofKeyId } from "../src/aws/identity_proof.ts";
import type { CallerIdentity } from "../src/aws/sts.ts";
import { ExitCode, UserError } from "../src/errors.ts";
import type { WireErrorBody } from "../src/tunnel/wire.ts";
import { parsePrincipalArn, type Principal } from "./principal.ts";
import type { StripeIdentity } from "./tunnels.ts";

/**
 * Sends a checked proof, bound to `nonce`, to STS: the caller it names, or a UserError
 * (ExitCode.Remote: STS could not be asked or failed; otherwise: the proof is refused).
 */
export type StsCall = (proof: IdentityProof, nonce: string) => Promise<CallerIdentity>;

export type ProofOutcome =
  /** `keyId`: the access key it was signed with (a stripe of its tunnel may rejoin with it). */
  | { verified: Principal; keyId: string }
  /** One line: why the proof is no good. */
  | { refused: string }
  /**
   * One line: why STS could not say. `keyId`: the key a proof that passed every check but the
   * signature's claims to be signed with, which may rejoin a tunnel it verified (tunnels.ts).
   */
  | { unreachable: string; keyId?: string };

/** How long STS counts as unreachable after it was. */
export const STS_DOWN_MS = 60_000;
/** 24 random bytes: 32 base64url characters, the CHALLENGE's nonce. */
const NONCE_BYTES = 24;

export interface VerifierOptions {
  /** Hosts accepted besides STS's own (configured endpoints), over http too. */
  allowedHosts: string[];
  sts: StsCall;
  log?: (line: string) => void;
  /** Clock (ms) for the unreachable spell. */
  now?: () => number;
  downForMs?: number;
}

export class IdentityVerifier {
  #downUntil = -Infinity;
  #downReason = "";
  /** Between the first failure of a spell and the next answer: logs once each way. */
  #down = false;
  readonly #log: (line: string) => void;
  readonly #now: () => number;

  constructor(readonly o: VerifierOptions) {
    this.#log = o.log ?? (() => {});
    this.#now = o.now ?? Date.now;
  }

  /** A fresh nonce for one CHALLENGE. */
  challenge(): string {
    const bytes = crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
    return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_");
  }

  /** What the PROOF text answering `nonce` proves. */
  async check(proofText: string, nonce: string): Promise<ProofOutcome> {
    let proof: IdentityProof;
    try {
      proof = decodeProof(proofText, { allowedHosts: this.o.allowedHosts });
    } catch (e) {
      return refusedBy(e);
    }
    // Checked here too, so a replayed proof is refused even while STS is not asked.
    if (proof.headers[NONCE_HEADER] !== nonce) {
      return { refused: "identity proof refused: it answers another nonce than this agent sent" };
    }
    if (this.#now() < this.#downUntil) {
      return { unreachable: this.#downReason, ...this.#localKey(proof, nonce) };
    }
    let caller: CallerIdentity;
    try {
      caller = await this.o.sts(proof, nonce);
    } catch (e) {
      if (e instanceof UserError && e.exitCode === ExitCode.Remote) {
        return { ...this.#unreachable(e), ...this.#localKey(proof, nonce) };
      }
      return refusedBy(e);
    }
    if (this.#down) this.#log("STS answers identity proofs again");
    this.#down = false;
    this.#downUntil = -Infinity;
    const principal = parsePrincipalArn(caller.arn, caller.userId);
    if (!principal) {
      return {
        refused: `identity proof refused: STS names ${caller.arn} (${caller.userId}), ` +
          "which is not a caller this agent understands",
      };
    }
    return { verified: principal, keyId: proofKeyId(proof) };
  }

  /** The key a proof claims, when it passes everything the agent can check without STS. */
  #localKey(proof: IdentityProof, nonce: string): { keyId?: string } {
    try {
      checkLocally(proof, { nonce, allowedHosts: this.o.allowedHosts });
      return { keyId: proofKeyId(proof) };
    } catch {
      return {};
    }
  }

  #unreachable(e: UserError): { unreachable: string } {
    const s = Math.round((this.o.downForMs ?? STS_DOWN_MS) / 1000);
    this.#downUntil = this.#now() + (this.o.downForMs ?? STS_DOWN_MS);
    this.#downReason = e.message;
    if (!this.#down) {
      this.#log(`${e.message}; stripes are not checked (refused under requireIdentity) for ${s} s`);
    }
    this.#down = true;
    return { unreachable: e.message };
  }
}

function refusedBy(e: unknown): ProofOutcome {
  if (e instanceof UserError) return { refused: e.message };
  throw e;
}

/**
 * What a stripe that sent a PROOF may do: go on as `who`, or be refused. Whether an unchecked
 * one may go on under requireIdentity is the registry's call: it may rejoin its own tunnel.
 */
export function admitProof(
  o: ProofOutcome,
  requireIdentity: boolean,
): { who: StripeIdentity } | { error: WireErrorBody } {
  if ("verified" in o) return { who: { principal: o.verified, keyId: o.keyId } };
  // Without requireIdentity a proof that proves nothing leaves the stripe where one that was
  // never offered is: unverified, with the reason in its WELCOME (a client's clock, a test
  // endpoint the agent does not send to). Refusing it would gain nothing: the same client
  // could simply offer none.
  if ("refused" in o) {
    if (!requireIdentity) return { who: { unverified: o.refused } };
    return { error: { code: "identity-refused", message: o.refused } };
  }
  return { who: { unverified: o.unreachable, ...(o.keyId ? { keyId: o.keyId } : {}) } };
}

/** The refusal of a stripe that could not be checked, under requireIdentity. */
export function uncheckedRefusal(reason: string): WireErrorBody {
  return {
    code: "identity-refused",
    message: `the agent could not reach STS to check this identity, and requires one ` +
      `(${reason}): try again later`,
  };
}
