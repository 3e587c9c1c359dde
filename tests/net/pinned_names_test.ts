/**
 * A full tunnel's own endpoints resolve from what it pinned, in the SDK's HTTP calls and in the
 * stream's WebSocket dial. The names end in .invalid, which no resolver answers (RFC 6761): only
 * the pins can make these requests arrive.
 */
import assert from "node:assert/strict";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import {
  pinNames,
  pinnedAddress,
  pinnedAgents,
  unpinNames,
  usePinnedNames,
} from "../../src/net/pinned_names.ts";
import { clientConfig } from "../../src/aws/config.ts";
import { WsClient } from "../../src/ssm/ws_client.ts";

Deno.test("pinned names rotate over their addresses; other names are not pinned", () => {
  pinNames(new Map([["Stream.Pinned.Invalid", ["192.0.2.1", "192.0.2.2"]], ["none.invalid", []]]));
  try {
    const seen = new Set([1, 2, 3, 4].map(() => pinnedAddress("stream.pinned.invalid")));
    assert.deepEqual([...seen].sort(), ["192.0.2.1", "192.0.2.2"]);
    assert.equal(pinnedAddress("none.invalid"), undefined);
    assert.equal(pinnedAddress("other.invalid"), undefined);
  } finally {
    unpinNames();
  }
  assert.equal(pinnedAddress("stream.pinned.invalid"), undefined);
});

Deno.test("an SDK client built after usePinnedNames reaches a pinned name", async () => {
  const hosts: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    hosts.push(req.headers.get("host") ?? "");
    return new Response("<ErrorResponse/>", { status: 500 });
  });
  const port = server.addr.port;
  await usePinnedNames();
  assert.ok(pinnedAgents());
  pinNames(new Map([["sts.pinned.invalid", ["127.0.0.1"]]]));
  const c = new STSClient({
    ...clientConfig({ region: "us-east-1" }, {}),
    endpoint: `http://sts.pinned.invalid:${port}`,
    credentials: { accessKeyId: "AKID", secretAccessKey: "secret" },
    maxAttempts: 1,
  });
  try {
    await c.send(new GetCallerIdentityCommand({})).catch(() => {});
    assert.deepEqual(hosts, [`sts.pinned.invalid:${port}`]);
  } finally {
    c.destroy();
    unpinNames();
    await server.shutdown();
  }
});

Deno.test("the stream's WebSocket dials a pinned address and keeps the name in its request", async () => {
  const hosts: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    hosts.push(req.headers.get("host") ?? "");
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.onmessage = (e) => socket.send(e.data);
    return response;
  });
  pinNames(new Map([["stream.pinned.invalid", ["127.0.0.1"]]]));
  try {
    const ws = await WsClient.connect(`ws://stream.pinned.invalid:${server.addr.port}/v1/data`);
    ws.close();
    assert.deepEqual(hosts, [`stream.pinned.invalid:${server.addr.port}`]);
  } finally {
    unpinNames();
    await server.shutdown();
  }
});
