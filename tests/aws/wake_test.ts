import assert from "node:assert/strict";
import { ExitCode, UserError } from "../../src/errors.ts";
import { resolveTargetWaking, wakeInstance } from "../../src/aws/wake.ts";
import { withEmulator, WORLD } from "./harness_test.ts";

const SLEEPY = "i-0bbbbbbbbbbbbbbb1";
const FAST = { pollMs: 5, runningTimeoutMs: 2000, onlineTimeoutMs: 2000 };

async function fails(p: Promise<unknown>, message: RegExp, code: number = ExitCode.Target) {
  const e = await p.then(() => undefined, (e) => e);
  assert.ok(e instanceof UserError, `expected a UserError, got ${e}`);
  assert.match(e.message, message);
  assert.equal(e.exitCode, code, e.message);
  assert.ok(!e.message.includes("\n"), "one line");
}

Deno.test("wakeInstance: a stopped instance is started and waited for until online", async () => {
  await withEmulator(WORLD, async (emu) => {
    const lines: string[] = [];
    // The emulator's clock moves only when told: past StartInstances' delay once we wait.
    const r = await wakeInstance({}, SLEEPY, (l) => {
      lines.push(l);
      if (l.startsWith("waiting")) emu.advance(1000);
    }, FAST);
    assert.deepEqual(r, { instanceId: SLEEPY, previousState: "stopped", started: true });
    assert.deepEqual(lines, [
      `starting ${SLEEPY} (stopped → pending)`,
      `waiting for ${SLEEPY} to run (pending)`,
      `${SLEEPY} is online`,
    ]);
    assert.equal(emu.seen.filter((s) => s.op === "Action=StartInstances").length, 1);
    assert.equal(emu.fixtures.instances.find((i) => i.id === SLEEPY)?.state, "running");
  });
});

Deno.test("wakeInstance: a running, online instance needs no StartInstances", async () => {
  await withEmulator(WORLD, async (emu) => {
    const lines: string[] = [];
    const r = await wakeInstance({}, "i-0123456789abcdef0", (l) => lines.push(l), FAST);
    assert.deepEqual(r, {
      instanceId: "i-0123456789abcdef0",
      previousState: "running",
      started: false,
    });
    assert.deepEqual(lines, []);
    assert.ok(!emu.seen.some((s) => s.op === "Action=StartInstances"));
  });
});

Deno.test("wakeInstance: timeouts are one clear line each", async () => {
  await withEmulator(WORLD, async () => {
    // The clock never moves: the instance stays pending.
    await fails(
      wakeInstance({}, SLEEPY, () => {}, { pollMs: 5, runningTimeoutMs: 50 }),
      /i-0bbbbbbbbbbbbbbb1 did not reach "running" within 0.1 s \(still pending\)/,
    );
  });
  await withEmulator(WORLD, async () => {
    const lines: string[] = [];
    await fails(
      wakeInstance({}, "i-0ccccccccccccccc1", (l) => lines.push(l), {
        pollMs: 5,
        onlineTimeoutMs: 50,
      }),
      /runs but did not come online in Systems Manager within 0.1 s \(PingStatus ConnectionLost\): .*AmazonSSMManagedInstanceCore/,
    );
    assert.deepEqual(lines, ["waiting for Systems Manager (ConnectionLost)"]);
  });
});

Deno.test("wakeInstance: unknown, managed and denied instances", async () => {
  const denied = await Deno.makeTempFile({ suffix: ".yaml" });
  await Deno.writeTextFile(
    denied,
    `instances:
  - { id: i-0fffffffffffffff1, name: cold, state: stopped }
deny:
  - { action: ec2:StartInstances, target: i-0fffffffffffffff1 }
`,
  );
  try {
    await withEmulator(WORLD, async () => {
      await fails(wakeInstance({}, "i-0999999999999999f"), /does not exist in EC2/);
      await fails(
        wakeInstance({}, "mi-0123456789abcdef0"),
        /^mi-0123456789abcdef0 is a managed \(non-EC2\) instance that AWS cannot start: --wake only starts EC2 instances; drop --wake for this target$/,
        ExitCode.Usage,
      );
    });
    await withEmulator(denied, async () => {
      await fails(
        wakeInstance({}, "i-0fffffffffffffff1", () => {}, FAST),
        /access denied: .* may not call ec2:StartInstances/,
        ExitCode.Auth,
      );
    });
  } finally {
    await Deno.remove(denied);
  }
});

Deno.test("resolveTargetWaking: a stopped target by name is woken, then resolved", async () => {
  await withEmulator(WORLD, async (emu) => {
    const lines: string[] = [];
    const t = await resolveTargetWaking({}, "name:sleepy", (l) => {
      lines.push(l);
      if (l.startsWith("waiting")) emu.advance(1000);
    }, FAST);
    assert.deepEqual(t, { instanceId: SLEEPY, name: "sleepy" });
    assert.equal(lines[0], `starting ${SLEEPY} (stopped → pending)`);
  });
  await withEmulator(WORLD, async (emu) => {
    const t = await resolveTargetWaking({}, SLEEPY, (l) => {
      if (l.startsWith("waiting")) emu.advance(1000);
    }, FAST);
    assert.deepEqual(t, { instanceId: SLEEPY });
  });
});

Deno.test("resolveTargetWaking: running targets resolve as before; ambiguity is refused", async () => {
  await withEmulator(WORLD, async (emu) => {
    assert.deepEqual(await resolveTargetWaking({}, "name:bastion", () => {}, FAST), {
      instanceId: "i-0123456789abcdef0",
      name: "bastion",
    });
    assert.ok(!emu.seen.some((s) => s.op === "Action=StartInstances"));
    await fails(resolveTargetWaking({}, "name:web", () => {}, FAST), /matches 2 running/);
    await fails(resolveTargetWaking({}, "name:nosuch", () => {}, FAST), /no instance matches/);
  });
});

Deno.test("resolveTargetWaking: a managed (mi-) target is refused in one line, by id or name", async () => {
  await withEmulator(WORLD, async (emu) => {
    const lines: string[] = [];
    for (const spec of ["mi-0123456789abcdef0", "name:onprem"]) {
      await fails(
        resolveTargetWaking({}, spec, (l) => lines.push(l), FAST),
        /^mi-0123456789abcdef0 is a managed \(non-EC2\) instance that AWS cannot start: --wake/,
        ExitCode.Usage,
      );
    }
    assert.deepEqual(lines, []);
    assert.ok(!emu.seen.some((s) => s.op === "Action=StartInstances"));
    // Nor is an offline one "woken": it is refused the same way.
    emu.fixtures.instances.find((i) => i.id === "mi-0123456789abcdef0")!.pingStatus =
      "ConnectionLost";
    await fails(
      resolveTargetWaking({}, "name:onprem", () => {}, FAST),
      /managed \(non-EC2\) instance that AWS cannot start/,
      ExitCode.Usage,
    );
  });
});
