/**
 * One HELLO to the ssm-proxy-agent on an instance, without a tunnel: what it is and what it
 * makes of this client (version, MTU, resolver, the identity it verified).
 */
import type { AwsOptions } from "../aws/config.ts";
import type { Welcome } from "../tunnel/wire.ts";

/**
 * Opens a Port session to the agent port, says HELLO (proving who we are if asked), returns the
 * WELCOME, ends the session: `doctor`'s agent check and `list-instances --agents`.
 */
export async function helloAgent(
  aws: AwsOptions,
  instanceId: string,
  agentPort: number,
): Promise<Welcome> {
  const ssm = await import("../aws/ssm.ts");
  const { PortSession } = await import("../ssm/session.ts");
  const { Stripe } = await import("../tunnel/stripe.ts");
  const { FEATURE_IDENTITY } = await import("../tunnel/wire.ts");
  const { newHello } = await import("../tunnel/connect.ts");
  const { identityProver } = await import("./prover.ts");
  const { VERSION } = await import("../version.ts");
  const grant = await ssm.startSession(aws, {
    target: instanceId,
    documentName: "AWS-StartPortForwardingSession",
    parameters: { portNumber: [String(agentPort)] },
    reason: "ssm-proxy doctor",
  });
  let session;
  try {
    session = await PortSession.open({
      grant,
      api: ssm.sessionApi(aws),
      healForMs: 0,
    });
  } catch (e) {
    await ssm.terminateSession(aws, grant.sessionId).catch(() => {});
    throw e;
  }
  const stripe = new Stripe(0, session, agentPort);
  try {
    return await stripe.handshake({
      ...newHello(1, 1400),
      // Offered like start does, so an agent that requires an identity answers, and says whose.
      features: [FEATURE_IDENTITY],
      client: `ssm-proxy/${VERSION} doctor`,
    }, { prover: identityProver(aws), where: instanceId });
  } finally {
    stripe.close();
    await session.terminate().catch(() => {});
  }
}
