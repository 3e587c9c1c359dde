/**
 * `ssm-proxy demo` run as a user runs it (a child process in this machine's namespace, building
 * its own lab): `--all-traffic` shows the full tunnel's routes, the internet seeing the instance,
 * the system's DNS through the VPC, and the routes given back; `--ipv6` (alone and with
 * `--all-traffic`) shows IPv6 through the tunnel; the plain demo stays as it was; `--agentless`
 * with either is refused with one line. Each run must leave no namespace behind.
 */
import assert from "node:assert/strict";
import { ssmProxyArgv } from "../../scripts/lab/stack.ts";
import { fullTunnelRoutes, nameserverOf, routeDiff } from "../../src/cli/demo_full.ts";
import { inPool6 } from "../../src/cli/demo_ipv6.ts";
import { e2eTest } from "../support/lab.ts";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The demo to completion; SIGTERM (the lab removes itself, exit 130) if it hangs. */
async function demo(args: string[], timeoutMs = 120_000): Promise<Run> {
  const argv = ssmProxyArgv(["demo", ...args]);
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGTERM"), timeoutMs);
  const o = await child.output();
  clearTimeout(timer);
  const dec = new TextDecoder();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
}

/** The lab id the demo printed, and that none of its namespaces, files or dirs is left. */
async function assertNothingLeft(stdout: string): Promise<void> {
  const id = /^ {2}✓ lab: namespaces ssmp-([0-9a-f]{6})-\{/m.exec(stdout)?.[1];
  assert.ok(id, `no lab line:\n${stdout}`);
  const list = await new Deno.Command("ip", { args: ["netns", "list"], stdout: "piped" }).output();
  const left = new TextDecoder().decode(list.stdout).split("\n").filter((l) =>
    l.startsWith(`ssmp-${id}-`)
  );
  assert.deepEqual(left, [], "namespaces left behind");
  for await (const e of Deno.readDir("/etc/netns")) {
    assert.ok(!e.name.startsWith(`ssmp-${id}-`), `/etc/netns/${e.name} left behind`);
  }
  await assert.rejects(Deno.stat(`/tmp/ssmp-lab-${id}`), Deno.errors.NotFound, "lab dir left");
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

function assertLines(stdout: string, lines: (string | RegExp)[]): void {
  for (const l of lines) {
    const re = typeof l === "string" ? new RegExp(`^ {2}✓ ${esc(l)}`, "m") : l;
    assert.match(stdout, re, stdout);
  }
  assert.doesNotMatch(stdout, /✗/, stdout);
  assert.match(stdout, /^All \d+ checks passed\.$/m, stdout);
}

e2eTest("e2e: demo --all-traffic shows the full tunnel and gives every route back", async () => {
  const r = await demo(["--all-traffic"]);
  try {
    assert.equal(r.code, 0, `exit ${r.code}\n${r.stdout}${r.stderr}`);
    assertLines(r.stdout, [
      /^ {2}✓ lab: namespaces ssmp-[0-9a-f]{6}-\{laptop,instance,vpc,inet\}, .*internet host 203\.0\.113\.10/m,
      /^ {2}✓ laptop routes before the tunnel: default via 10\.97\.\d+\.1 dev lab0/m,
      "ssm-proxy start --target name:bastion --all-traffic --name demo: up",
      /^ {2}✓ half-default routes 0\.0\.0\.0\/1 and 128\.0\.0\.0\/1: via (\S+),.*\n {6}0\.0\.0\.0\/1 dev \1 .*\n {6}128\.0\.0\.0\/1 dev \1 /m,
      /^ {2}✓ pin (10\.97\.\d+\.1) \(the emulator, .*\): kept outside the tunnel, via lab0\n {6}\1 dev lab0/m,
      /^ {2}✓ HTTP GET http:\/\/10\.99\.\d+\.10\/: HTTP 200/m,
      "HTTP GET 5 MB blob, SHA-256 checked",
      /^ {2}✓ UDP echo 10\.99\.\d+\.10:7/m,
      /^ {2}✓ ping 10\.99\.\d+\.10: 3\/3 replies/m,
      // The vpc address (10.99.X.1) is the instance's; the laptop's (10.97.X.2) never gets there.
      /^ {2}✓ HTTP GET http:\/\/203\.0\.113\.10\/ .*: answers 10\.99\.(\d+)\.1, the instance's VPC address, not the laptop's 10\.97\.\1\.2: the internet sees the instance, not the laptop/m,
      /^ {2}✓ DNS A web\.lab\.internal @127\.0\.0\.153 .*: web\.lab\.internal → 10\.99\.(\d+)\.10, answered by the VPC resolver 10\.99\.\1\.10/m,
      "ssm-proxy stop demo: tunnel, routes and state removed",
      /^ {2}✓ laptop routes after stop: exactly as before \(\d+ lines compared\)/m,
      "laptop resolv.conf after stop: exactly as before (nameserver 192.0.2.53)",
    ]);
  } finally {
    await assertNothingLeft(r.stdout);
  }
});

e2eTest("e2e: demo without --all-traffic is the split tunnel it was", async () => {
  const r = await demo([]);
  try {
    assert.equal(r.code, 0, `exit ${r.code}\n${r.stdout}${r.stderr}`);
    assertLines(r.stdout, [
      /^ssm-proxy demo: a laptop, an instance and a VPC as network namespaces/m,
      /^ {2}✓ lab: namespaces ssmp-[0-9a-f]{6}-\{laptop,instance,vpc\}, VPC 10\.99\.\d+\.0\/24 {2}/m,
      /^ {2}✓ ssm-proxy start --target name:bastion --cidr 10\.99\.\d+\.0\/24 --name demo: up/m,
      "ssm-proxy stop demo",
    ]);
    assert.doesNotMatch(r.stdout, /half-default|203\.0\.113|routes before|after stop/, r.stdout);
    assert.doesNotMatch(r.stdout, /IPv6|2001:db8|AAAA|ping6/, r.stdout);
  } finally {
    await assertNothingLeft(r.stdout);
  }
});

/** The IPv6 lines both `--ipv6` runs show (X: the lab's byte, as in 10.99.X.0). */
const IPV6_LINES: RegExp[] = [
  /^ {2}✓ tun IPv6 address: fd7a:5353:5d8b::2 on (\S+), from the agent's ULA pool fd7a:5353:5d8b::\/48 \(the same host number as 100\.64\.0\.2\)$/m,
  /^ {2}✓ HTTP GET http:\/\/\[2001:db8:(\d+)::10\]\/ \(the dual-stack service, web\.lab\.internal\): HTTP 200/m,
  // The instance's vpc0 address (::1), not the tun's fd7a: address, is what the host sees.
  /^ {2}✓ HTTP GET http:\/\/\[2001:db8:(\d+)::20\]\/ \(an IPv6-only host .*\): answers 2001:db8:\1::1, the instance's IPv6 address, not the tunnel's fd7a:5353:5d8b::2: NAT66: the VPC sees the instance/m,
  /^ {2}✓ DNS AAAA v6only\.lab\.internal @10\.99\.(\d+)\.10 \(the VPC resolver.*\): v6only\.lab\.internal → 2001:db8:\1::20 /m,
  /^ {2}✓ ping6 2001:db8:\d+::10: 3\/3 replies/m,
];

e2eTest("e2e: demo --ipv6 shows IPv6 through the tunnel beside IPv4", async () => {
  const r = await demo(["--ipv6"]);
  try {
    assert.equal(r.code, 0, `exit ${r.code}\n${r.stdout}${r.stderr}`);
    assertLines(r.stdout, [
      /^ssm-proxy demo: a laptop, an instance and a VPC as network namespaces on this machine, dual-stack \(IPv4 and IPv6\)$/m,
      /^ {2}✓ lab: namespaces ssmp-[0-9a-f]{6}-\{laptop,instance,vpc\}, VPC 10\.99\.(\d+)\.0\/24 and 2001:db8:\1::\/64 {2}/m,
      /^ {2}✓ ssm-proxy start --target name:bastion --cidr 10\.99\.(\d+)\.0\/24 --cidr 2001:db8:\1::\/64 --name demo: up/m,
      /^ {2}✓ HTTP GET http:\/\/10\.99\.\d+\.10\/: HTTP 200/m,
      /^ {2}✓ ping 10\.99\.\d+\.10: 3\/3 replies/m,
      /^Over IPv6, through the same tunnel:$/m,
      ...IPV6_LINES,
      "ssm-proxy stop demo: tunnel, routes and state removed",
    ]);
    assert.doesNotMatch(r.stdout, /2001:db8:ffff|203\.0\.113|half-default/, r.stdout);
  } finally {
    await assertNothingLeft(r.stdout);
  }
});

e2eTest(
  "e2e: demo --ipv6 --all-traffic: the internet sees the instance over IPv6 too",
  async () => {
    const r = await demo(["--ipv6", "--all-traffic"]);
    try {
      assert.equal(r.code, 0, `exit ${r.code}\n${r.stdout}${r.stderr}`);
      assertLines(r.stdout, [
        /^ {2}✓ lab: namespaces ssmp-[0-9a-f]{6}-\{laptop,instance,vpc,inet\}, VPC 10\.99\.(\d+)\.0\/24 and 2001:db8:\1::\/64, internet host 203\.0\.113\.10/m,
        "ssm-proxy start --target name:bastion --all-traffic --name demo: up",
        /^ {2}✓ HTTP GET http:\/\/203\.0\.113\.10\/ .*: answers 10\.99\.\d+\.1, the instance's VPC address/m,
        ...IPV6_LINES,
        /^ {2}✓ HTTP GET http:\/\/\[2001:db8:ffff::10\]\/ \(the host on the internet, over IPv6\): answers 2001:db8:\d+::1, the instance's IPv6 address, not the tunnel's fd7a:5353:5d8b::2: the internet sees the instance over IPv6 too/m,
        "ssm-proxy stop demo: tunnel, routes and state removed",
        // The IPv6 main table is compared too: the ::/1 halves are gone, the fe80::1 default kept.
        /^ {2}✓ laptop routes after stop: exactly as before \(\d+ lines compared\)/m,
        "laptop resolv.conf after stop: exactly as before (nameserver 192.0.2.53)",
      ]);
    } finally {
      await assertNothingLeft(r.stdout);
    }
  },
);

Deno.test("demo --agentless --ipv6: refused with one line, before anything is built", async () => {
  const r = await demo(["--agentless", "--ipv6"], 30_000);
  assert.equal(r.code, 2, `exit ${r.code}\n${r.stdout}${r.stderr}`);
  assert.equal(r.stdout, "", "nothing shown, nothing built");
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(
    lines[0],
    /^ssm-proxy: demo --ipv6 needs the agent \(agentless mode carries IPv4 only\): drop --agentless$/,
  );
});

Deno.test("demo --ipv6: the tun's address must come from the agent's ULA pool", () => {
  assert.equal(inPool6("fd7a:5353:5d8b::2"), true);
  assert.equal(inPool6("fd7a:5353:5d8b:0:ffff::1"), true);
  assert.equal(inPool6("fd7a:5353:5d8c::2"), false, "the next /48");
  assert.equal(inPool6("2001:db8:5::1"), false);
  assert.equal(inPool6("100.64.0.2"), false, "an IPv4 address");
  assert.equal(inPool6("not an address"), false);
  assert.equal(inPool6("2001:db8:5::1", "2001:db8:5::/64"), true);
});

Deno.test("demo --agentless --all-traffic: refused with one line, before anything is built", async () => {
  const r = await demo(["--agentless", "--all-traffic"], 30_000);
  assert.equal(r.code, 2, `exit ${r.code}\n${r.stdout}${r.stderr}`);
  assert.equal(r.stdout, "", "nothing shown, nothing built");
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^ssm-proxy: demo --all-traffic needs the agent .*: drop --agentless$/);
});

Deno.test("demo --all-traffic: finds the half-defaults and the pin, reports what is missing", () => {
  const up = [
    "default via 10.97.1.1 dev lab0 ",
    "0.0.0.0/1 dev ssmp0 scope link ",
    "10.97.1.0/30 dev lab0 proto kernel scope link src 10.97.1.2 ",
    "10.97.1.1 dev lab0 scope link ",
    "128.0.0.0/1 dev ssmp0 scope link ",
  ].join("\n");
  assert.deepEqual(fullTunnelRoutes(up, "ssmp0", "10.97.1.1"), {
    halves: ["0.0.0.0/1 dev ssmp0 scope link", "128.0.0.0/1 dev ssmp0 scope link"],
    missing: [],
    pin: "10.97.1.1 dev lab0 scope link",
    pinDev: "lab0",
  });
  // A half-default on another device, and the endpoint routed into the tun: neither counts.
  const wrong = "0.0.0.0/1 dev eth0\n128.0.0.0/1 dev ssmp0\n10.97.1.1 dev ssmp0\n";
  const r = fullTunnelRoutes(wrong, "ssmp0", "10.97.1.1");
  assert.deepEqual(r.missing, ["0.0.0.0/1"]);
  assert.equal(r.pin, undefined);
  // 10.97.1.10 is not a pin for 10.97.1.1.
  assert.equal(fullTunnelRoutes("10.97.1.10 dev lab0\n", "ssmp0", "10.97.1.1").pin, undefined);
});

Deno.test("demo --all-traffic: a route left behind or lost shows as + or -", () => {
  const before = "default via 10.97.1.1 dev lab0\n10.97.1.0/30 dev lab0\n";
  assert.deepEqual(routeDiff(before, before), { removed: [], added: [] });
  assert.deepEqual(routeDiff(before, "10.97.1.0/30 dev lab0\n10.97.1.1 dev lab0\n"), {
    removed: ["default via 10.97.1.1 dev lab0"],
    added: ["10.97.1.1 dev lab0"],
  });
  assert.equal(nameserverOf("# ours\nnameserver 127.0.0.153\nnameserver 9.9.9.9\n"), "127.0.0.153");
  assert.equal(nameserverOf("search lab\n"), undefined);
});
