import assert from "node:assert/strict";
import { startEmulator } from "../../src/emulator/server.ts";
import { pickTarget } from "../../src/cli/picker.ts";
import { UserError } from "../../src/errors.ts";
import { awsEnv, withEnv } from "../support/aws_env.ts";

const WORLD = new URL("../fixtures/emulator_world.yaml", import.meta.url).pathname;

function io(answers: (string | null)[], interactive = true) {
  const printed: string[] = [];
  const asked: string[] = [];
  return {
    printed,
    asked,
    io: {
      interactive,
      print: (t: string) => printed.push(t),
      ask: (q: string) => (asked.push(q), answers.shift() ?? null),
    },
  };
}

async function withWorld(fn: () => Promise<void>) {
  const emu = await startEmulator({ port: 0, pacing: false, fixturesPath: WORLD });
  try {
    await withEnv(awsEnv(emu.url), fn);
  } finally {
    await emu.close();
  }
}

Deno.test("picker: lists only online Linux targets, numbered, and returns the one picked", async () => {
  await withWorld(async () => {
    const t = io(["0", "x", "2"]);
    const id = await pickTarget({}, {}, t.io);
    const table = t.printed.join("\n");
    assert.match(table, /^ {4}INSTANCE\s+NAME/m);
    assert.match(table, /^ 1\) \S+/m);
    for (const gone of ["sleepy", "lost", "windows"]) assert.doesNotMatch(table, new RegExp(gone));
    assert.match(table, /bastion/);
    assert.equal(t.asked.length, 3, "bad answers ask again");
    assert.match(t.printed.at(-1)!, /pick a number from 1 to \d+/);
    const second = t.printed.find((l) => l.startsWith(" 2) "))!;
    assert.ok(second.includes(id), `${second} / ${id}`);
  });
});

Deno.test("picker: --wake also offers stopped instances; end of input and no terminal are usage errors", async () => {
  await withWorld(async () => {
    const w = io([null]);
    await assert.rejects(pickTarget({}, { wake: true }, w.io), /no instance picked/);
    assert.match(w.printed.join("\n"), /sleepy/);
    const none = io([], false);
    await assert.rejects(pickTarget({}, {}, none.io), (e: Error) => {
      assert.ok(e instanceof UserError);
      assert.equal(e.exitCode, 2);
      assert.match(e.message, /--target is required/);
      return true;
    });
    assert.deepEqual(none.asked, []);
  });
});
