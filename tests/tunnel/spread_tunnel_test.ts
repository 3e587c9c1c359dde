/**
 * A tunnel spread over two instances, in-process (no root): real Port sessions through the
 * emulator to two in-process ssm-proxy-agents with different address pools and fake tuns. Flows
 * are placed over both; those on the second leave with its address (its anti-spoofing accepts
 * them) and come back to the tun's; losing the second moves its flows to the first while it heals
 * in the background, and once back it takes new flows.
 */
import assert from "node:assert/strict";
import { defaultConfig } from "../../agent/config.ts";
import { type Agent, startAgent } from "../../agent/server.ts";
import { parseCidr } from "../../src/net/cidr.ts";
import { defaultFixtures } from "../../src/emulator/fixtures.ts";
import { startEmulator } from "../../src/emulator/server.ts";
import * as ssm from "../../src/aws/ssm.ts";
import { PortSession } from "../../src/ssm/session.ts";
import { Tunnel } from "../../src/tunnel/client.ts";
import { slotOf } from "../../src/tunnel/spread.ts";
import { awsEnv, withEnv } from "../support/aws_env.ts";
import { checksum, FakeTun, udpPacket } from "../agent/helpers.ts";

const IDS = ["i-0123456789abcdef0", "i-0123456789abcdef1"];
const VPC = "10.0.0.9";

async function agentOn(pool: string, port: number, stateDir: string) {
  let tun: FakeTun | undefined;
  const agent = await startAgent({
    config: {
      ...defaultConfig(),
      listen: { hostname: "127.0.0.1", port },
      pool: parseCidr(pool)!,
      nat: "off",
      resolver: "10.0.0.2",
      leaseGraceSeconds: 60,
      stateDir,
    },
    openTun: (c) => Promise.resolve(tun = new FakeTun(c)),
    manageSysctls: false,
    log: () => {},
  });
  return { agent, tun: tun! };
}

async function until(what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const dotted = (p: Uint8Array, at: number) => p.subarray(at, at + 4).join(".");
const srcPort = (p: Uint8Array) => (p[20] << 8) | p[21];
const dstPort = (p: Uint8Array) => (p[22] << 8) | p[23];

/** The UDP checksum verifies over the pseudo-header (0xffff folded sum → checksum() 0). */
function udpValid(p: Uint8Array): boolean {
  const pseudo = new Uint8Array(12 + p.length - 20);
  pseudo.set(p.subarray(12, 20), 0);
  pseudo[9] = 17;
  new DataView(pseudo.buffer).setUint16(10, p.length - 20);
  pseudo.set(p.subarray(20), 12);
  return checksum(p.subarray(0, 20)) === 0 && checksum(pseudo) === 0;
}

Deno.test({
  name: "spread: flows over two instances, rewritten addresses, an instance lost and healed",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const fixtures = defaultFixtures();
    fixtures.instances.push({ ...fixtures.instances[0], id: IDS[1], privateIp: "10.99.0.11" });
    const emu = await startEmulator({ port: 0, pacing: false, fixtures });
    const dirs = [await Deno.makeTempDir(), await Deno.makeTempDir()];
    const a = await agentOn("100.64.0.0/16", 0, dirs[0]);
    let b = await agentOn("100.65.0.0/16", 0, dirs[1]);
    const ports = [a.agent.addr.port, b.agent.addr.port];
    const agents: Agent[] = [a.agent, b.agent];
    const logs: string[] = [];
    try {
      await withEnv(awsEnv(emu.url), async () => {
        const aws = {};
        const t = await Tunnel.connect({
          instances: IDS,
          stripes: 2,
          agentPort: 7797,
          mtu: 1400,
          log: (l) => logs.push(l),
          liveness: { probeAfterMs: 300, probeEveryMs: 200, deadAfterMs: 1_500 },
          openSession: async (_stripe, instance) =>
            PortSession.open({
              grant: await ssm.startSession(aws, {
                target: IDS[instance],
                documentName: "AWS-StartPortForwardingSession",
                // Each emulated instance's agent listens on its own loopback port here.
                parameters: { portNumber: [String(ports[instance])] },
              }),
              api: ssm.sessionApi(aws),
              window: 512,
              windowBytes: 512 * 1024,
            }),
        });
        const clientTun = new FakeTun({ name: "c", mtu: 1400 } as never);
        const running = t.run(clientTun);
        try {
          const me = t.welcome.address;
          const inst = t.stats().instances!;
          assert.deepEqual(inst.map((i) => i.instanceId), IDS);
          assert.match(inst[0].address, /^100\.64\./);
          assert.match(inst[1].address, /^100\.65\./);
          assert.equal(me, inst[0].address, "the tun has the first instance's address");
          const other = inst[1].address;

          // 8 flows: 4 per instance, 2 per stripe.
          const flows = Array.from({ length: 8 }, (_, i) => udpPacket(me, VPC, 2000 + i, 7));
          clientTun.inject(...flows.map((p) => p.slice()));
          await until(
            "8 flows at the agents",
            () => a.tun.written.length + b.tun.written.length >= 8,
          );
          assert.equal(a.tun.written.length, 4);
          assert.equal(b.tun.written.length, 4);
          const keys = flows.map((p) => t.stripeOf(p)!);
          for (const k of [0, 1, 32, 33]) assert.equal(keys.filter((x) => x === k).length, 2);
          for (const p of a.tun.written) assert.equal(dotted(p, 12), me);
          for (const p of b.tun.written) {
            assert.equal(dotted(p, 12), other, "the second agent sees its own address");
            assert.ok(udpValid(p), "checksums still valid");
          }
          assert.equal(b.agent.stats.spoofed, 0, "its anti-spoofing accepted them");

          // An answer on the second instance reaches the tun addressed to the tun's address.
          const onB = flows.filter((p) => slotOf(t.stripeOf(p)!) === 1);
          const port = srcPort(onB[0]);
          b.tun.inject(udpPacket(VPC, other, 7, port, "pong"));
          await until("the answer at the laptop", () => clientTun.written.length >= 1);
          const got = clientTun.written[0];
          assert.equal(dotted(got, 16), me);
          assert.equal(dstPort(got), port);
          assert.ok(udpValid(got));

          // The second instance is lost: its flows move to the first while it heals.
          await b.agent.close();
          const before = a.tun.written.length;
          const talk = setInterval(() => clientTun.inject(...onB.map((p) => p.slice())), 100);
          try {
            await until("the lost instance's flows on the first", () => {
              const moved = new Set(
                a.tun.written.slice(before).filter((p) => dotted(p, 12) === me).map(srcPort),
              );
              return onB.every((p) => moved.has(srcPort(p)));
            });
          } finally {
            clearInterval(talk);
          }
          for (const p of onB) assert.equal(t.instanceOf(p), 0);
          assert.equal(t.stats().instances![1].stripesUp, 0);
          assert.notEqual(t.health().state, "down", "still carrying traffic");

          // It comes back (same port, its leases kept): healed in the background.
          b = await agentOn("100.65.0.0/16", ports[1], dirs[1]);
          agents.push(b.agent);
          await until("the instance healed", () => t.stats().instances![1].stripesUp === 2, 30_000);
          assert.equal(t.stats().instances![1].address, other);
          // The moved flows stay put; new ones go to its empty stripes.
          const fresh = Array.from({ length: 4 }, (_, i) => udpPacket(me, VPC, 3000 + i, 7));
          clientTun.inject(...fresh.map((p) => p.slice()));
          await until("fresh flows at the healed instance", () => b.tun.written.length >= 4);
          for (const p of fresh) assert.equal(t.instanceOf(p), 1);
          for (const p of b.tun.written) assert.equal(dotted(p, 12), other);
          for (const p of onB) assert.equal(t.instanceOf(p), 0);
        } finally {
          await t.close();
          clientTun.close();
          await running;
        }
      });
    } finally {
      for (const ag of agents) await ag.close().catch(() => {});
      await emu.close();
      for (const d of dirs) await Deno.remove(d, { recursive: true }).catch(() => {});
    }
    assert.ok(logs.some((l) => l.startsWith(`${IDS[1]}: stripe`)), logs.join("\n"));
  },
});
