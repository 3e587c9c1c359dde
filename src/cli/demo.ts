/**
 * `ssm-proxy demo`: the whole product on one Linux machine with no AWS account. Builds the
 * network-namespace lab (scripts/lab.ts), runs the emulator and ssm-proxy-agent in `instance`,
 * `ssm-proxy start` in `laptop`, checks HTTP, a 5 MB download, DNS, UDP and ping through the
 * tunnel, stops it and removes everything. Runs the product from the source tree.
 *
 * `--agentless`: no agent on the instance; the same checks, with UDP and ping shown refused at
 * once (agentless mode carries TCP and DNS only).
 *
 * `--all-traffic`: the lab gets an "internet" host and the tunnel is a full tunnel; the same
 * checks, plus the laptop's routes, what the internet sees, the system's DNS, and the routes
 * given back after stop (demo_full.ts).
 *
 * `--ipv6` (agent only; combines with `--all-traffic`): a dual-stack lab, the tunnel carries the
 * VPC's IPv6 range too, and the IPv6 checks follow the IPv4 ones (demo_ipv6.ts).
 */
import { ExitCode, UserError } from "../errors.ts";
import type { Lab, LabProcess } from "../../scripts/lab.ts";
import * as full from "./demo_full.ts";
import * as v6 from "./demo_ipv6.ts";

export interface DemoOptions {
  pacing?: boolean;
  agentless?: boolean;
  allTraffic?: boolean;
  ipv6?: boolean;
}

/** The default emulator VPC is 10.99.0.0/16: base+2 is the resolver agentless apps query. */
const AGENTLESS_RESOLVER = "10.99.0.2";

const BLOB = 5 << 20;
const NAME = "demo";

const fmtMs = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`);

export async function runDemo(o: DemoOptions): Promise<void> {
  if (o.agentless && o.allTraffic) {
    throw new UserError(
      "demo --all-traffic needs the agent (agentless mode carries TCP and DNS only, a full tunnel carries everything): drop --agentless",
      ExitCode.Usage,
    );
  }
  if (o.agentless && o.ipv6) {
    throw new UserError(
      "demo --ipv6 needs the agent (agentless mode carries IPv4 only): drop --agentless",
      ExitCode.Usage,
    );
  }
  if (Deno.build.os !== "linux") {
    throw new UserError(
      "ssm-proxy demo uses Linux network namespaces: run it on Linux",
      ExitCode.Usage,
    );
  }
  if (Deno.uid() !== 0) {
    throw new UserError(
      "ssm-proxy demo creates network namespaces and a tun device, which needs root: run it with sudo",
      ExitCode.Usage,
    );
  }
  const { createLab } = await import("../../scripts/lab.ts");
  const stack = await import("../../scripts/lab/stack.ts");
  const { PAGE_MARKER } = await import("../../scripts/lab/services.ts");

  let passed = 0;
  let failed = 0;
  const line: full.Line = (ok: boolean, what: string, detail: string, ms?: number) => {
    ok ? passed++ : failed++;
    const time = ms === undefined ? "" : `  (${fmtMs(ms)})`;
    console.log(`  ${ok ? "✓" : "✗"} ${what}${detail ? `: ${detail}` : ""}${time}`);
  };
  /** A setup step: a failure ends the demo, after showing why. */
  const step = async <T>(
    what: string,
    fn: () => Promise<T>,
    detail: (v: T) => string,
  ): Promise<T> => {
    const t0 = performance.now();
    try {
      const v = await fn();
      line(true, what, detail(v), performance.now() - t0);
      return v;
    } catch (e) {
      line(false, what, "", performance.now() - t0);
      console.log(indent((e as Error).message));
      throw new UserError(`demo failed while it set up (${what}); see above`, ExitCode.Failure);
    }
  };

  console.log(
    `ssm-proxy demo: a laptop, an instance${
      o.allTraffic ? ", a VPC and a host on the internet" : " and a VPC"
    } as network namespaces on this machine${o.ipv6 ? ", dual-stack (IPv4 and IPv6)" : ""}`,
  );
  const lab: Lab = await step(
    "lab",
    () => createLab({ internet: o.allTraffic, ipv6: o.ipv6 }),
    (l) =>
      `namespaces ${
        l.ns("laptop").replace(/laptop$/, `{${l.roles.join(",")}}`)
      }, VPC ${l.vpcNetwork}${l.vpcNetwork6 ? ` and ${l.vpcNetwork6}` : ""}${
        l.internetAddress ? `, internet host ${l.internetAddress}` : ""
      }`,
  );
  const procs: [string, LabProcess][] = [];
  try {
    const emulator = await step(
      "emulator (AWS APIs, Session Manager, SSM agent)",
      async () =>
        stack.startEmulator(lab, {
          pacing: o.pacing,
          fixtures: o.agentless ? await agentlessFixtures(lab) : undefined,
        }),
      () =>
        `${lab.instanceAddress}:${stack.EMULATOR_PORT}, ${
          o.pacing ? "paced at 1 KiB/ms like AWS" : "no pacing"
        }`,
    );
    procs.push(["emulator", emulator]);
    if (!o.agentless) {
      const agent = await step(
        "ssm-proxy-agent on the instance",
        () => stack.startAgent(lab),
        () =>
          `127.0.0.1:${stack.AGENT_PORT}, NAT via ${lab.instanceUplink}, resolver ${lab.resolver}`,
      );
      procs.push(["agent", agent]);
    }
    const before = o.allTraffic
      ? await step(
        "laptop routes before the tunnel",
        () => full.laptopSnapshot(lab),
        full.describeBefore,
      )
      : undefined;
    const mode = o.agentless ? ["--mode", "agentless"] : [];
    // A full tunnel routes everything, the VPC included: it needs no --cidr.
    const [cidrs, extra] = o.allTraffic
      ? [[], ["--all-traffic"]]
      : [v6.splitCidrs(lab, !!o.ipv6), mode];
    const tunnel = await step(
      `ssm-proxy start --target name:bastion ${
        o.allTraffic ? "--all-traffic" : cidrs.map((c) => `--cidr ${c}`).join(" ")
      } --name ${NAME}${o.agentless ? " --mode agentless" : ""}`,
      () => stack.startTunnel(lab, "laptop", { name: NAME, cidrs, extra }),
      (t) =>
        `up${
          o.agentless ? " (agentless: nothing installed on the instance)" : ""
        }, ${t.status.address} on ${t.status.interface} -> ${t.status.target.instanceId}`,
    );
    procs.push(["ssm-proxy start", tunnel.proc]);
    if (o.allTraffic) await full.showRoutes(lab, tunnel.status.interface, line);

    console.log(`From the laptop, through the tunnel:`);
    const svc = lab.serviceAddress;
    const probe = async (what: string, args: string[], timeoutMs?: number) => {
      const r = await lab.probe("laptop", args, timeoutMs);
      line(r.ok, what, r.detail, r.ms);
    };
    await probe(`HTTP GET http://${svc}/`, ["http", `http://${svc}/`, PAGE_MARKER]);
    await probe(`HTTP GET ${BLOB >> 20} MB blob, SHA-256 checked`, [
      "blob",
      `http://${svc}/blob?size=${BLOB}`,
    ], 5000);
    const resolver = o.agentless ? AGENTLESS_RESOLVER : lab.resolver;
    await probe(`DNS A db.lab.internal @${resolver}`, ["dns", resolver, "db.lab.internal"]);
    if (o.agentless) {
      await notCarried(lab, svc, line);
    } else {
      await probe(`UDP echo ${svc}:7`, ["udp", svc, "7"]);
      await ping(lab, svc, line);
    }
    if (o.allTraffic) {
      await full.showInternet(lab, line);
      await full.showSystemDns(lab, line);
    }
    if (o.ipv6) {
      await v6.showIpv6(lab, tunnel.status, {
        line,
        ping: (address) => ping(lab, address, line),
        allTraffic: o.allTraffic,
      });
    }

    const t0 = performance.now();
    const stopped = await stack.ssmProxy(lab, "laptop", ["stop", NAME]);
    const exit = await tunnel.proc.status;
    line(
      stopped.success && exit.success,
      `ssm-proxy stop ${NAME}`,
      stopped.success
        ? "tunnel, routes and state removed"
        : (stopped.stderr || stopped.stdout).trim(),
      performance.now() - t0,
    );
    if (before) await full.showRestored(lab, before, line);
  } catch (e) {
    // A failed setup step was already counted and shown; anything else is a bug.
    if (!(e instanceof UserError)) throw e;
  } finally {
    if (failed) {
      for (const [what, p] of procs) console.log(`--- ${what} (last lines)\n${indent(p.tail(15))}`);
    }
    const t0 = performance.now();
    await lab.destroy();
    console.log(`  · namespaces removed  (${fmtMs(performance.now() - t0)})`);
  }
  if (failed) {
    throw new UserError(`${failed} of ${passed + failed} checks failed`, ExitCode.Failure);
  }
  console.log(`All ${passed} checks passed.`);
}

/**
 * The instance's stub resolver (127.0.0.53), where agentless DNS ends up, is the lab VPC's
 * server; the emulated agent dials it there.
 */
async function agentlessFixtures(lab: Lab): Promise<string> {
  const file = `${lab.dir}/fixtures.yaml`;
  await Deno.writeTextFile(file, `destinations:\n  "127.0.0.53:53": "${lab.resolver}:53"\n`);
  return file;
}

/** Agentless mode refuses UDP and ICMP at once (ICMP administratively prohibited). */
async function notCarried(
  lab: Lab,
  address: string,
  line: full.Line,
): Promise<void> {
  const udp = await lab.probe("laptop", ["udp", address, "7"], 1000);
  line(!udp.ok, `UDP echo ${address}:7`, "not carried in agentless mode (needs the agent)");
  if (!onPath("ping")) return;
  const t0 = performance.now();
  const r = await lab.exec("laptop", ["ping", "-c", "1", "-W", "2", address]);
  const filtered = /Packet filtered/.test(r.stdout);
  line(
    filtered,
    `ping ${address}`,
    filtered ? "refused at once: Packet filtered (needs the agent)" : r.stdout.trim(),
    performance.now() - t0,
  );
}

async function ping(
  lab: Lab,
  address: string,
  line: full.Line,
): Promise<void> {
  // -6: not every ping picks the family from the address.
  const family = address.includes(":") ? ["-6"] : [];
  const what = `ping${family.length ? "6" : ""} ${address}`;
  if (!onPath("ping")) {
    line(false, what, "ping is not installed (apt-get install iputils-ping)");
    return;
  }
  const t0 = performance.now();
  const argv = ["ping", ...family, "-c", "3", "-i", "0.2", "-W", "2", address];
  const r = await lab.exec("laptop", argv);
  const got = /(\d+) received/.exec(r.stdout)?.[1] ?? "0";
  const avg = /= [\d.]+\/([\d.]+)\//.exec(r.stdout)?.[1];
  line(r.success, what, `${got}/3 replies${avg ? `, avg ${avg} ms` : ""}`, performance.now() - t0);
}

function onPath(cmd: string): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin:/bin").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${cmd}`).isFile) return true;
    } catch { /* not here */ }
  }
  return false;
}

const indent = (text: string) => text.split("\n").map((l) => `      ${l}`).join("\n");
