/** The IPv6 fields of HELLO/WELCOME on the wire, and compatibility with older peers both ways. */
import assert from "node:assert/strict";
import {
  encodeHello,
  encodeWelcome,
  FEATURE_IPV6,
  FrameReader,
  FrameType,
  type Welcome,
  WireError,
} from "../../src/tunnel/wire.ts";
import { welcomeFor } from "../../agent/hello.ts";
import { hello } from "./helpers.ts";

const base: Welcome = {
  version: 1,
  address: "100.64.0.2",
  peer: "100.64.0.1",
  mtu: 1400,
  policy: { allow: ["0.0.0.0/0"], deny: [] },
  agent: "ssm-proxy-agent 1.0.0",
};

function decode(bytes: Uint8Array): Welcome {
  const [f] = new FrameReader().push(bytes);
  assert.ok(f.type === FrameType.Welcome);
  return f.welcome;
}

/** A WELCOME body as JSON text, as any agent version may write it. */
function raw(body: unknown): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(body));
  return new Uint8Array([FrameType.Welcome, 0, json.length >> 8, json.length & 0xff, ...json]);
}

Deno.test("wire: FEATURE_IPV6 is the string ipv6 and rides in hello.features", () => {
  assert.equal(FEATURE_IPV6, "ipv6");
  const [f] = new FrameReader().push(encodeHello(hello({ features: ["load", FEATURE_IPV6] })));
  assert.ok(f.type === FrameType.Hello);
  assert.deepEqual(f.hello.features, ["load", "ipv6"]);
});

Deno.test("wire: address6/peer6 and ipv6Off round-trip", () => {
  const on = { ...base, address6: "fd7a:5353:5d8b::2", peer6: "fd7a:5353:5d8b::1" };
  assert.deepEqual(decode(encodeWelcome(on)), on);
  const off = { ...base, ipv6Off: "the instance has no IPv6 address on ens5" };
  assert.deepEqual(decode(encodeWelcome(off)), off);
});

Deno.test("wire: an old agent's welcome (no IPv6 fields) still decodes, without them", () => {
  const w = decode(raw(base));
  assert.deepEqual(w, base);
  assert.ok(!("address6" in w) && !("peer6" in w) && !("ipv6Off" in w));
});

Deno.test("wire: an old client gets no IPv6 field; a new one asking gets exactly one kind", () => {
  const p = {
    version: 1,
    address: "100.64.0.2",
    agentAddress: "100.64.0.1",
    agentMtu: 1400,
    policy: base.policy,
    agentVersion: "1.0.0",
  };
  const old = welcomeFor(hello(), p);
  assert.deepEqual(Object.keys(old).sort(), [
    "address",
    "agent",
    "mtu",
    "peer",
    "policy",
    "version",
  ]);
  const on = welcomeFor(hello({ features: [FEATURE_IPV6] }), {
    ...p,
    ipv6: { address6: "fd7a:5353:5d8b::2", peer6: "fd7a:5353:5d8b::1" },
  });
  assert.deepEqual([on.address6, on.peer6, on.ipv6Off], [
    "fd7a:5353:5d8b::2",
    "fd7a:5353:5d8b::1",
    undefined,
  ]);
  const off = welcomeFor(hello({ features: [FEATURE_IPV6] }), { ...p, ipv6: { off: "why" } });
  assert.deepEqual([off.address6, off.peer6, off.ipv6Off], [undefined, undefined, "why"]);
  assert.ok(!("address6" in off));
  // The encoded frame is what the decoder of any version reads: JSON, unknown keys ignored.
  assert.deepEqual(decode(encodeWelcome(on)), on);
});

Deno.test("wire: malformed IPv6 welcome fields are protocol errors", () => {
  const bad: [unknown, RegExp][] = [
    [{ ...base, address6: "fd7a::2" }, /only one of address6 and peer6/],
    [{ ...base, peer6: "fd7a::1" }, /only one of address6 and peer6/],
    [{ ...base, address6: "100.64.0.2", peer6: "fd7a::1" }, /bad IPv6 addresses/],
    [{ ...base, address6: "fd7a::2", peer6: 7 }, /bad IPv6 addresses/],
    [{ ...base, ipv6Off: 1 }, /bad ipv6Off/],
    [{ ...base, address6: "fd7a::2", peer6: "fd7a::1", ipv6Off: "x" }, /both address6 and ipv6Off/],
  ];
  for (const [body, re] of bad) {
    assert.throws(() => decode(raw(body)), (e) => e instanceof WireError && re.test(e.message));
  }
});
