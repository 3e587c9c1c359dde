/**
 * Opening a tunnel's first stripes: the HELLO every stripe of the tunnel says, stripe 0 first
 * (the agent allocates the address on the first HELLO of a tunnel id), then the rest at once;
 * spread over several instances, that for each of them at once.
 */
import { ExitCode, UserError } from "../errors.ts";
import type { PortSession } from "../ssm/session.ts";
import { VERSION } from "../version.ts";
import { ipv4Number } from "./nat.ts";
import type { Prover } from "./identity.ts";
import type { Member } from "./spread.ts";
import { type HandshakeOptions, Stripe } from "./stripe.ts";
import {
  FEATURE_IDENTITY,
  FEATURE_IPV6,
  FEATURE_LOAD,
  type Hello,
  MAGIC,
  PROTOCOL_VERSION,
  type Welcome,
} from "./wire.ts";

/**
 * A HELLO for a new tunnel (random id) of at most `stripes` stripes; `identity`: the client can
 * prove its IAM identity (it has a prover), so an agent that checks identities may challenge it.
 */
export function newHello(stripes: number, mtu: number, identity = false): Omit<Hello, "stripe"> {
  const id = Array.from(
    crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  return {
    magic: MAGIC,
    versions: [PROTOCOL_VERSION],
    tunnelId: id,
    stripes,
    mtu,
    features: identity
      ? [FEATURE_LOAD, FEATURE_IPV6, FEATURE_IDENTITY]
      : [FEATURE_LOAD, FEATURE_IPV6],
    client: `ssm-proxy/${VERSION}`,
  };
}

export interface StripeOpener {
  openSession(stripe: number): Promise<PortSession>;
  agentPort: number;
  /** Proof of identity when the agent challenges, and the instance's name for messages. */
  handshake?: HandshakeOptions;
}

/** Stripes 0..count-1, all with the same address; any failure ends every session opened. */
export async function openStripes(
  o: StripeOpener,
  hello: Omit<Hello, "stripe">,
  count: number,
): Promise<{ welcome: Welcome; stripes: Stripe[] }> {
  const first = new Stripe(0, await o.openSession(0), o.agentPort);
  let welcome: Welcome;
  try {
    welcome = await first.handshake(hello, o.handshake);
  } catch (e) {
    await first.session.terminate().catch(() => {});
    throw e;
  }
  const stripes = [first];
  const rest = await Promise.allSettled(
    Array.from({ length: count - 1 }, async (_, i) => {
      const s = new Stripe(i + 1, await o.openSession(i + 1), o.agentPort);
      stripes.push(s);
      const w = await s.handshake(hello, o.handshake);
      if (w.address !== welcome.address) {
        throw new UserError(
          `stripe ${i + 1} got address ${w.address}, not ${welcome.address}`,
          ExitCode.Remote,
        );
      }
    }),
  );
  const failed = rest.find((r) => r.status === "rejected") as PromiseRejectedResult | undefined;
  if (failed) {
    await Promise.all(stripes.map((s) => s.session.terminate().catch(() => {})));
    throw failed.reason;
  }
  stripes.sort((a, b) => a.index - b.index);
  return { welcome, stripes };
}

/** One instance's first stripes, opened. */
export interface Opened {
  member: Member;
  stripes: Stripe[];
}

export interface MembersOpener {
  openSession(stripe: number, instance: number): Promise<PortSession>;
  agentPort: number;
  mtu: number;
  stripes: number | "auto";
  maxStripes?: number;
  /** Instance ids to spread over; absent: one instance. */
  instances?: string[];
  /** The one instance's id, for messages (spread: `instances` name them). */
  target?: string;
  /** Signs identity proofs when an agent challenges; absent, the HELLO offers none. */
  prover?: Prover;
  log?: (line: string) => void;
}

/**
 * The first stripes of each instance (one with `auto`), all at once. Spread: an instance that
 * fails is left out (said in the log); the first failure is thrown when none connects.
 */
export async function openMembers(o: MembersOpener, defaultMax: number): Promise<Opened[]> {
  const auto = o.stripes === "auto";
  const initial = auto ? 1 : o.stripes as number;
  // The most there may be: agents check every HELLO of a tunnel says the same count.
  const max = auto ? o.maxStripes ?? defaultMax : initial;
  const labels = o.instances ?? [""];
  const results = await Promise.allSettled(labels.map(async (label, slot): Promise<Opened> => {
    // Its own tunnel id per instance: two instances may even share an agent.
    const hello = newHello(max, o.mtu, o.prover !== undefined);
    const opener = {
      agentPort: o.agentPort,
      openSession: (i: number) => o.openSession(i, slot),
      handshake: handshakeFor(o, label),
    };
    const { welcome, stripes } = await openStripes(opener, hello, initial);
    const address = ipv4Number(welcome.address);
    return { member: { slot, label, hello, welcome, address, max }, stripes };
  }));
  const opened: Opened[] = [];
  let failure: unknown;
  for (const r of results) {
    if (r.status === "fulfilled") opened.push(r.value);
    else failure ??= r.reason;
  }
  if (opened.length === 0) throw failure;
  for (const [slot, r] of results.entries()) {
    if (r.status === "rejected") {
      o.log?.(`${labels[slot]}: ${(r.reason as Error).message}; spreading over the others`);
    }
  }
  return opened;
}

/** How a stripe of the instance labelled `label` ("" when not spread) proves its identity. */
export function handshakeFor(
  o: { prover?: Prover; target?: string },
  label: string,
): HandshakeOptions {
  const where = label || o.target;
  return { ...(o.prover ? { prover: o.prover } : {}), ...(where ? { where } : {}) };
}
