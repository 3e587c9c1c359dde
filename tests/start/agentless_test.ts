import assert from "node:assert/strict";
import { ExitCode, UserError } from "../../src/errors.ts";
import { agentlessNotice } from "../../src/start/agentless.ts";
import { parseMode, parseUpstreams } from "../../src/start/options.ts";

Deno.test("--mode takes agent, agentless or auto; anything else is a usage error", () => {
  for (const m of ["agent", "agentless", "auto"]) assert.equal(parseMode(m), m);
  for (const bad of ["", "Agent", "agent-less", "tcp"]) {
    assert.throws(
      () => parseMode(bad),
      (e) => e instanceof UserError && e.exitCode === ExitCode.Usage && /--mode/.test(e.message),
    );
  }
});

Deno.test("the agentless notice says what is carried and how to get the rest", () => {
  const line = agentlessNotice("i-0abc", "nothing listens on port 7797 of the instance");
  assert.doesNotMatch(line, /\n/);
  assert.match(line, /TCP and DNS/);
  assert.match(line, /UDP and ping need the agent/);
  assert.match(line, /ssm-proxy agent install --target i-0abc/);
});

Deno.test("--dns-upstream takes IP addresses only", () => {
  assert.deepEqual(parseUpstreams(["10.0.8.10", "fd00::53"]), ["10.0.8.10", "fd00::53"]);
  assert.throws(
    () => parseUpstreams(["dns.corp.internal"]),
    (e) =>
      e instanceof UserError && e.exitCode === ExitCode.Usage && /--dns-upstream/.test(e.message),
  );
});
