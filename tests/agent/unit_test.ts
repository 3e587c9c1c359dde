/** The systemd unit: one text in the binary (agent/unit.ts) and in scripts/, and systemd likes it. */
import assert from "node:assert/strict";
import { UNIT } from "../../agent/unit.ts";

const root = new URL("../../", import.meta.url).pathname;
const SERVICE = `${root}scripts/ssm-proxy-agent.service`;

Deno.test("unit: scripts/ssm-proxy-agent.service is byte-identical to agent/unit.ts", async () => {
  assert.equal(await Deno.readTextFile(SERVICE), UNIT);
});

Deno.test("unit: `ssm-proxy-agent unit` prints exactly the unit", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${root}agent/main.ts`, "unit"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.deepEqual(out.stdout, new TextEncoder().encode(UNIT));
});

Deno.test("unit: writable places under ProtectSystem=strict are systemd's own directories", () => {
  const keys = new Map(
    UNIT.split("\n").filter((l) => /^\w+=/.test(l)).map((
      l,
    ) => [l.split("=")[0], l.slice(l.indexOf("=") + 1)]),
  );
  assert.equal(keys.get("ProtectSystem"), "strict");
  assert.equal(keys.get("StateDirectory"), "ssm-proxy"); // $STATE_DIRECTORY: leases
  // $RUNTIME_DIRECTORY: status.json. Not ssm-proxy: /run/ssm-proxy is the client's state dir.
  assert.equal(keys.get("RuntimeDirectory"), "ssm-proxy-agent");
  assert.equal(
    keys.get("ExecStart"),
    "/usr/local/bin/ssm-proxy-agent serve --config /etc/ssm-proxy/agent.yaml",
  );
});

const hasAnalyze = new Deno.Command("sh", {
  args: ["-c", "command -v systemd-analyze"],
  stdout: "null",
  stderr: "null",
}).outputSync().success;

Deno.test({
  name: "unit: systemd-analyze verify knows every directive",
  ignore: !hasAnalyze,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      // verify insists that ExecStart exists; the agent binary is not installed here.
      const path = `${dir}/ssm-proxy-agent.service`;
      await Deno.writeTextFile(
        path,
        UNIT.replace("ExecStart=/usr/local/bin/ssm-proxy-agent", "ExecStart=/bin/true"),
      );
      const out = await new Deno.Command("systemd-analyze", {
        args: ["verify", path],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
      assert.doesNotMatch(text, /Unknown (key|section)|Failed to parse|Invalid/i, text);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
