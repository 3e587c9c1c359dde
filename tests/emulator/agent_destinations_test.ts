/**
 * Where the emulated agent dials a Port session's destination: the destination map (a VPC
 * address served by a local service), remote hosts as IPv4 and IPv6 literals, and refusals
 * (ConnectToPortError then FIN, specs/ssm-protocol.md §8).
 */
import assert from "node:assert/strict";
import { destinationMap } from "../../src/emulator/destinations.ts";
import { parseFixtures } from "../../src/emulator/fixtures.ts";
import { startEmulator as startServer } from "../../src/emulator/server.ts";
import { PayloadType } from "../../src/ssm/message.ts";
import {
  closedPort,
  echoServer,
  enc,
  MuxClient,
  randomBytes,
  startEmulator,
  TestClient,
} from "./harness.ts";

const REMOTE = "AWS-StartPortForwardingSessionToRemoteHost";

const remote = (host: string, port: number) => ({ host: [host], portNumber: [String(port)] });

/** Writes `data` on a new stream and waits for all of it to come back. */
async function echoes(mux: MuxClient, data = randomBytes(5000)): Promise<void> {
  const sid = mux.open();
  mux.write(sid, data);
  await mux.c.until(() => mux.receivedLength(sid) === data.length, 5000, "echo");
  assert.deepEqual(mux.received(sid), data);
}

const flags = (c: TestClient) =>
  c.delivered.filter((m) => m.payloadType === PayloadType.Flag).map((m) => [...m.payload]);

const ipv6Loopback = (() => {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
    return true;
  } catch {
    return false;
  }
})();

Deno.test("destinations: a mapped remote host is dialled at its mapped address", async () => {
  const echo = echoServer();
  const env = startEmulator({
    agent: { destinations: destinationMap({ "10.99.0.10:80": `127.0.0.1:${echo.port}` }) },
  });
  const c = env.connect(
    env.registry.start("i-0123456789abcdef0", REMOTE, remote("10.99.0.10", 80)),
  );
  await c.handshake();
  const mux = new MuxClient(c);
  await echoes(mux);
  await echoes(mux);
  assert.equal(echo.accepted, 2);
  assert.ok(env.logs.some((l) => l.endsWith(`10.99.0.10:80 mapped to 127.0.0.1:${echo.port}`)));
  // Basic mode (an old client) dials the same mapped address, at session start.
  const b = env.connect(
    env.registry.start("i-0123456789abcdef0", REMOTE, remote("10.99.0.10", 80)),
  );
  await b.handshake("1.0.0.0");
  await b.until(() => echo.accepted === 3, 2000, "basic dial");
  await env.close();
  await echo.close();
});

Deno.test("destinations: the localhost document is looked up as 127.0.0.1:<portNumber>", async () => {
  const echo = echoServer();
  const unused = closedPort();
  const env = startEmulator({
    agent: { destinations: destinationMap({ [`127.0.0.1:${unused}`]: `127.0.0.1:${echo.port}` }) },
  });
  const c = env.connect(env.start(unused));
  await c.handshake();
  await echoes(new MuxClient(c));
  await env.close();
  await echo.close();
});

Deno.test("destinations: unmapped destinations are dialled as before", async () => {
  const echo = echoServer();
  const env = startEmulator({
    agent: { destinations: destinationMap({ "10.99.0.10:80": "127.0.0.1:1" }) },
  });
  const c = env.connect(
    env.registry.start("i-0123456789abcdef0", REMOTE, remote("127.0.0.1", echo.port)),
  );
  await c.handshake();
  await echoes(new MuxClient(c));
  assert.ok(!env.logs.some((l) => l.includes("mapped to")));
  await env.close();
  await echo.close();
});

Deno.test({
  name: "destinations: an IPv6 literal host is dialled, and mapped by any spelling",
  ignore: !ipv6Loopback,
  async fn() {
    const echo = echoServer("::1");
    const env = startEmulator({
      agent: { destinations: destinationMap({ "[fd00::10]:443": `[::1]:${echo.port}` }) },
    });
    const direct = env.connect(
      env.registry.start("i-0123456789abcdef0", REMOTE, remote("::1", echo.port)),
    );
    await direct.handshake();
    await echoes(new MuxClient(direct));
    const mapped = env.connect(
      env.registry.start("i-0123456789abcdef0", REMOTE, remote("fd00:0:0::0:10", 443)),
    );
    await mapped.handshake();
    await echoes(new MuxClient(mapped));
    assert.equal(echo.accepted, 2);
    await env.close();
    await echo.close();
  },
});

Deno.test({
  name: "destinations: a bracketed IPv6 host fails to dial, as Go's JoinHostPort makes it fail",
  ignore: !ipv6Loopback,
  async fn() {
    const echo = echoServer("::1");
    const env = startEmulator();
    const c = env.connect(
      env.registry.start("i-0123456789abcdef0", REMOTE, remote("[::1]", echo.port)),
    );
    await c.handshake();
    const mux = new MuxClient(c);
    const sid = mux.open();
    await c.until(() => mux.fins.has(sid), 2000, "FIN");
    assert.deepEqual(flags(c), [[0, 0, 0, 3]]);
    assert.equal(echo.accepted, 0);
    await env.close();
    await echo.close();
  },
});

Deno.test("destinations: a refused remote host gets ConnectToPortError then FIN, per stream", async () => {
  const refused = closedPort();
  const env = startEmulator({
    agent: { destinations: destinationMap({ "10.99.0.10:80": `127.0.0.1:${refused}` }) },
  });
  for (const [host, port] of [["127.0.0.1", refused], ["10.99.0.10", 80]] as const) {
    const grant = env.registry.start("i-0123456789abcdef0", REMOTE, remote(host, port));
    const c = env.connect(grant);
    await c.handshake();
    const mux = new MuxClient(c);
    const a = mux.open();
    const b = mux.open();
    mux.write(b, enc.encode("dropped"));
    await c.until(() => mux.fins.has(a) && mux.fins.has(b), 2000, "both FINs");
    assert.deepEqual(flags(c), [[0, 0, 0, 3], [0, 0, 0, 3]]);
    // The flag goes out before the FIN (whose Output is the first, as no data comes back).
    const flagAt = c.delivered.findIndex((m) => m.payloadType === PayloadType.Flag);
    const outputAt = c.delivered.findIndex((m) => m.payloadType === PayloadType.Output);
    assert.ok(flagAt < outputAt, `flag at ${flagAt}, first Output at ${outputAt}`);
    assert.equal(mux.receivedLength(a) + mux.receivedLength(b), 0);
    // A refusal ends the stream, not the session.
    assert.equal(env.registry.get(grant.SessionId)?.state, "open");
  }
  await env.close();
});

Deno.test("destinations: the fixtures' map and the server option reach the agent, option first", async () => {
  const echo = echoServer();
  const fixtures = parseFixtures(
    [
      "destinations:",
      `  "10.99.0.10:80": "127.0.0.1:${closedPort()}"`,
      `  "10.99.0.11:80": "127.0.0.1:${echo.port}"`,
    ].join("\n"),
  );
  const emu = await startServer({
    port: 0,
    pacing: false,
    fixtures,
    destinations: { "10.99.0.10:80": `127.0.0.1:${echo.port}` },
  });
  const clients: TestClient[] = [];
  try {
    for (const host of ["10.99.0.10", "10.99.0.11"]) {
      const c = TestClient.connect(
        emu.registry.start("i-0123456789abcdef0", REMOTE, remote(host, 80)),
      );
      clients.push(c);
      await c.handshake();
      await echoes(new MuxClient(c));
    }
    assert.equal(echo.accepted, 2);
  } finally {
    for (const c of clients) await c.close();
    await emu.close();
    await echo.close();
  }
  await assert.rejects(
    startServer({ port: 0, destinations: { "10.99.0.10:80": "localhost:80" } }),
    /destinations\["10\.99\.0\.10:80"\]: value: "localhost" is not an IPv4 address/,
  );
});
