/**
 * The prover an agent-mode tunnel answers identity challenges with (src/tunnel/identity.ts):
 * a presigned GetCallerIdentity bound to each nonce (src/aws/identity_proof.ts). Credentials
 * and region are settled once and kept: the SDK's provider chain caches what it resolved and
 * refreshes it only when it is about to expire, so after the first challenge a proof is a local
 * signature, however many stripes and re-joins ask. Nothing loads until an agent challenges.
 */
import type { AwsOptions } from "../aws/config.ts";
import type { StaticCredentials } from "../eks/token.ts";
import type { Prover } from "../tunnel/identity.ts";

/** What the prover needs: credentials (cached and refreshed by the source) and the region. */
export interface ProverSource {
  credentials(): Promise<StaticCredentials>;
  region(): Promise<string>;
}

/** The SDK's default chain for `aws` (profile, SSO, env…), one provider instance for all calls. */
export function sdkSource(aws: AwsOptions): ProverSource {
  let provider: Promise<() => Promise<StaticCredentials>> | undefined;
  let region: Promise<string> | undefined;
  return {
    async credentials() {
      provider ??= (async () => {
        const { fromNodeProviderChain } = await import("@aws-sdk/credential-providers");
        return fromNodeProviderChain(aws.profile ? { profile: aws.profile } : {});
      })();
      const get = await provider;
      try {
        const c = await get();
        return {
          accessKeyId: c.accessKeyId,
          secretAccessKey: c.secretAccessKey,
          ...(c.sessionToken ? { sessionToken: c.sessionToken } : {}),
        };
      } catch (e) {
        const { toUserError } = await import("../aws/errors.ts");
        throw toUserError(e, { service: "sts", action: "resolving credentials", ...aws });
      }
    },
    region() {
      // Settled once; a failure is not kept, so the next challenge asks again.
      region ??= (async () => {
        const [{ resolvedRegion }, { missingRegion }] = await Promise.all([
          import("../aws/region.ts"),
          import("../aws/config.ts"),
        ]);
        const r = (await resolvedRegion(aws))?.region;
        if (!r) throw missingRegion(aws);
        return r;
      })();
      region.catch(() => (region = undefined));
      return region;
    },
  };
}

/** Signs one proof per nonce with the source's credentials; the text a PROOF frame carries. */
export function identityProver(aws: AwsOptions, source: ProverSource = sdkSource(aws)): Prover {
  return async (nonce) => {
    const [{ buildProof, encodeProof }, credentials, region] = await Promise.all([
      import("../aws/identity_proof.ts"),
      source.credentials(),
      source.region(),
    ]);
    return encodeProof(await buildProof({ aws: { ...aws, region }, nonce, credentials }));
  };
}
