/**
 * agent/icmp_reject.ts: golden bytes laid out by hand from RFC 792/4443, the RFC 1122 / RFC 4443
 * cases where no error may be sent, properties over any bytes, the rate limit, and the Linux
 * kernel taking the answers: this file is also the script the kernel test runs inside a network
 * namespace (import.meta.main), where sockets that sent the denied packets must see the error.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { adminProhibited } from "../../agent/icmp_reject.ts";
import { linuxPlatform } from "../../src/net/linux.ts";
import type { Tun } from "../../src/net/types.ts";
import { ip } from "../support/netns.ts";
import { kernelScenarioTest, openScenarioTun } from "../support/icmp_packets.ts";
import {
  arbV4,
  arbV6,
  buildV4,
  buildV6,
  bytes6,
  checksum6Ok,
  checksums4Ok,
  ConnectedUdp,
  forbidden4,
  forbidden6,
  onesSum,
  type V4Spec,
  type V6Spec,
} from "../support/icmp_packets.ts";

const FROM4 = 0x64400001; // 100.64.0.1, the agent's tun address
const FROM6 = bytes6("fd00:64::1");
const hex = (s: string) =>
  Uint8Array.from(s.replace(/\s+/g, "").match(/../g)!, (h) => parseInt(h, 16));

// 100.64.0.2:40000 → 10.0.9.5:5432 UDP "hi": IP checksum b154, UDP checksum 6eb1.
const ORIG4 = hex("4500 001e 1234 4000 4011 b154 6440 0002 0a00 0905  9c40 1538 000a 6eb1 6869");
// [fd00:64::2]:40000 → [fd00:9::5]:5432 UDP "hi": UDP checksum eb82.
const ORIG6 = hex(`6000 0000 000a 1140 fd00 0064 0000 0000 0000 0000 0000 0002
  fd00 0009 0000 0000 0000 0000 0000 0005  9c40 1538 000a eb82 6869`);

Deno.test("icmp reject: IPv4 golden bytes (RFC 792 type 3 code 13, RFC 1812 §4.3.2.5)", () => {
  assert.equal(onesSum(ORIG4.subarray(0, 20)), 0xffff);
  const expected = hex(`
    45 c0 003a  0000 4000  40 01 7180  6440 0001  6440 0002
    03 0d 7455  0000 0000`);
  const out = adminProhibited(ORIG4, FROM4, FROM6);
  assert.deepEqual(out, Uint8Array.of(...expected, ...ORIG4));
  // The hand-written checksums, recomputed with a sum that shares no code with the agent's.
  assert.equal(onesSum(out!.subarray(0, 20)), 0xffff);
  assert.equal(onesSum(out!.subarray(20)), 0xffff);
});

Deno.test("icmp reject: IPv6 golden bytes (RFC 4443 §3.1 type 1 code 1)", () => {
  const expected = hex(`
    6000 0000 003a 3a40  fd00 0064 0000 0000 0000 0000 0000 0001
    fd00 0064 0000 0000 0000 0000 0000 0002  01 01 928e 0000 0000`);
  const out = adminProhibited(ORIG6, FROM4, FROM6);
  assert.deepEqual(out, Uint8Array.of(...expected, ...ORIG6));
  // Pseudo-header: source, destination, 32-bit length 58, three zeros, next header 58.
  const pseudo = Uint8Array.of(...out!.subarray(8, 40), 0, 0, 0, 58, 0, 0, 0, 58);
  assert.equal(onesSum(pseudo, out!.subarray(40)), 0xffff);
  assert.equal(adminProhibited(ORIG6, FROM4, undefined), undefined, "no IPv6 address: no answer");
});

Deno.test("icmp reject: the quote stops at 576 bytes (IPv4) and 1280 (IPv6)", () => {
  const big4 = buildV4({ ...base4, proto: 17, l4: new Uint8Array(1480).fill(7) });
  const a4 = adminProhibited(big4, FROM4, FROM6)!;
  assert.equal(a4.length, 576);
  assert.deepEqual(a4.subarray(28), big4.subarray(0, 548));
  assert.ok(checksums4Ok(a4));
  const big6 = buildV6({ ...base6, nh: 17, l4: new Uint8Array(1960).fill(9) });
  const a6 = adminProhibited(big6, FROM4, FROM6)!;
  assert.equal(a6.length, 1280);
  assert.equal((a6[4] << 8) | a6[5], 1240);
  assert.deepEqual(a6.subarray(48), big6.subarray(0, 1232));
  assert.ok(checksum6Ok(a6));
  // Link padding past the total length is not the packet's.
  const padded = Uint8Array.of(...ORIG4, 0, 0, 0);
  assert.deepEqual(adminProhibited(padded, FROM4, FROM6), adminProhibited(ORIG4, FROM4, FROM6));
});

const base4: V4Spec = {
  words: 5,
  id: 1,
  mf: false,
  frag: 0,
  proto: 17,
  src: [100, 64, 0, 2],
  dst: [10, 0, 9, 5],
  l4: new Uint8Array(12),
  badChecksum: false,
  pad: new Uint8Array(0),
  cut: null,
};
const base6: V6Spec = {
  src: bytes6("fd00:64::2"),
  dst: bytes6("fd00:9::5"),
  ext: [],
  nh: 6,
  l4: new Uint8Array(20),
  pad: new Uint8Array(0),
  cut: null,
};

Deno.test("icmp reject: IPv4 packets that get no answer (RFC 1122 §3.2.2)", () => {
  const none = (what: string, p: Uint8Array) =>
    assert.equal(adminProhibited(p, FROM4, FROM6), undefined, what);
  const some = (what: string, p: Uint8Array) => assert.ok(adminProhibited(p, FROM4, FROM6), what);
  for (const t of [3, 4, 5, 11, 12]) none(`ICMP error type ${t}`, v4({ proto: 1, l4: icmp(t) }));
  for (const t of [0, 8, 13]) some(`ICMP query type ${t}`, v4({ proto: 1, l4: icmp(t) }));
  none("ICMP without a header", v4({ proto: 1, l4: new Uint8Array(0) }));
  none("a non-first fragment", v4({ frag: 185 }));
  none("a non-first fragment, last", v4({ frag: 1, mf: true }));
  some("a first fragment", v4({ mf: true }));
  for (const src of [[0, 0, 0, 0], [0, 1, 2, 3], [127, 0, 0, 1], [224, 0, 0, 1], [240, 1, 1, 1]]) {
    none(`source ${src}`, v4({ src }));
  }
  none("source broadcast", v4({ src: [255, 255, 255, 255] }));
  for (const dst of [[224, 0, 0, 251], [239, 255, 255, 250], [255, 255, 255, 255]]) {
    none(`destination ${dst}`, v4({ dst }));
  }
  some(
    "destination 10.255.255.255 (a subnet broadcast is not known here)",
    v4({
      dst: [10, 255, 255, 255],
    }),
  );
  none("bad header checksum", v4({ badChecksum: true }));
  none("truncated", ORIG4.subarray(0, 29));
  none("shorter than a header", ORIG4.subarray(0, 19));
  none("empty", new Uint8Array(0));
  const ihl4 = ORIG4.slice();
  ihl4[0] = 0x44;
  none("IHL 4", ihl4);
  const v5 = ORIG4.slice();
  v5[0] = 0x55;
  none("version 5", v5);
  none("total length below the header", withTotal(ORIG4, 16));
  none("total length past the bytes", withTotal(ORIG4, 31));
  some("total length short of the bytes (padding)", withTotal(ORIG4, 29));
  some("options", v4({ words: 15 }));
});

Deno.test("icmp reject: IPv6 packets that get no answer (RFC 4443 §2.4(e))", () => {
  const none = (what: string, p: Uint8Array) =>
    assert.equal(adminProhibited(p, FROM4, FROM6), undefined, what);
  const some = (what: string, p: Uint8Array) => assert.ok(adminProhibited(p, FROM4, FROM6), what);
  for (const t of [1, 2, 3, 4, 127]) none(`ICMPv6 error ${t}`, v6({ nh: 58, l4: icmp(t) }));
  none("ICMPv6 redirect", v6({ nh: 58, l4: icmp(137) }));
  some("ICMPv6 echo request", v6({ nh: 58, l4: icmp(128) }));
  none(
    "ICMPv6 error behind extension headers",
    v6({
      ext: [{ nh: 0, units: 0 }, { nh: 60, units: 1 }],
      nh: 58,
      l4: icmp(1),
    }),
  );
  none("a non-first fragment", v6({ ext: [{ nh: 44, offset: 1 }] }));
  none(
    "a non-first fragment behind options",
    v6({
      ext: [{ nh: 0, units: 0 }, { nh: 43, units: 0 }, { nh: 44, offset: 200 }],
    }),
  );
  some("a first fragment", v6({ ext: [{ nh: 44, offset: 0 }] }));
  some("behind AH", v6({ ext: [{ nh: 51, units: 4 }] }));
  for (const src of ["::", "::1", "ff02::1", "ff0e::1"]) {
    none(`source ${src}`, v6({ src: bytes6(src) }));
  }
  some("source fe80::1", v6({ src: bytes6("fe80::1") }));
  for (const dst of ["ff02::1", "ff05::1:3"]) none(`destination ${dst}`, v6({ dst: bytes6(dst) }));
  none("payload length 0 (jumbogram)", v6({ nh: 59, l4: new Uint8Array(0) }));
  none("truncated", ORIG6.subarray(0, 49));
  none("shorter than a header", ORIG6.subarray(0, 39));
  // A hop-by-hop header claiming 16 bytes where 8 are left.
  const over = v6({ ext: [{ nh: 0, units: 0 }], l4: new Uint8Array(0) });
  over[41] = 1;
  none("an extension header past the payload", over);
});

Deno.test("icmp reject (property): any bytes never throw; answers are bounded and checksummed", () => {
  fc.assert(
    fc.property(
      fc.oneof(fc.uint8Array({ maxLength: 1600 }), arbV4.map(buildV4), arbV6.map(buildV6)),
      (p) => {
        const out = adminProhibited(p, FROM4, FROM6);
        if (!out) return;
        if (out[0] >> 4 === 4) {
          assert.ok(out.length <= 576 && checksums4Ok(out));
          assert.deepEqual(out.subarray(28), p.subarray(0, out.length - 28));
        } else {
          assert.ok(out.length <= 1280 && checksum6Ok(out));
          assert.deepEqual(out.subarray(48), p.subarray(0, out.length - 48));
        }
      },
    ),
    { numRuns: 2000 },
  );
});

Deno.test("icmp reject (property): IPv4 answered exactly when RFC 1122 allows it", () => {
  fc.assert(
    fc.property(arbV4, (s) => {
      const p = buildV4(s);
      const out = adminProhibited(p, FROM4, FROM6);
      assert.equal(out === undefined, forbidden4(s));
      if (!out) return;
      const total = s.words * 4 + s.l4.length;
      assert.equal(out.length, 28 + Math.min(total, 548));
      assert.deepEqual([...out.subarray(12, 20)], [100, 64, 0, 1, ...s.src]);
      assert.deepEqual([out[8], out[9], out[20], out[21]], [64, 1, 3, 13]);
      assert.deepEqual(out.subarray(28), p.subarray(0, out.length - 28));
      assert.ok(checksums4Ok(out));
    }),
    { numRuns: 2000 },
  );
});

Deno.test("icmp reject (property): IPv6 answered exactly when RFC 4443 allows it", () => {
  fc.assert(
    fc.property(arbV6, (s) => {
      const p = buildV6(s);
      const out = adminProhibited(p, FROM4, FROM6);
      assert.equal(out === undefined, forbidden6(s));
      if (!out) return;
      const total = 40 + ((p[4] << 8) | p[5]);
      assert.equal(out.length, 48 + Math.min(total, 1232));
      assert.deepEqual(out.subarray(8, 24), FROM6);
      assert.deepEqual(out.subarray(24, 40), s.src);
      assert.deepEqual([out[6], out[7], out[40], out[41]], [58, 64, 1, 1]);
      assert.deepEqual(out.subarray(48), p.subarray(0, out.length - 48));
      assert.ok(checksum6Ok(out));
    }),
    { numRuns: 2000 },
  );
});

function v4(o: Partial<V4Spec>): Uint8Array {
  return buildV4({ ...base4, ...o });
}

function v6(o: Partial<V6Spec>): Uint8Array {
  return buildV6({ ...base6, ...o });
}

/** `p` with another total length and the header checksum made right again. */
function withTotal(p: Uint8Array, total: number): Uint8Array {
  const q = p.slice();
  const v = new DataView(q.buffer);
  v.setUint16(2, total);
  v.setUint16(10, 0);
  v.setUint16(10, ~onesSum(q.subarray(0, 20)) & 0xffff);
  return q;
}

function icmp(type: number): Uint8Array {
  return Uint8Array.of(type, 0, 0, 0, 0, 0, 0, 0);
}

// ---- the kernel takes the answers (run inside a namespace) -----------------------------------

const EHOSTUNREACH = 113;
const EACCES = 13;

/** The first packet of `proto` to `dst` the kernel routes into the tun. */
async function capture(tun: Tun, dst: Uint8Array, proto: number): Promise<Uint8Array> {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    for (const p of await tun.read(200)) {
      const v6 = p[0] >> 4 === 6;
      const [pr, d] = v6 ? [p[6], p.subarray(24, 40)] : [p[9], p.subarray(16, 20)];
      if (pr === proto && d.every((b, i) => b === dst[i])) return p;
    }
  }
  throw new Error(`no packet to ${dst} (protocol ${proto}) reached the tun`);
}

async function kernel(): Promise<void> {
  const net = linuxPlatform();
  const tun = await openScenarioTun();
  try {
    await net.routes.add("10.0.9.0/24", tun.name);
    await ip("-6", "route", "add", "fd00:9::/64", "dev", tun.name);
    for (
      const [dst, err] of [[Uint8Array.of(10, 0, 9, 5), EHOSTUNREACH], [
        bytes6("fd00:9::5"),
        EACCES,
      ]] as const
    ) {
      // UDP: the connected socket's pending error is the ICMP's, mapped as Linux maps it.
      const sock = new ConnectedUdp(dst, 5432);
      try {
        sock.send(new TextEncoder().encode("hello"));
        const sent = await capture(tun, dst, 17);
        const answer = adminProhibited(sent, FROM4, FROM6)!;
        // A wrong checksum must be dropped, or this test would show nothing about ours.
        const broken = answer.slice();
        broken[broken.length - 1] ^= 0x55;
        assert.equal(tun.write(broken), true);
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(sock.pendingError(), 0, `the kernel took a corrupted answer (${dst.length})`);
        assert.equal(tun.write(answer), true);
        const deadline = Date.now() + 3000;
        let got = 0;
        while (got === 0 && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 20));
          got = sock.pendingError();
        }
        assert.equal(got, err, `UDP to ${dst.length === 4 ? "10.0.9.5" : "fd00:9::5"}`);
      } finally {
        sock.close();
      }
      // TCP: connect() fails at once rather than retrying its SYN for two minutes.
      const t0 = Date.now();
      const host = dst.length === 4 ? "10.0.9.5" : "fd00:9::5";
      const conn = Deno.connect({ hostname: host, port: 5433 });
      conn.then((c) => c.close(), () => {});
      const syn = await capture(tun, dst, 6);
      assert.equal(tun.write(adminProhibited(syn, FROM4, FROM6)!), true);
      const re = err === EACCES ? /os error 13|permission denied/i : /os error 113|no route/i;
      await assert.rejects(conn, re);
      assert.ok(Date.now() - t0 < 3000, `connect to ${host} took ${Date.now() - t0} ms to fail`);
    }
  } finally {
    tun.close();
  }
  console.log("kernel ok");
}

if (import.meta.main && Deno.args[0] === "kernel") await kernel();

kernelScenarioTest(
  "icmp reject: the Linux kernel reports the answers to the sockets that sent the packets",
  "icmp",
  import.meta.url,
);
