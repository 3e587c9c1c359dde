/**
 * scripts/agentless_smoke.ts (what the macOS workflow runs through a real utun) run on Linux in a
 * fresh network namespace: a real TUN, real routes, the emulator and the services on the
 * namespace's loopback. The script checks everything itself and prints PASS/FAIL per step; this
 * test also checks from outside that the namespace is as it was (only lo, no route, no process).
 */
import assert from "node:assert/strict";
import { inNetns, ipIn, netnsAvailable, withNetns } from "../support/netns.ts";

const SCRIPT = new URL("../../scripts/agentless_smoke.ts", import.meta.url);
const avail = netnsAvailable();
if (!avail.ok) {
  console.warn(
    `agentless smoke: SKIPPED (${avail.why}): it needs Linux, root and /dev/net/tun (macOS runs the script itself in CI)`,
  );
}

async function nsPids(ns: string): Promise<number[]> {
  const o = await new Deno.Command("ip", { args: ["netns", "pids", ns], stdout: "piped" }).output();
  return new TextDecoder().decode(o.stdout).split(/\s+/).filter(Boolean).map(Number);
}

Deno.test({
  name: "e2e: agentless smoke script (what macOS CI runs) passes in a netns, leaving it as it was",
  ignore: !avail.ok,
  // Child processes and their pipes are the script's; the namespace is checked below.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withNetns(["smoke"], async (ns) => {
      try {
        const o = await inNetns(ns, SCRIPT, []);
        const out = `${o.stdout}${o.stderr}`;
        assert.equal(o.code, 0, `the smoke script failed (exit ${o.code}):\n${out}`);
        assert.doesNotMatch(o.stdout, /^FAIL /m, out);
        assert.match(o.stdout, /^all steps PASSED/m, out);
        for (
          const s of [
            "HTTP page by IP",
            "DNS: web.lab.internal at the VPC resolver 10.99.0.2",
            "HTTP page by private name",
            "50 MB /blob, SHA-256 checked",
            "ssm-proxy stop smoke",
            "nothing left: no route for 10.99.0.0/24",
          ]
        ) {
          assert.match(o.stdout, new RegExp(`^PASS ${s.replace(/[./]/g, "\\$&")}`, "m"), out);
        }
        // Seen from outside: the namespace holds only its loopback again, and no process.
        const links = (await ipIn(ns, "-o", "link", "show")).trim().split("\n");
        assert.deepEqual(links.map((l) => l.split(":")[1].trim()), ["lo"], links.join("\n"));
        assert.equal((await ipIn(ns, "-4", "route", "show")).trim(), "");
        assert.deepEqual(await nsPids(ns), []);
      } finally {
        // Whatever a failed run left running in the namespace dies with the test.
        for (const pid of await nsPids(ns)) {
          try {
            Deno.kill(pid, "SIGKILL");
          } catch { /* gone */ }
        }
      }
    });
  },
});
