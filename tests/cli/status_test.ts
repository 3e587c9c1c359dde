/** `ssm-proxy status` and the live line: the identity the agent verified and its denials. */
import assert from "node:assert/strict";
import { describe } from "../../src/cli/status.ts";
import { liveText } from "../../src/cli/live.ts";
import type { TunnelState } from "../../src/tunnel/state.ts";

function state(extra: Partial<TunnelState> = {}): TunnelState {
  const now = new Date().toISOString();
  return {
    name: "prod",
    pid: 4242,
    startedAt: now,
    updatedAt: now,
    status: "up",
    mode: "agent",
    target: { instanceId: "i-0abc" },
    interface: "ssmp0",
    address: "100.64.0.2",
    peer: "100.64.0.1",
    cidrs: ["10.0.0.0/16"],
    routes: ["10.0.0.0/16"],
    dns: { kind: "none", items: [] },
    sessions: ["s-1"],
    stats: {
      packetsOut: 10,
      bytesOut: 1000,
      packetsIn: 9,
      bytesIn: 900,
      dropsOut: 0,
      dropsIn: 0,
      stripesUp: 1,
      rttMs: 20,
      reconnects: 0,
      upBps: 0,
      downBps: 0,
    },
    ...extra,
  };
}

const lineOf = (text: string, label: string) =>
  text.split("\n").find((l) => l.startsWith(`  ${label} `));

Deno.test("status: the identity the agent verified, or why not", () => {
  const arn = "arn:aws:iam::210987654321:user/jane";
  assert.equal(lineOf(describe(state({ identity: arn })), "identity"), `  identity   ${arn}`);
  assert.equal(
    lineOf(describe(state({ identity: "agent does not check identities" })), "identity"),
    "  identity   agent does not check identities",
  );
  // Agentless, or a state file from before identities: no line rather than a guess.
  assert.equal(lineOf(describe(state()), "identity"), undefined);
});

Deno.test("status: denials by the agent's policy on their own line, not twice", () => {
  const s = state();
  s.stats = { ...s.stats!, denied: 3, deniedLast: "10.0.9.5:5432/tcp" };
  const text = describe(s);
  assert.equal(
    lineOf(text, "policy"),
    "  policy     denied by the agent's policy: 3 (last: 10.0.9.5:5432/tcp)",
  );
  assert.equal(text.split("denied by the agent's policy").length, 2, text);
  assert.equal(lineOf(describe(state()), "policy"), undefined);
});

Deno.test("live line: shows denials only when there are some", () => {
  const s = state();
  assert.doesNotMatch(liveText(s), /denied/);
  s.stats = { ...s.stats!, denied: 1, deniedLast: "10.0.9.5:5432/tcp" };
  assert.match(liveText(s), /denied by the agent's policy: 1 \(last: 10\.0\.9\.5:5432\/tcp\)/);
});
