/**
 * The team's policy in agentless mode (issue 15): NetStackOptions.allowPacket judges every packet
 * from the kernel; a refused one is answered with ICMP administratively prohibited and never
 * opens a stream, an allowed one is served as before. Judged by the agent's compiled rules.
 */
import assert from "node:assert/strict";
import { compile } from "../../agent/rules_compile.ts";
import { type Dest, parseDest } from "../../agent/rules.ts";
import { parseCidr } from "../../agent/cidr.ts";
import { parseCidr6 } from "../../agent/cidr6.ts";
import { ACK, Harness, SYN, TUPLE4, TUPLE6 } from "./support/harness.ts";

const dest = (t: string) => parseDest(t) as Dest;
const decide = compile(
  {
    rules: [{ allow: [dest("10.200.0.0/24:443/tcp"), dest("[fd00:200::5]:443/tcp")], deny: [] }],
    requireIdentity: false,
  },
  undefined,
  { pool: parseCidr("198.18.0.0/30")!, pool6: parseCidr6("fd7a:5353:5d8b::/48")! },
);
const allowPacket = (p: Uint8Array) => decide(p) === "allow";

for (const family of [4, 6] as const) {
  const base = family === 4 ? TUPLE4 : TUPLE6;
  Deno.test(`policy v${family}: a SYN to a port the rules do not allow gets ICMP prohibited, no stream`, () => {
    const h = new Harness({ family, allowPacket });
    const out = h.send(h.seg({ flags: SYN, seq: 1000, window: 64240, mss: 1360 }));
    assert.equal(h.transport.opens.length, 0, "no session opened for a refused destination");
    assert.equal(out.length, 1);
    const icmp = out[0].raw!;
    // IPv4 ICMP 3/13 or ICMPv6 1/1, addressed back to the app.
    if (family === 4) assert.deepEqual([icmp[9], icmp[20], icmp[21]], [1, 3, 13]);
    else assert.deepEqual([icmp[6], icmp[40], icmp[41]], [58, 1, 1]);
    assert.equal(h.stack.stats().counters["refused-policy"], 1);
  });

  Deno.test(`policy v${family}: a SYN to an allowed port opens a stream as without a policy`, () => {
    const h = new Harness({ family, allowPacket });
    const t = { ...base, remotePort: 443 };
    assert.deepEqual(h.send(h.seg({ flags: SYN, seq: 1000, window: 64240, mss: 1360 }, t)), []);
    assert.equal(h.transport.opens.length, 1);
    assert.equal(h.transport.last.dst.port, 443);
    h.transport.last.resolve("ok");
    const synAck = h.flush();
    assert.equal(synAck.length, 1);
    assert.equal(synAck[0].flags, SYN | ACK);
    assert.equal(h.stack.stats().counters["refused-policy"], undefined);
  });
}
