/**
 * The audit trail's cost on the data path (issue 15): ns per FlowAudit.packet() call for packets
 * of flows already in the table: 1400-byte TCP packets across 100 flows, two up for each one
 * down, IPv4 and IPv6. The loop is synchronous, so the default clock is read once, as for one
 * batch; "clock per packet" passes Date.now to read it for every packet (the upper bound: one
 * read per batch of a frame or a tun read is the real case). Also the share of one core at 40k
 * packets/s, and the heap growth over a run (≈ 0: packets of known flows allocate nothing).
 *
 * deno run --v8-flags=--expose-gc bench/audit.ts   (not part of bench/run.ts). Prints a table
 * and a JSON line.
 */
import { FlowAudit } from "../agent/audit.ts";
import { TCP, v4Packet, v6Packet } from "../tests/agent/policy_packets.ts";

const PACKETS_PER_RUN = 2_000_000;
const PACKET_BYTES = 1400;
const FLOWS = 100;
const RATE = 40_000;

/** `FLOWS` client → VPC packets and their replies, each grown to PACKET_BYTES. */
function flows(v6: boolean): { up: Uint8Array; down: Uint8Array }[] {
  return Array.from({ length: FLOWS }, (_, i) => {
    const small = v6
      ? v6Packet(`fd00::${(i + 1).toString(16)}`, TCP, 443)
      : v4Packet(`10.0.${i >> 8}.${(i & 0xff) + 1}`, TCP, 443);
    const up = new Uint8Array(PACKET_BYTES);
    up.set(small);
    // Distinct client ports too, as separate connections have.
    const l4 = v6 ? 40 : 20;
    up[l4 + 1] = i;
    const down = up.slice();
    const a = v6 ? 8 : 12, w = v6 ? 16 : 4;
    down.set(up.subarray(a + w, a + 2 * w), a);
    down.set(up.subarray(a, a + w), a + w);
    down.set(up.subarray(l4 + 2, l4 + 4), l4);
    down.set(up.subarray(l4, l4 + 2), l4 + 2);
    return { up, down };
  });
}

const gc = (globalThis as { gc?: () => void }).gc;

/** ns per packet, best of three runs after a warm-up, and heap growth (bytes) of the last. */
function time(v6: boolean, now?: () => number): { ns: number; heap: number } {
  let lines = 0;
  const audit = new FlowAudit({ write: () => lines++, now });
  const tunnel = { id: "0123456789abcdef0123456789abcdef", principal: { arn: "arn:aws:iam::1:x" } };
  const mix = flows(v6);
  const packets = mix.flatMap(({ up, down }) => [up, up, down]);
  const dirs = mix.flatMap(() => ["up", "up", "down"] as const);
  let heap = 0;
  const run = () => {
    gc?.();
    const h0 = Deno.memoryUsage().heapUsed;
    const t0 = performance.now();
    for (let i = 0, j = 0; i < PACKETS_PER_RUN; i++, j = j + 1 === packets.length ? 0 : j + 1) {
      audit.packet(tunnel, packets[j], dirs[j], "allow");
    }
    const ns = ((performance.now() - t0) * 1e6) / PACKETS_PER_RUN;
    heap = Deno.memoryUsage().heapUsed - h0;
    return ns;
  };
  run();
  const ns = Math.min(run(), run(), run());
  if (audit.flows !== FLOWS) throw new Error(`expected ${FLOWS} flows, got ${audit.flows}`);
  audit.close();
  if (lines !== FLOWS) throw new Error(`expected ${FLOWS} lines, got ${lines}`);
  return { ns, heap };
}

const v4 = time(false);
const v6 = time(true);
const perPacket = time(false, Date.now);
const share = (ns: number) => `${((ns * RATE) / 1e7).toFixed(3)} %`;
console.log(`FlowAudit.packet, ${PACKET_BYTES}-byte TCP packets across ${FLOWS} known flows`);
console.log(`  IPv4: ${v4.ns.toFixed(1)} ns/packet (${share(v4.ns)} of a core at ${RATE} pps)`);
console.log(`  IPv6: ${v6.ns.toFixed(1)} ns/packet (${share(v6.ns)} of a core at ${RATE} pps)`);
console.log(`  IPv4, clock per packet: ${perPacket.ns.toFixed(1)} ns/packet`);
if (gc) {
  console.log(`  heap growth over ${PACKETS_PER_RUN} packets: v4 ${v4.heap} B, v6 ${v6.heap} B`);
}
console.log(JSON.stringify({
  bench: "audit",
  nsPerPacketV4: +v4.ns.toFixed(1),
  nsPerPacketV6: +v6.ns.toFixed(1),
  nsPerPacketV4ClockPerPacket: +perPacket.ns.toFixed(1),
  heapGrowthV4: gc ? v4.heap : null,
  heapGrowthV6: gc ? v6.heap : null,
}));
