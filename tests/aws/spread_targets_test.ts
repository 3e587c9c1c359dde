/**
 * `--spread` target resolution: every running match online in Systems Manager, ordered by id;
 * matches not online are left out and said; without --spread the "matches several" message
 * names --spread (for `start` only).
 */
import assert from "node:assert/strict";
import { ExitCode, UserError } from "../../src/errors.ts";
import { resolveTarget, resolveTargets } from "../../src/aws/targets.ts";
import { withEmulator, WORLD } from "./harness_test.ts";

const FLEET = `
instances:
  - { id: i-0000000000000000b, name: bastion, privateIp: 10.99.0.11 }
  - { id: i-0000000000000000a, name: bastion, privateIp: 10.99.0.10 }
  - { id: i-0000000000000000c, name: bastion, pingStatus: ConnectionLost, privateIp: 10.99.0.12 }
  - { id: i-0000000000000000d, name: bastion, state: stopped, privateIp: 10.99.0.13 }
  - { id: i-0000000000000000e, name: gone, pingStatus: ConnectionLost, privateIp: 10.99.0.14 }
  - { id: i-0000000000000000f, name: gone, pingStatus: ConnectionLost, privateIp: 10.99.0.15 }
`;

async function withFleet(fn: () => Promise<void>): Promise<void> {
  const file = await Deno.makeTempFile({ suffix: ".yaml" });
  try {
    await Deno.writeTextFile(file, FLEET);
    await withEmulator(file, fn);
  } finally {
    await Deno.remove(file);
  }
}

Deno.test("resolveTargets: every online match, ordered by id; the rest said and left out", async () => {
  await withFleet(async () => {
    const notes: string[] = [];
    const got = await resolveTargets({}, "name:bastion", (l) => notes.push(l));
    assert.deepEqual(got, [
      { instanceId: "i-0000000000000000a", name: "bastion" },
      { instanceId: "i-0000000000000000b", name: "bastion" },
    ]);
    assert.equal(notes.length, 1);
    assert.match(notes[0], /left out \(not online in Systems Manager\): i-0000000000000000c/);
    // None online: resolveTarget's words for the first.
    const e = await resolveTargets({}, "name:gone").then(() => undefined, (e) => e);
    assert.ok(e instanceof UserError);
    assert.equal(e.exitCode, ExitCode.Target);
    assert.match(e.message, /^instance i-0000000000000000e is not online in Systems Manager/);
  });
});

Deno.test("resolveTargets: one match or an id is a one-instance list", async () => {
  await withEmulator(WORLD, async () => {
    assert.deepEqual(await resolveTargets({}, "name:bastion"), [
      { instanceId: "i-0123456789abcdef0", name: "bastion" },
    ]);
    assert.deepEqual(await resolveTargets({}, "i-0123456789abcdef0"), [
      { instanceId: "i-0123456789abcdef0" },
    ]);
    assert.equal((await resolveTargets({}, "name:web")).length, 2);
  });
});

Deno.test("resolveTarget: several matches mention --spread when the command has it", async () => {
  await withEmulator(WORLD, async () => {
    const hinted = await resolveTarget({}, "name:web", { spreadHint: true }).catch((e) => e);
    assert.match(
      hinted.message,
      /^name:web matches 2 running instances: .*; pass one instance id as the target, or add --spread to put stripes on all of them$/,
    );
    const plain = await resolveTarget({}, "name:web").catch((e) => e);
    assert.match(plain.message, /pass one instance id as the target$/);
  });
});
