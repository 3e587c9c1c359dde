/**
 * start's planning child (src/start/plan_child.ts, plan_remote.ts): the real `ssm-proxy __plan`
 * process against the emulator's EC2, SSM and Route 53, its answers compared with the same calls
 * made in this process; and the module graph that keeps client-ec2 and client-route-53 out of
 * the tunnel process.
 */
import assert from "node:assert/strict";
import { vpcResolver } from "../../src/aws/ec2.ts";
import { resolveTarget, resolveTargets } from "../../src/aws/targets.ts";
import { discover } from "../../src/discover/discover.ts";
import { ExitCode, UserError } from "../../src/errors.ts";
import { planInChild, vpcResolverInChild } from "../../src/start/plan_remote.ts";
import { withEmulator, WORLD } from "../aws/harness_test.ts";

const DISCOVERY_WORLD = new URL("../fixtures/discovery_world.yaml", import.meta.url).pathname;
const BOTH = { routes: true, dns: true };

function plan(target: string, o: { spread?: boolean; wake?: boolean; routes?: boolean } = {}) {
  const progress: string[] = [];
  const child = planInChild({
    kind: "plan",
    aws: {},
    target,
    spread: o.spread === true,
    wake: o.wake === true,
    discover: { routes: o.routes ?? true, dns: true },
  }, { progress: (l) => progress.push(l) });
  return { child, progress };
}

/** What `fn` throws, as start would print it. */
async function failure(p: Promise<unknown>): Promise<{ message: string; exitCode: number }> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof UserError, `not a UserError: ${(e as Error)?.stack ?? e}`);
    return { message: e.message, exitCode: e.exitCode };
  }
  assert.fail("no error");
}

Deno.test("plan child: finds the target and discovers its VPC, as the calls here would", async () => {
  await withEmulator(DISCOVERY_WORLD, async () => {
    const { child, progress } = plan("name:app");
    const at = await child.located;
    const found = await child.discovered;
    await child.exited;
    const here = await resolveTarget({}, "name:app");
    assert.deepEqual(at, { target: here, region: "eu-central-1" });
    assert.deepEqual(found, await discover({}, { ...here, region: "eu-central-1" }, BOTH));
    assert.deepEqual(found?.ranges.map((r) => r.cidr).slice(0, 2), [
      "10.20.0.0/16",
      "10.21.0.0/16",
    ]);
    assert.deepEqual(progress, ["resolving name:app"]);
  });
});

Deno.test("plan child: --spread gives every online match, the first one primary", async () => {
  await withEmulator(WORLD, async () => {
    const { child, progress } = plan("tag:Purpose=web", { spread: true });
    const at = await child.located;
    await child.discovered;
    await child.exited;
    const here = await resolveTargets({}, "tag:Purpose=web");
    assert.equal(here.length, 2);
    assert.deepEqual(at.target, here[0]);
    assert.deepEqual(at.spread, here);
    assert.deepEqual(progress, ["resolving tag:Purpose=web, every online instance it matches"]);
  });
});

Deno.test("plan child: nothing to discover answers undefined without asking EC2", async () => {
  await withEmulator(WORLD, async (emu) => {
    const child = planInChild({
      kind: "plan",
      aws: {},
      target: "i-0123456789abcdef0",
      spread: false,
      wake: false,
      discover: { routes: false, dns: false },
    }, { progress: () => {} });
    assert.deepEqual(await child.located, {
      target: { instanceId: "i-0123456789abcdef0" },
      region: "eu-central-1",
    });
    assert.equal(await child.discovered, undefined);
    await child.exited;
    assert.ok(!emu.seen.some((r) => r.op.startsWith("Action=")), "an EC2 call was made");
  });
});

Deno.test("plan child: a denied DescribeInstances is the same one line and exit code here", async () => {
  await withEmulator(WORLD, async (emu) => {
    emu.fixtures.deny.push({ action: "DescribeInstances" });
    // Resolving a name needs it: the target step fails.
    const { child } = plan("name:bastion");
    const there = await failure(child.located);
    await failure(child.discovered);
    await child.exited;
    assert.deepEqual(there, await failure(resolveTarget({}, "name:bastion")));
    assert.equal(there.exitCode, ExitCode.Auth);
    assert.match(there.message, /ec2:DescribeInstances/);

    // An id needs no EC2 to resolve: discovery is what fails, with its own words.
    const byId = plan("i-0123456789abcdef0");
    const at = await byId.child.located;
    const lost = await failure(byId.child.discovered);
    await byId.child.exited;
    const here = await failure(discover({}, { ...at.target, region: at.region }, BOTH));
    assert.deepEqual(lost, here);
    assert.match(lost.message, /^ec2:DescribeInstances denied: cannot discover what i-0123/);
  });
});

Deno.test("plan child: the VPC resolver, or the reason there is none, as ec2.ts says here", async () => {
  await withEmulator(WORLD, async (emu) => {
    const id = "i-0123456789abcdef0";
    assert.equal(await vpcResolverInChild({}, id), await vpcResolver({}, id));
    assert.equal(await vpcResolverInChild({}, id), "10.99.0.2");
    assert.equal(await vpcResolverInChild({}, "mi-0123456789abcdef0"), undefined);
    emu.fixtures.deny.push({ action: "DescribeVpcs" });
    assert.deepEqual(
      await failure(vpcResolverInChild({}, id)),
      await failure(vpcResolver({}, id)),
    );
  });
});

Deno.test("plan child: a stop signal kills it mid-wait", async () => {
  await withEmulator(WORLD, async () => {
    // --wake on a stopped instance: the emulator's clock stands still, so it never runs.
    const stop = new AbortController();
    const progress: string[] = [];
    const child = planInChild({
      kind: "plan",
      aws: {},
      target: "name:sleepy",
      spread: false,
      wake: true,
      discover: BOTH,
    }, {
      progress: (l) => {
        progress.push(l);
        if (l.startsWith("waiting for")) stop.abort(new Error("stopped (SIGINT)"));
      },
      signal: stop.signal,
    });
    await assert.rejects(child.located, /stopped \(SIGINT\)/);
    await assert.rejects(child.discovered, /stopped \(SIGINT\)/);
    const t0 = performance.now();
    await child.exited;
    assert.ok(performance.now() - t0 < 1000);
    assert.match(progress.join("\n"), /starting i-0bbbbbbbbbbbbbbb1 \(stopped → pending\)/);
  });
});

/**
 * Every module `root` can load, following code imports (static and dynamic) but not type-only
 * ones, from `deno info`'s graph.
 */
async function reachable(root: string): Promise<Set<string>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL(root, import.meta.url).pathname],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const graph = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    roots: string[];
    redirects: Record<string, string>;
    modules: { specifier: string; dependencies?: { code?: { specifier: string } }[] }[];
  };
  const modules = new Map(graph.modules.map((m) => [m.specifier, m]));
  const seen = new Set<string>();
  const todo = [...graph.roots];
  while (todo.length) {
    const s = todo.pop()!;
    const at = graph.redirects[s] ?? s;
    if (seen.has(at)) continue;
    seen.add(at);
    for (const d of modules.get(at)?.dependencies ?? []) if (d.code) todo.push(d.code.specifier);
  }
  return seen;
}

const AWAY =
  /client-ec2|client-route-53|\/src\/aws\/(ec2|route53)\.ts$|\/src\/discover\/discover\.ts$/;

Deno.test("plan child: nothing the tunnel process runs can load the EC2 or Route 53 client", async () => {
  for (const root of ["../../src/start/start.ts", "../../src/start/serve.ts"]) {
    const hits = [...await reachable(root)].filter((s) => AWAY.test(s));
    assert.deepEqual(hits, [], `${root} reaches them`);
  }
  // The walk finds them where they are: the child.
  const child = [...await reachable("../../src/start/plan_child.ts")].filter((s) => AWAY.test(s));
  assert.ok(child.some((s) => s.includes("client-ec2")), child.join(", "));
  assert.ok(child.some((s) => s.includes("client-route-53")), child.join(", "));
});
