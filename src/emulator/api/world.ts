/**
 * Shared rules of the emulated account that more than one service applies: lazy instance state
 * transitions, IAM denials, and the ARNs that appear in error messages.
 */

import type { FixtureInstance, Fixtures, InstanceState } from "../fixtures.ts";
import type { SessionRegistry } from "../sessions.ts";

export interface ApiContext {
  registry: SessionRegistry;
  fixtures: Fixtures;
  region: string;
  /** Epoch ms; injectable so tests can step through StartInstances without sleeping. */
  now: () => number;
}

/** EC2's numeric state codes. */
export const STATE_CODES: Record<InstanceState, number> = { pending: 0, running: 16, stopped: 80 };

/**
 * Completes StartInstances transitions that are due. Done on each request instead of with
 * timers so the emulator never holds pending timers (and tests never leak them).
 */
export function settle(f: Fixtures, now: number): void {
  for (const inst of f.instances) {
    if (inst.state === "pending" && (inst.readyAt ?? 0) <= now) {
      inst.state = "running";
      inst.pingStatus = "Online";
      delete inst.readyAt;
    }
  }
}

export function findInstance(f: Fixtures, id: string): FixtureInstance | undefined {
  return f.instances.find((i) => i.id === id);
}

/** True when a `deny:` entry matches the action and (if it names one) one of the targets. */
export function isDenied(f: Fixtures, action: string, targets: readonly string[] = []): boolean {
  return f.deny.some((d) =>
    d.action === action && (d.target === undefined || targets.includes(d.target))
  );
}

/** The message AWS gives for an implicit deny, which names the IAM action the caller lacks. */
export function deniedMessage(
  ctx: ApiContext,
  iamAction: string,
  resource?: string,
): string {
  const on = resource ? ` on resource: ${resource}` : "";
  return `User: ${ctx.fixtures.callerArn} is not authorized to perform: ${iamAction}${on} ` +
    `because no identity-based policy allows the ${iamAction} action`;
}

export function instanceArn(ctx: ApiContext, id: string): string {
  const kind = id.startsWith("mi-") ? "ssm" : "ec2";
  const type = id.startsWith("mi-") ? "managed-instance" : "instance";
  return `arn:aws:${kind}:${ctx.region}:${ctx.fixtures.account}:${type}/${id}`;
}

export function requestId(): string {
  return crypto.randomUUID();
}

/** `*` and `?` wildcards, as EC2 filter values allow. */
export function globMatch(pattern: string, value: string): boolean {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(
    /\?/g,
    ".",
  );
  return new RegExp(`^${re}$`).test(value);
}
