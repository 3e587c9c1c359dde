/**
 * PolicySource against the emulator's Parameter Store over HTTP, through the real SDK with its
 * default credential chain and loader (agent/policy_source.ts): rules appear, change, break (the
 * last good ones stay, the problem is logged once), mend, vanish; access denied; a failed start.
 */
import assert from "node:assert/strict";
import { PolicySource } from "../../agent/policy_source.ts";
import { formatDest, type PolicyRule } from "../../agent/rules.ts";
import { deleteParameter, putParameter } from "../../src/aws/parameters.ts";
import { type Emulator, withEmulator } from "../aws/harness_test.ts";

const PATH = "/ssm-proxy/policy";
const REFRESH_MS = 40;

const put = (name: string, value: string) =>
  putParameter({}, { name: `${PATH}/${name}`, value, overwrite: true });

const allows = (rules: PolicyRule[]) => rules.map((r) => r.allow.map(formatDest).join(" "));

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A started source with everything it said and handed on, closed afterwards. */
async function withSource(
  emu: Emulator,
  fn: (s: {
    source: PolicySource;
    calls: PolicyRule[][];
    logs: string[];
    /** Waits until the source has read the path `n` more times. */
    reads: (n: number) => Promise<void>;
  }) => Promise<void> | void,
): Promise<void> {
  const calls: PolicyRule[][] = [];
  const logs: string[] = [];
  let clock = Date.parse("2030-01-01T00:00:00Z");
  const source = new PolicySource({
    path: PATH,
    refreshMs: REFRESH_MS,
    log: (l) => logs.push(l),
    now: () => (clock += 1000),
  });
  const count = () => emu.seen.filter((r) => r.op.endsWith("GetParametersByPath")).length;
  const reads = (n: number) => {
    const want = count() + n;
    return waitFor(`${n} reads`, () => count() >= want);
  };
  try {
    await source.start((rules) => calls.push(rules));
    await fn({ source, calls, logs, reads });
  } finally {
    await source.close();
  }
}

Deno.test("policy source: rules appear, change, break, mend and vanish", async () => {
  await withEmulator(undefined, async (emu) => {
    await put("a-base", "rules:\n  - allow: [10.0.1.0/24]\n");
    await withSource(emu, async ({ source, calls, logs, reads }) => {
      assert.deepEqual(calls.map(allows), [["10.0.1.0/24"]], "handed on at start");
      const first = source.status();
      assert.deepEqual(first, {
        path: PATH,
        parameters: 1,
        rules: 1,
        loadedAt: first.loadedAt,
        lastCheckedAt: first.loadedAt,
      });
      assert.match(first.loadedAt!, /^2030-01-01T00:00:\d\d\.000Z$/);
      assert.deepEqual(logs, [`policy from Parameter Store ${PATH}: 1 rule from 1 parameter`]);

      // Re-reading the same rules hands nothing on and logs nothing.
      await reads(2);
      assert.equal(calls.length, 1);
      assert.equal(logs.length, 1);

      // A second parameter, after the first by name.
      await put("b-dev", "rules:\n  - principals: {roles: [Dev]}\n    allow: [10.0.2.0/24]\n");
      await waitFor("the new rules", () => calls.length === 2);
      assert.deepEqual(allows(calls[1]), ["10.0.1.0/24", "10.0.2.0/24"]);
      assert.deepEqual(calls[1][1].principals, { roles: ["Dev"] });
      assert.equal(source.status().parameters, 2);
      assert.equal(logs.at(-1), `policy from Parameter Store ${PATH}: 2 rules from 2 parameters`);

      // Broken: the last good rules stay, status says why, the journal hears it once.
      await put("b-dev", "rules:\n  - principals: {roles: [Dev]}\n    allow: [10.0.2.0/33]\n");
      await waitFor("the error", () => source.status().error !== undefined);
      const why = `${PATH}/b-dev:3: rules[0].allow[0]: "10.0.2.0/33" is not a destination like`;
      assert.ok(source.status().error!.startsWith(why), source.status().error);
      await reads(3);
      const broken = source.status();
      assert.equal(calls.length, 2, "nothing handed on");
      assert.equal(broken.rules, 2);
      assert.equal(broken.parameters, 2);
      assert.ok(broken.lastCheckedAt! > broken.loadedAt!, "checked since, not loaded");
      const complaints = logs.filter((l) => l.includes("10.0.2.0/33"));
      assert.equal(complaints.length, 1, logs.join("\n"));
      assert.match(complaints[0], /; keeping the last good 2 rules$/);

      // A different problem is a new line.
      await put("b-dev", "rules: [\n");
      await waitFor("the second error", () => source.status().error?.includes(":2:") ?? false);
      await reads(2);
      assert.equal(logs.filter((l) => l.includes(`${PATH}/b-dev:2:`)).length, 1, logs.join("\n"));

      // Mended to what it was: nothing to hand on, but the journal hears it is good again.
      await put("b-dev", "rules:\n  - principals: {roles: [Dev]}\n    allow: [10.0.2.0/24]\n");
      await waitFor("recovery", () => source.status().error === undefined);
      assert.equal(calls.length, 2);
      assert.equal(
        logs.at(-1),
        `policy from Parameter Store ${PATH}: 2 rules from 2 parameters (unchanged)`,
      );

      // Mended to something new.
      await put("b-dev", "rules:\n  - allow: [10.0.3.0/24]\n    deny: [10.0.3.9/32]\n");
      await waitFor("the mended rules", () => calls.length === 3);
      assert.deepEqual(allows(calls[2]), ["10.0.1.0/24", "10.0.3.0/24"]);
      assert.deepEqual(calls[2][1].deny.map(formatDest), ["10.0.3.9/32"]);

      // All gone: no rules from the store.
      await deleteParameter({}, `${PATH}/a-base`);
      await deleteParameter({}, `${PATH}/b-dev`);
      // A read between the two deletes may hand on a_base's absence first: wait for the end.
      await waitFor("no rules", () => calls.length >= 4 && calls.at(-1)!.length === 0);
      assert.equal(source.status().parameters, 0);
      assert.equal(source.status().rules, 0);
    });
  });
});

Deno.test("policy source: access denied keeps the last good rules, logged once", async () => {
  await withEmulator(undefined, async (emu) => {
    await put("a", "rules: [{allow: [10.0.1.0/24]}]");
    await withSource(emu, async ({ source, calls, logs, reads }) => {
      assert.equal(calls.length, 1);
      emu.fixtures.deny.push({ action: "GetParametersByPath" });
      await waitFor("the error", () => source.status().error !== undefined);
      assert.match(
        source.status().error!,
        /^access denied: .* may not call ssm:GetParametersByPath on arn:aws:ssm:eu-central-1:\d{12}:parameter\/ssm-proxy\/policy; the IAM policy needs to allow "ssm:GetParametersByPath"$/,
      );
      await reads(3);
      assert.equal(logs.filter((l) => l.includes("access denied")).length, 1, logs.join("\n"));
      assert.equal(source.status().rules, 1);
      emu.fixtures.deny.length = 0;
      await waitFor("recovery", () => source.status().error === undefined);
      assert.equal(calls.length, 1, "the same rules: nothing new handed on");
    });
  });
});

Deno.test("policy source: a failed start uses no store rules and keeps trying", async () => {
  await withEmulator(undefined, async (emu) => {
    await put("a", "rules: [{allow: [10.0.1.0/24]}]");
    emu.fixtures.deny.push({ action: "GetParametersByPath" });
    await withSource(emu, async ({ source, calls, logs, reads }) => {
      assert.deepEqual(calls, []);
      assert.equal(logs.length, 1, "one line");
      assert.match(
        logs[0],
        /^policy from Parameter Store \/ssm-proxy\/policy: access denied: .*; using agent\.yaml's rules only until it can be read \(retrying every 40ms\)$/,
      );
      const status = source.status();
      assert.equal(status.loadedAt, undefined);
      assert.equal(status.rules, 0);
      assert.ok(status.lastCheckedAt);
      await reads(2);
      assert.equal(logs.length, 1);
      emu.fixtures.deny.length = 0;
      await waitFor("the rules", () => calls.length === 1);
      assert.deepEqual(allows(calls[0]), ["10.0.1.0/24"]);
    });
  });
});

Deno.test("policy source: every page of a path, in name order", async () => {
  await withEmulator(undefined, async (emu) => {
    // The emulator, like SSM, returns at most 10 a page.
    for (let i = 12; i >= 1; i--) {
      await put(`team/p${String(i).padStart(2, "0")}`, `rules: [{allow: [10.0.${i}.0/24]}]`);
    }
    await put("other", "rules: [{deny: [10.0.0.0/24]}]"); // "other" < "team/…"
    await withSource(emu, ({ calls, source }) => {
      assert.equal(source.status().parameters, 13);
      assert.deepEqual(
        allows(calls[0]),
        ["", ...Array.from({ length: 12 }, (_, i) => `10.0.${i + 1}.0/24`)],
      );
      assert.ok(emu.seen.filter((r) => r.op.endsWith("GetParametersByPath")).length >= 2);
    });
  });
});

Deno.test("policy source: an unreachable or silent store is one line, and close() stops reading", async () => {
  // A port nothing listens on: bind one, then free it.
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const dead = `http://127.0.0.1:${(l.addr as Deno.NetAddr).port}`;
  l.close();
  await withEmulator(undefined, async (emu) => {
    let loads = 0;
    const logs: string[] = [];
    const source = new PolicySource({
      path: PATH,
      refreshMs: REFRESH_MS,
      log: (line) => logs.push(line),
      load: (path) => {
        loads++;
        return Promise.resolve([{ name: `${path}/x`, value: "rules: []" }]);
      },
    });
    await source.start(() => {});
    assert.equal(source.status().error, undefined, "the custom loader was used");
    await source.close();
    const after = loads;
    await new Promise((r) => setTimeout(r, REFRESH_MS * 3));
    assert.equal(loads, after, "no reads after close()");
    assert.equal(emu.seen.length, 0);

    // A read that never ends counts as failed, and does not stop the next ones.
    let hung = 0;
    const stuck = new PolicySource({
      path: PATH,
      refreshMs: REFRESH_MS,
      timeoutMs: 30,
      log: () => {},
      load: () => (hung++, new Promise(() => {})),
    });
    await stuck.start(() => {});
    assert.equal(stuck.status().error, "no answer within 30ms");
    await waitFor("another read", () => hung >= 3);
    await stuck.close();

    Deno.env.set("AWS_ENDPOINT_URL", dead);
    const unreachable = new PolicySource({ path: PATH, refreshMs: 60_000, log: () => {} });
    await unreachable.start(() => {});
    await unreachable.close();
    assert.match(
      unreachable.status().error ?? "",
      /^could not reach the SSM endpoint http:\/\/127\.0\.0\.1:\d+ for ssm:GetParametersByPath: /,
    );
  });
});

Deno.test("policy source: the region from instance metadata, or a line saying to set it", async () => {
  const imds = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const path = new URL(req.url).pathname;
    if (req.method === "PUT" && path === "/latest/api/token") return new Response("t0k");
    if (req.headers.get("x-aws-ec2-metadata-token") !== "t0k") {
      return new Response("", { status: 401 });
    }
    return new Response(path === "/latest/meta-data/placement/region" ? "eu-central-1" : "", {
      status: path === "/latest/meta-data/placement/region" ? 200 : 404,
    });
  });
  const metadata = `http://127.0.0.1:${imds.addr.port}`;
  try {
    await withEmulator(undefined, async (emu) => {
      await put("a", "rules: [{allow: [10.0.1.0/24]}]");
      Deno.env.delete("AWS_REGION");
      Deno.env.delete("AWS_EC2_METADATA_DISABLED");
      Deno.env.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", metadata);
      await withSource(emu, ({ calls }) => {
        assert.deepEqual(calls.map(allows), [["10.0.1.0/24"]]);
        assert.equal(emu.seen.at(-1)?.scope, "eu-central-1/ssm");
      });

      Deno.env.set("AWS_EC2_METADATA_DISABLED", "true");
      const lost = new PolicySource({ path: PATH, refreshMs: 60_000, log: () => {} });
      await lost.start(() => {});
      await lost.close();
      assert.equal(
        lost.status().error,
        "cannot tell the AWS region: set AWS_REGION in the agent's environment (instance " +
          "metadata did not answer)",
      );
    });
  } finally {
    Deno.env.delete("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    await imds.shutdown();
  }
});
