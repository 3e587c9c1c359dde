import assert from "node:assert/strict";
import { connectOrInstall, type OfferOptions } from "../../src/cli/agent_offer.ts";
import { UserError } from "../../src/errors.ts";
import { AgentUnavailable } from "../../src/tunnel/stripe.ts";

const target = { instanceId: "i-0123456789abcdef0" };

function world(failures: ("missing" | "old")[], o: Partial<OfferOptions> = {}) {
  const calls: string[] = [];
  const lines: string[] = [];
  let n = 0;
  const connect = () => {
    calls.push("connect");
    const f = failures[n++];
    if (f) {
      return Promise.reject(
        new AgentUnavailable(f, `agent ${f} (ssm-proxy agent install, or start --install-agent)`),
      );
    }
    return Promise.resolve("tunnel");
  };
  const opts: OfferOptions = {
    aws: {},
    target,
    progress: (l) => lines.push(l),
    installer: (force) => {
      calls.push(force ? "install --force" : "install");
      return Promise.resolve();
    },
    startingMs: 3000,
    ...o,
  };
  return { calls, lines, run: () => connectOrInstall(connect, opts) };
}

Deno.test("start without an agent and nobody to ask: one line with the fix, nothing installed", async () => {
  const w = world(["missing"]);
  await assert.rejects(w.run(), (e: Error) => {
    assert.ok(e instanceof UserError);
    assert.equal(
      e.message,
      "agent missing; fix: ssm-proxy agent install --target i-0123456789abcdef0, or start again with --install-agent",
    );
    return true;
  });
  assert.deepEqual(w.calls, ["connect"]);
});

Deno.test("start --install-agent installs, then waits for the agent to listen", async () => {
  const w = world(["missing", "missing"], { install: true });
  assert.equal(await w.run(), "tunnel");
  assert.deepEqual(w.calls, ["connect", "install", "connect", "connect"]);
});

Deno.test("an old agent is updated (forced) when the user says yes; no means no", async () => {
  const asked: string[] = [];
  const yes = world(["old"], { ask: (q) => (asked.push(q), true) });
  assert.equal(await yes.run(), "tunnel");
  assert.deepEqual(yes.calls, ["connect", "install --force", "connect"]);
  assert.match(asked[0], /update ssm-proxy-agent on i-0123456789abcdef0 now\?/);
  assert.match(yes.lines[0], /agent old/);

  const no = world(["missing"], { ask: () => false });
  await assert.rejects(no.run(), /fix: ssm-proxy agent install/);
  assert.deepEqual(no.calls, ["connect"]);
});

Deno.test("other failures are not an install prompt", async () => {
  const w = world([], { install: true });
  const boom = new UserError("denied");
  await assert.rejects(
    connectOrInstall(() => Promise.reject(boom), {
      aws: {},
      target,
      install: true,
      progress: () => {},
      installer: () => Promise.reject(new Error("must not install")),
    }),
    /denied/,
  );
  assert.deepEqual(w.calls, []);
});
