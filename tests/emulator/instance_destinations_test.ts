/**
 * Per-instance destinations: each emulated instance may have its own "localhost" (the lab's
 * second instance runs its agent in another namespace), over the emulator-wide map.
 */
import assert from "node:assert/strict";
import { instanceFacts, parseFixtures } from "../../src/emulator/fixtures.ts";
import { closedPort, echoServer, MuxClient, randomBytes, startEmulator } from "./harness.ts";

const LOCAL = "AWS-StartPortForwardingSession";

Deno.test("instance destinations: parsed, canonical, and only for their instance", () => {
  const f = parseFixtures(`
instances:
  - { id: i-0000000000000000a, name: bastion }
  - id: i-0000000000000000b
    name: bastion
    destinations: { "127.0.0.1:7797": "10.98.1.2:7797" }
`);
  assert.equal(instanceFacts(f, "i-0000000000000000a")?.destinations, undefined);
  const b = instanceFacts(f, "i-0000000000000000b")?.destinations;
  assert.deepEqual(b?.get("127.0.0.1:7797"), { hostname: "10.98.1.2", port: 7797 });
  assert.throws(
    () =>
      parseFixtures(`
instances:
  - { id: i-0000000000000000b, destinations: { "127.0.0.1:7797": "nowhere" } }
`),
    /destinations\["127.0.0.1:7797"\]/,
  );
});

Deno.test("instance destinations: a session to that instance dials its own map", async () => {
  const echo = echoServer();
  const unused = closedPort();
  const f = parseFixtures(`
instances:
  - { id: i-0000000000000000a, name: bastion }
  - id: i-0000000000000000b
    name: bastion
    destinations: { "127.0.0.1:${unused}": "127.0.0.1:${echo.port}" }
`);
  const env = startEmulator({ agent: { instanceFacts: (t) => instanceFacts(f, t) } });
  const c = env.connect(env.registry.start("i-0000000000000000b", LOCAL, {
    portNumber: [String(unused)],
  }));
  await c.handshake();
  const mux = new MuxClient(c);
  const sid = mux.open();
  const data = randomBytes(3000);
  mux.write(sid, data);
  await c.until(() => mux.receivedLength(sid) === data.length, 5000, "echo");
  assert.deepEqual(mux.received(sid), data);
  assert.equal(echo.accepted, 1);
  // The other instance's localhost is its own: nothing listens there.
  const a = env.connect(env.registry.start("i-0000000000000000a", LOCAL, {
    portNumber: [String(unused)],
  }));
  await a.handshake();
  const other = new MuxClient(a);
  other.write(other.open(), randomBytes(10));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(echo.accepted, 1);
  await env.close();
  await echo.close();
});
