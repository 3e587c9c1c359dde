import assert from "node:assert/strict";
import { DataChannelSocket, TransportError } from "../../src/ssm/websocket.ts";

/** A data-channel endpoint: records what the client sends; `onOpen` acts on the server socket. */
function mgs(onOpen?: (s: WebSocket) => void) {
  const got: (string | Uint8Array)[] = [];
  let first!: () => void;
  const opened = new Promise<void>((r) => (first = r));
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.binaryType = "arraybuffer";
    socket.onmessage = (e) => {
      got.push(typeof e.data === "string" ? e.data : new Uint8Array(e.data));
      if (got.length === 1) first();
    };
    socket.onopen = () => onOpen?.(socket);
    return response;
  });
  return {
    url: `ws://127.0.0.1:${server.addr.port}/v1/data-channel/s-1?role=publish_subscribe`,
    got,
    opened,
    close: () => server.shutdown(),
  };
}

function handlers() {
  const messages: Uint8Array[] = [];
  const reasons: string[] = [];
  let closed!: () => void;
  const done = new Promise<void>((r) => (closed = r));
  return {
    messages,
    reasons,
    done,
    h: {
      message: (b: Uint8Array) => messages.push(b),
      closed: (why: string) => {
        reasons.push(why);
        closed();
      },
    },
  };
}

Deno.test("DataChannelSocket: OpenDataChannel text first, then binary both ways", async () => {
  let server!: WebSocket;
  const m = mgs((s) => (server = s));
  const hs = handlers();
  const sock = await DataChannelSocket.open(m.url, "tok", "cid", "1.2.3", hs.h);
  await m.opened;
  const open = JSON.parse(m.got[0] as string);
  assert.deepEqual(
    [open.MessageSchemaVersion, open.TokenValue, open.ClientId, open.ClientVersion],
    ["1.0", "tok", "cid", "1.2.3"],
  );
  assert(sock.send(new Uint8Array([1, 2, 3])));
  const before = sock.lastReceived;
  await new Promise((r) => setTimeout(r, 5));
  server.send("ignored text");
  server.send(new Uint8Array([4, 5]));
  while (hs.messages.length === 0) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(hs.messages, [new Uint8Array([4, 5])]);
  assert(sock.lastReceived > before);
  assert.deepEqual(m.got[1], new Uint8Array([1, 2, 3]));
  assert.equal(sock.bufferedAmount, 0);
  sock.close();
  assert(!sock.open);
  assert(!sock.send(new Uint8Array(1)));
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(hs.reasons, [], "a close we asked for is not reported");
  await m.close();
});

Deno.test("DataChannelSocket: a server close is reported once with its code", async () => {
  const m = mgs((s) => s.close(1011, "going"));
  const hs = handlers();
  const sock = await DataChannelSocket.open(m.url, "t", "c", "v", hs.h);
  await hs.done;
  assert.deepEqual(hs.reasons, ["WebSocket closed (code 1011: going)"]);
  assert(!sock.open);
  sock.close();
  await m.close();
});

Deno.test("DataChannelSocket: nothing listening is a TransportError without the query", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  const hs = handlers();
  try {
    await DataChannelSocket.open(`ws://127.0.0.1:${port}/x?secret=1`, "t", "c", "v", hs.h, 2000);
    assert.fail("expected a TransportError");
  } catch (e) {
    assert(e instanceof TransportError, String(e));
    assert(!e.message.includes("secret"), e.message);
  }
});
