/**
 * The emulated agent's refusal of reserved destinations in remote-host Port sessions
 * (specs/ssm-protocol.md §8; amazon-ssm-agent agent/session/plugins/port/port.go): the
 * `Mgs.DeniedPortForwardingRemoteIPs` list and the VPC's first four and last addresses, checked
 * on the host as requested (before the destination map), after the handshake; the session then
 * ends with channel_closed carrying "Forwarding to IP address <host> is forbidden.".
 */
import assert from "node:assert/strict";
import {
  checkForbidden,
  DEFAULT_DENIED_PORT_FORWARDING_REMOTE_IPS,
  type InstanceFacts,
  vpcReservedAddresses,
} from "../../src/emulator/agent/forbidden.ts";
import { CLOSE_DRAIN_MS } from "../../src/emulator/agent/session.ts";
import { destinationMap } from "../../src/emulator/destinations.ts";
import { FixtureError, parseFixtures } from "../../src/emulator/fixtures.ts";
import { startEmulator as startServer } from "../../src/emulator/server.ts";
import { MessageType, PayloadType } from "../../src/ssm/message.ts";
import { PortSession } from "../../src/ssm/session.ts";
import { Cmd, encodeFrame } from "../../src/ssm/smux_frame.ts";
import {
  echoServer,
  type Env,
  handshakeResponse,
  json,
  MuxClient,
  randomBytes,
  startEmulator,
  TestClient,
} from "./harness.ts";

const INSTANCE = "i-0123456789abcdef0";
const REMOTE = "AWS-StartPortForwardingSessionToRemoteHost";
const remote = (host: string, port: number) => ({ host: [host], portNumber: [String(port)] });
const VPC: InstanceFacts = { vpcCidrs: { ipv4: ["10.99.0.0/16"], ipv6: [] } };

// ---- the rule, pure ----------------------------------------------------------------------------

Deno.test("forbidden: the default list is the agent's DefaultDeniedPortForwardingRemoteIPs", () => {
  assert.deepEqual(DEFAULT_DENIED_PORT_FORWARDING_REMOTE_IPS, [
    "169.254.169.254",
    "fd00:ec2::254",
    "169.254.169.253",
    "fd00:ec2::253",
    "169.254.169.123",
    "fd00:ec2::123",
    "169.254.169.250",
    "169.254.169.251",
    "fd00:ec2::240",
  ]);
});

Deno.test("forbidden: VPC addresses are the first four and the broadcast (agent's own vector)", () => {
  // TestCalculateAddressMethod in port_test.go.
  assert.deepEqual(
    vpcReservedAddresses({ ipv4: ["172.31.0.0/16"], ipv6: ["2600:1f18:64ad::/56"] }),
    [
      "172.31.0.0",
      "172.31.0.1",
      "172.31.0.2",
      "172.31.0.3",
      "172.31.255.255",
      "2600:1f18:64ad::",
      "2600:1f18:64ad::1",
      "2600:1f18:64ad::2",
      "2600:1f18:64ad::3",
      "2600:1f18:64ad:ff:ffff:ffff:ffff:ffff",
    ],
  );
  assert.deepEqual(vpcReservedAddresses({ ipv4: ["10.99.16.0/20"], ipv6: [] }), [
    "10.99.16.0",
    "10.99.16.1",
    "10.99.16.2",
    "10.99.16.3",
    "10.99.31.255",
  ]);
  // What IMDS gives when there is no IPv6 block (""), or several on separate lines: skipped.
  assert.deepEqual(
    vpcReservedAddresses({ ipv4: ["", "nonsense"], ipv6: ["2600::/56\n2601::/56"] }),
    [],
  );
});

Deno.test("forbidden: resolved addresses are compared as IPs; the message names the host asked for", () => {
  const rule = {
    denied: DEFAULT_DENIED_PORT_FORWARDING_REMOTE_IPS,
    vpc: vpcReservedAddresses(VPC.vpcCidrs!),
  };
  const no = (host: string, resolved = [host]) =>
    assert.equal(checkForbidden(host, resolved, rule), undefined, host);
  const yes = (host: string, resolved = [host]) =>
    assert.equal(
      checkForbidden(host, resolved, rule),
      `Forwarding to IP address ${host} is forbidden.`,
    );
  for (const h of ["169.254.169.254", "169.254.169.123", "fd00:ec2::254", "FD00:EC2:0::240"]) {
    yes(h);
  }
  for (const h of ["10.99.0.0", "10.99.0.1", "10.99.0.2", "10.99.0.3", "10.99.255.255"]) yes(h);
  // Go's IP.Equal: an IPv4-mapped IPv6 address is the IPv4 address.
  yes("::ffff:169.254.169.254");
  yes("::ffff:10.99.0.2");
  for (const h of ["10.99.0.4", "10.99.255.254", "169.254.169.252", "127.0.0.1", "::1"]) no(h);
  // A name: any of its addresses matching refuses it, and the message keeps the name.
  yes("metadata.example", ["192.0.2.1", "169.254.169.254"]);
  no("nothing.example", []);
  // Entries that are not IP addresses never match; leading zeros are not an address to Go.
  assert.equal(
    checkForbidden("10.0.0.1", ["10.0.0.1"], { denied: ["10.0.0.1/32"], vpc: [] }),
    undefined,
  );
  assert.equal(
    checkForbidden("10.0.0.1", ["10.0.0.1"], { denied: ["010.0.0.1"], vpc: [] }),
    undefined,
  );
  // Loopback, only when asked for (newer agents).
  const loop = { denied: [], vpc: [], loopback: true };
  for (const h of ["127.0.0.1", "127.0.0.53", "::1", "::ffff:127.0.0.1"]) {
    assert.ok(checkForbidden(h, [h], loop), h);
  }
  assert.equal(
    checkForbidden("localhost", ["127.0.0.1"], loop),
    "Forwarding to IP address localhost is forbidden.",
  );
  assert.equal(checkForbidden("10.0.0.1", ["10.0.0.1"], loop), undefined);
});

// ---- the emulated agent --------------------------------------------------------------------------

const env = startEmulator;

/** channel_closed's JSON, once it arrives. */
async function channelClosed(c: TestClient, timeoutMs = 5000): Promise<Record<string, unknown>> {
  const m = await c.waitFor((m) => m.messageType === MessageType.ChannelClosed, {
    timeoutMs,
    what: "channel_closed",
  });
  return json(m.payload);
}

/** Starts a remote-host session, completes the handshake and expects it refused for `host`. */
async function refused(
  e: Env,
  host: string,
  port = 80,
  clientVersion?: string,
): Promise<TestClient> {
  const grant = e.registry.start(INSTANCE, REMOTE, remote(host, port));
  const c = e.connect(grant);
  // The check runs after the handshake: the client sees HandshakeComplete first.
  await c.handshake(clientVersion);
  const closed = await channelClosed(c);
  const message = `Forwarding to IP address ${host} is forbidden.`;
  assert.equal(closed.Output, message);
  assert.equal(closed.SessionId, grant.SessionId);
  const s = e.registry.get(grant.SessionId)!;
  assert.equal(s.state, "terminated");
  assert.equal(s.endReason, message);
  // No Output (smux) or Flag ever came from the agent.
  assert.ok(!c.delivered.some((m) => m.payloadType === PayloadType.Output));
  assert.ok(!c.delivered.some((m) => m.payloadType === PayloadType.Flag));
  return c;
}

async function echoes(e: Env, host: string, port: number): Promise<void> {
  const c = e.connect(e.registry.start(INSTANCE, REMOTE, remote(host, port)));
  await c.handshake();
  const mux = new MuxClient(c);
  const sid = mux.open();
  const data = randomBytes(3000);
  mux.write(sid, data);
  await c.until(() => mux.receivedLength(sid) === data.length, 5000, `echo via ${host}`);
  assert.deepEqual(mux.received(sid), data);
}

Deno.test("forbidden: IMDS is refused after the handshake, before the destination map", async () => {
  const echo = echoServer();
  // Mapped to a live server: if the agent dialled, the echo server would see it.
  const e = env({
    agent: {
      destinations: destinationMap({
        "169.254.169.254:80": `127.0.0.1:${echo.port}`,
        "[fd00:ec2::254]:80": `127.0.0.1:${echo.port}`,
      }),
    },
  });
  await refused(e, "169.254.169.254");
  await refused(e, "fd00:ec2::254");
  await refused(e, "::ffff:169.254.169.254");
  assert.equal(echo.accepted, 0);
  assert.ok(
    e.logs.some((l) => l.endsWith("Forwarding to IP address 169.254.169.254 is forbidden.")),
  );
  await e.close();
  await echo.close();
});

Deno.test("forbidden: the VPC's first four and last addresses, from the instance's facts", async () => {
  const echo = echoServer();
  const e = env({
    agent: {
      instanceFacts: (target) => target === INSTANCE ? VPC : undefined,
      destinations: destinationMap({
        "10.99.0.2:53": `127.0.0.1:${echo.port}`,
        "10.99.0.4:80": `127.0.0.1:${echo.port}`,
        "10.99.255.254:80": `127.0.0.1:${echo.port}`,
      }),
    },
  });
  for (const h of ["10.99.0.0", "10.99.0.1", "10.99.0.3", "10.99.255.255"]) await refused(e, h);
  await refused(e, "10.99.0.2", 53);
  await echoes(e, "10.99.0.4", 80);
  await echoes(e, "10.99.255.254", 80);
  assert.equal(echo.accepted, 2);
  // Another instance: no facts, so no VPC addresses are refused (the map sends it to the echo).
  const other = e.connect(e.registry.start("i-0bbbbbbbbbbbbbbb1", REMOTE, remote("10.99.0.2", 53)));
  await other.handshake();
  const mux = new MuxClient(other);
  const sid = mux.open();
  mux.write(sid, randomBytes(10));
  await other.until(() => mux.receivedLength(sid) === 10, 5000, "echo from the other instance");
  assert.equal(echo.accepted, 3);
  await e.close();
  await echo.close();
});

Deno.test("forbidden: basic mode (an old client) is refused the same way, nothing dialled", async () => {
  const echo = echoServer();
  const e = env({
    agent: { destinations: destinationMap({ "169.254.169.123:123": `127.0.0.1:${echo.port}` }) },
  });
  await refused(e, "169.254.169.123", 123, "1.0.0.0");
  assert.equal(echo.accepted, 0);
  await e.close();
  await echo.close();
});

Deno.test("forbidden: a name is resolved first; one that does not resolve is not checked", async () => {
  const echo = echoServer();
  const e = env({ agent: { deniedPortForwardingRemoteIPs: ["127.0.0.1", "::1"] } });
  // localhost resolves (/etc/hosts) to a denied address: refused, named as asked.
  await refused(e, "localhost", echo.port);
  // The same list does not apply to the localhost document: it has no host.
  const local = e.connect(e.start(echo.port));
  await local.handshake();
  const mux = new MuxClient(local);
  const sid = mux.open();
  mux.write(sid, randomBytes(100));
  await local.until(() => mux.receivedLength(sid) === 100, 5000, "local echo");
  // A name that does not resolve: no check, the session stays; the dial fails per stream.
  const grant = e.registry.start(INSTANCE, REMOTE, remote("no-such-host.invalid", 80));
  const c = e.connect(grant);
  await c.handshake();
  const m2 = new MuxClient(c);
  const s2 = m2.open();
  await c.until(() => m2.fins.has(s2), 5000, "FIN");
  assert.deepEqual(
    c.delivered.filter((m) => m.payloadType === PayloadType.Flag).map((m) => [...m.payload]),
    [[0, 0, 0, 3]],
  );
  assert.equal(e.registry.get(grant.SessionId)?.state, "open");
  await e.close();
  await echo.close();
});

Deno.test("forbidden: loopback is refused only with denyLoopbackRemoteHost", async () => {
  const echo = echoServer();
  const off = env();
  await echoes(off, "127.0.0.1", echo.port);
  await off.close();
  const on = env({ agent: { denyLoopbackRemoteHost: true } });
  await refused(on, "127.0.0.1", echo.port);
  await refused(on, "127.0.0.53", 53);
  await refused(on, "localhost", echo.port);
  assert.equal(echo.accepted, 1);
  await on.close();
  await echo.close();
});

Deno.test("forbidden: input before the end is refused unacked; channel_closed waits for the ack of HandshakeComplete", async () => {
  const e = env();
  const grant = e.registry.start(INSTANCE, REMOTE, remote("169.254.169.254", 80));
  const c = e.connect(grant, { autoAck: false });
  const req = await c.waitFor((m) => m.payloadType === PayloadType.HandshakeRequest);
  c.ack(req);
  c.sendInput(PayloadType.HandshakeResponse, handshakeResponse("1.2.764.0"));
  await c.waitFor((m) => m.payloadType === PayloadType.HandshakeComplete);
  const at = Date.now();
  // A SYN right away, as a client opening a stream does: the agent has no port side yet.
  const syn = c.sendInput(PayloadType.Output, encodeFrame(Cmd.SYN, 3));
  const closed = await channelClosed(c, CLOSE_DRAIN_MS + 2000);
  const waited = Date.now() - at;
  assert.equal(closed.Output, "Forwarding to IP address 169.254.169.254 is forbidden.");
  // HandshakeComplete was never acked: the agent gave up waiting after CLOSE_DRAIN_MS.
  assert.ok(waited >= CLOSE_DRAIN_MS - 150, `channel_closed after ${waited} ms`);
  const acked = c.all.filter((m) => m.messageType === MessageType.Acknowledge)
    .map((m) => json(m.payload).AcknowledgedMessageSequenceNumber);
  assert.deepEqual(acked, [0], "only the HandshakeResponse is acked, not the SYN");
  assert.equal(Number(syn.sequenceNumber), 1);
  await e.close();
});

Deno.test("forbidden: with the ack, channel_closed follows HandshakeComplete at once", async () => {
  const e = env();
  const c = e.connect(e.registry.start(INSTANCE, REMOTE, remote("169.254.169.254", 80)));
  await c.handshake();
  const at = Date.now();
  await channelClosed(c);
  assert.ok(Date.now() - at < 1000);
  await e.close();
});

Deno.test("forbidden: the client's PortSession opens, then ends closed with the agent's message", async () => {
  const e = env();
  const g = e.registry.start(INSTANCE, REMOTE, remote("169.254.169.254", 80));
  const s = await PortSession.open({
    grant: { sessionId: g.SessionId, streamUrl: g.StreamUrl, tokenValue: g.TokenValue },
    api: {
      resume: (id) => Promise.resolve({ tokenValue: e.registry.resume(id)?.TokenValue ?? "" }),
      terminate: (id) => Promise.resolve(void e.registry.terminate(id)),
    },
  });
  // open() resolves at HandshakeComplete, as with the real agent; a stream opened now dies.
  const ended = Promise.withResolvers<boolean>();
  s.openStream({ data: () => {}, end: (refusedByAgent) => ended.resolve(refusedByAgent) });
  const end = await s.ended;
  assert.deepEqual(end, {
    kind: "closed",
    message:
      `session ${g.SessionId} closed by AWS: Forwarding to IP address 169.254.169.254 is forbidden.`,
  });
  assert.equal(s.endReason, end.message);
  assert.equal(await ended.promise, false, "the stream ends as aborted, not as refused");
  await s.terminate();
  await e.close();
});

// ---- the fixtures --------------------------------------------------------------------------------

Deno.test("forbidden: the server takes each instance's VPC and denied list from the fixtures", async () => {
  const echo = echoServer();
  const fixtures = parseFixtures(
    [
      "instances:",
      "  - id: i-0123456789abcdef0",
      "  - id: i-0aaaaaaaaaaaaaaa1",
      "    deniedPortForwardingRemoteIPs: []",
      "  - id: i-0aaaaaaaaaaaaaaa2",
      "    vpc: vpc-0b",
      "    deniedPortForwardingRemoteIPs: ['192.0.2.7']",
      "  - id: mi-0123456789abcdef0",
      "vpcs:",
      "  - id: vpc-0a1b2c3d",
      "    cidr: 10.99.0.0/16",
      "  - id: vpc-0b",
      "    cidr: 172.31.0.0/16",
    ].join("\n"),
  );
  const emu = await startServer({
    port: 0,
    pacing: false,
    fixtures,
    destinations: {
      "169.254.169.254:80": `127.0.0.1:${echo.port}`,
      "10.99.0.2:53": `127.0.0.1:${echo.port}`,
      "192.0.2.7:80": `127.0.0.1:${echo.port}`,
    },
  });
  const clients: TestClient[] = [];
  const session = async (target: string, host: string, port: number) => {
    const c = TestClient.connect(emu.registry.start(target, REMOTE, remote(host, port)));
    clients.push(c);
    await c.handshake();
    return c;
  };
  const isRefused = async (target: string, host: string, port: number) => {
    const c = await session(target, host, port);
    assert.equal(
      (await channelClosed(c)).Output,
      `Forwarding to IP address ${host} is forbidden.`,
      `${target} ${host}`,
    );
  };
  const isAllowed = async (target: string, host: string, port: number) => {
    const c = await session(target, host, port);
    const mux = new MuxClient(c);
    const sid = mux.open();
    mux.write(sid, randomBytes(10));
    await c.until(() => mux.receivedLength(sid) === 10, 5000, `${target} ${host}`);
  };
  try {
    // The default instance: the agent's list and VPC 10.99.0.0/16.
    await isRefused("i-0123456789abcdef0", "169.254.169.254", 80);
    await isRefused("i-0123456789abcdef0", "10.99.0.2", 53);
    // An empty list leaves only the VPC's addresses.
    await isAllowed("i-0aaaaaaaaaaaaaaa1", "169.254.169.254", 80);
    await isRefused("i-0aaaaaaaaaaaaaaa1", "10.99.0.2", 53);
    // Its own list and its own VPC (172.31.0.0/16, so 10.99.0.2 is an ordinary address).
    await isRefused("i-0aaaaaaaaaaaaaaa2", "192.0.2.7", 80);
    await isRefused("i-0aaaaaaaaaaaaaaa2", "172.31.0.2", 53);
    await isAllowed("i-0aaaaaaaaaaaaaaa2", "169.254.169.254", 80);
    await isAllowed("i-0aaaaaaaaaaaaaaa2", "10.99.0.2", 53);
    // A hybrid node has no IMDS: no VPC addresses, the default list still.
    await isAllowed("mi-0123456789abcdef0", "10.99.0.2", 53);
    await isRefused("mi-0123456789abcdef0", "169.254.169.254", 80);
    assert.equal(echo.accepted, 4);
  } finally {
    for (const c of clients) await c.close();
    await emu.close();
    await echo.close();
  }
});

Deno.test("forbidden: a denied list entry that is not an IP address is a fixtures error", () => {
  for (const bad of ["169.254.169.0/24", "metadata.internal", "010.0.0.1"]) {
    assert.throws(
      () =>
        parseFixtures(
          `instances:\n  - id: i-0123456789abcdef0\n    deniedPortForwardingRemoteIPs: ["${bad}"]\n`,
          "f.yaml",
        ),
      (e: Error) =>
        e instanceof FixtureError &&
        e.message.includes("instances[0].deniedPortForwardingRemoteIPs[0]") &&
        e.message.includes(`"${bad}" is not an IP address`),
      bad,
    );
  }
  const f = parseFixtures(
    "instances:\n  - id: i-0123456789abcdef0\n    deniedPortForwardingRemoteIPs: ['fd00:ec2::254']\n",
  );
  assert.deepEqual(f.instances[0].deniedPortForwardingRemoteIPs, ["fd00:ec2::254"]);
  assert.equal(
    parseFixtures("account: '123456789012'\n").instances[0].deniedPortForwardingRemoteIPs,
    undefined,
  );
});
