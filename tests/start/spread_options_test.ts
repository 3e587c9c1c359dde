/** `--spread` flags checked before anything touches AWS, and how status shows a spread tunnel. */
import assert from "node:assert/strict";
import { ExitCode, UserError } from "../../src/errors.ts";
import { checkStart, type StartOptions } from "../../src/start/options.ts";
import { stripesText } from "../../src/cli/live.ts";

const base: StartOptions = {
  target: "name:bastion",
  cidr: [],
  stripes: 4,
  name: "t",
  agentPort: 7797,
  spread: true,
};

Deno.test("checkStart: --spread with --wake or --mode agentless is one usage line", () => {
  assert.doesNotThrow(() => checkStart(base));
  for (
    const [over, re] of [
      [{ wake: true }, /^--spread uses the instances that are already online: drop --wake/],
      [{ mode: "agentless" as const }, /^--spread needs ssm-proxy-agent on the instances/],
    ] as const
  ) {
    const e = (() => {
      try {
        checkStart({ ...base, ...over });
      } catch (e) {
        return e;
      }
    })();
    assert.ok(e instanceof UserError);
    assert.equal(e.exitCode, ExitCode.Usage);
    assert.match(e.message, re);
  }
});

Deno.test("stripesText: a spread tunnel shows stripes per instance", () => {
  const inst = (up: number) => ({
    instanceId: "i-1",
    address: "100.64.0.2",
    stripesUp: up,
    stripesOpen: 4,
    bytesIn: 0,
    bytesOut: 0,
  });
  const st = {
    packetsOut: 0,
    bytesOut: 0,
    packetsIn: 0,
    bytesIn: 0,
    dropsOut: 0,
    dropsIn: 0,
    stripesUp: 4,
    rttMs: 0,
    reconnects: 0,
    upBps: 0,
    downBps: 0,
  };
  assert.equal(stripesText(st), "stripes 4");
  assert.equal(stripesText({ ...st, instances: [inst(4), inst(0)] }), "stripes 4+0 on 2 instances");
  assert.equal(
    stripesText({ ...st, stripesAuto: true, stripesMax: 16, instances: [inst(2), inst(2)] }),
    "stripes 2+2 on 2 instances (auto, up to 16)",
  );
});
