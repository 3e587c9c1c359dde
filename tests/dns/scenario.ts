/**
 * The harness for split DNS scenarios through linuxPlatform() without systemd-resolved, for
 * real: the forwarder on 127.0.0.153:53, DNS servers on 127.0.0.2:53 (the tunnel's resolver) and
 * 127.0.0.3:53 (the previous nameserver), and a resolv.conf in a temp dir, never the machine's.
 * Each scenario runs in its own network and mount namespaces (`unshare --net --mount`), so port
 * 53, bind mounts (and a faked boot id) stay there. A test file is both the test and the script
 * run inside: `scenarioTests` registers the tests, `runScenario` runs one inside.
 */
import assert from "node:assert/strict";
import { linuxPlatform } from "../../src/net/linux.ts";
import type { DnsState } from "../../src/net/types.ts";
import { dnsServer, type TestDnsServer } from "./support.ts";

export const ORIGINAL = "# the machine's own\nsearch corp.example\nnameserver 127.0.0.3\n" +
  "options edns0 ndots:2\n";
export const CFG = { ifname: "lo", server: "127.0.0.2", domains: ["corp.example"] };

// ---- inside the namespaces (the second argument is a fresh temp dir) --------------------------

export const dir = Deno.args[1];
export const platform = (resolvConf = `${dir}/resolv.conf`) =>
  linuxPlatform({ resolvedDir: "/nonexistent/ssmpt", resolvConf, stateDir: `${dir}/state` });
export const bytes = (p: string) => Deno.readFileSync(p);
export const text = (p: string) => Deno.readTextFileSync(p);
export const enc = (s: string) => new TextEncoder().encode(s);

export async function withServers(fn: () => Promise<void>): Promise<void> {
  const servers: TestDnsServer[] = [
    await dnsServer("127.0.0.2", { "db.corp.example": "10.1.0.5" }, {}, 53),
    await dnsServer("127.0.0.3", { "www.example.com": "93.184.0.1" }, {}, 53),
  ];
  try {
    await fn();
  } finally {
    for (const s of servers) await s.close();
  }
}

export function assertPort53Free(): void {
  Deno.listen({ hostname: "127.0.0.153", port: 53 }).close();
}

export async function mount(src: string, target: string): Promise<void> {
  const o = await new Deno.Command("mount", { args: ["--bind", src, target] }).output();
  assert.equal(o.code, 0, new TextDecoder().decode(o.stderr));
}

/** Another process applies and is killed with SIGKILL; returns the DnsState it recorded. */
export async function crashedChild(): Promise<DnsState> {
  const { state, kill } = await runningChild();
  await kill();
  return state;
}

/** Another process applies and keeps running until kill() (SIGKILL). */
export async function runningChild(): Promise<{ state: DnsState; kill: () => Promise<void> }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check", new URL(import.meta.url).pathname, "apply-and-wait", dir],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let line = "";
  while (!line.includes("\n")) {
    const r = await reader.read();
    if (r.done) throw new Error("the child ended before applying");
    line += r.value;
  }
  reader.releaseLock();
  const kill = async () => {
    child.kill("SIGKILL");
    await child.status;
    await child.stdout.cancel().catch(() => {});
  };
  return { state: JSON.parse(line) as DnsState, kill };
}

async function applyAndWait(): Promise<void> {
  const state = await platform().dns.apply(CFG);
  console.log(JSON.stringify(state));
  await new Promise(() => {});
}

/** Run the scenario the arguments name, then exit (the forwarder would keep the process up). */
export async function runScenario(scenarios: Record<string, () => Promise<void>>): Promise<never> {
  await scenarios[Deno.args[0]]();
  Deno.exit(0);
}

if (import.meta.main) await runScenario({ "apply-and-wait": applyAndWait });

// ---- the tests ----------------------------------------------------------------------------------

const usable = Deno.build.os === "linux" && Deno.uid() === 0;

/** One Deno.test per scenario of `script`; `check` looks at what it printed. */
export function scenarioTests(
  script: string,
  names: string[],
  check: (name: string, out: string, err: string) => void = () => {},
): void {
  for (const name of names) {
    Deno.test({
      name: `resolv.conf DNS through linuxPlatform: ${name}`,
      ignore: Deno.build.os !== "linux",
      async fn() {
        if (!usable) throw new Error("these tests need root (unshare --net --mount) on Linux");
        const tmp = await Deno.makeTempDir({ prefix: "ssmpt-resolv-" });
        try {
          const o = await new Deno.Command("unshare", {
            args: [
              "--net",
              "--mount",
              "--propagation",
              "private",
              "sh",
              "-c",
              `ip link set lo up && exec "$0" run -A --no-check "$1" "$2" "$3"`,
              Deno.execPath(),
              new URL(script).pathname,
              name,
              tmp,
            ],
            stdout: "piped",
            stderr: "piped",
          }).output();
          const out = new TextDecoder().decode(o.stdout);
          const err = new TextDecoder().decode(o.stderr);
          assert.equal(o.code, 0, `scenario ${name} failed:\n${out}\n${err}`);
          assert.match(out, new RegExp(`${name} ok`));
          check(name, out, err);
        } finally {
          await Deno.remove(tmp, { recursive: true });
        }
      },
    });
  }
}
