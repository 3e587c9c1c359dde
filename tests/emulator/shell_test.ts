/**
 * Emulated shell sessions (src/emulator/agent/shell.ts) driven with raw frames from
 * tests/emulator/harness.ts: StartSession through the emulated API, the data channel with no
 * handshake, a real pty, the upload path the installer uses (canonical mode, ^D = EOF), resize,
 * the agent's UTF-8 quirks, termination, the corruptInput fault and input backpressure.
 */
import assert from "node:assert/strict";
import { corruptPayload, replacementFor } from "../../src/emulator/agent/corrupt.ts";
import { processStdoutData, StdoutReassembler } from "../../src/emulator/agent/stdout_utf8.ts";
import { type Emulator, startEmulator as startFull } from "../../src/emulator/server.ts";
import type { SessionGrant } from "../../src/emulator/sessions.ts";
import {
  type ClientMessage,
  encodeMessage,
  flagPayload,
  jsonBytes,
  MessageType,
  PayloadType,
} from "../../src/ssm/message.ts";
import { dec, enc, json, randomBytes, startEmulator, TestClient } from "./harness.ts";

const linux = Deno.build.os === "linux";
const TARGET = "i-0123456789abcdef0";
const SHELL_ENV = { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", EMU_SHELL_TEST: "yes" };
const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
const bytes = (h: string) => new Uint8Array(h.match(/../g)!.map((x) => parseInt(x, 16)));

// ---- pure parts ---------------------------------------------------------------------------------

Deno.test("shell utf8: the spec's measured processStdoutData vectors", () => {
  const once = (h: string) => hex(processStdoutData(new Uint8Array(0), bytes(h)).out);
  assert.equal(once("61efbfbd62636465"), "61ef62636465");
  // At EOF the held-back bytes are simply never sent.
  const eof = processStdoutData(new Uint8Array(0), bytes("61626364fffe"));
  assert.equal(hex(eof.out), "61626364");
  assert.equal(hex(eof.held), "fffe");
  assert.equal(once("008081feff1020304050"), "008081feff1020304050");
});

Deno.test("shell utf8: runes split across reads are re-assembled; at most 3 bytes held", () => {
  const r = new StdoutReassembler();
  const euro = bytes("e282ac"); // €
  assert.equal(hex(r.push(bytes("41e2"))), "41");
  assert.equal(r.held, 1);
  assert.equal(hex(r.push(bytes("82"))), "");
  assert.equal(hex(r.push(bytes("ac42"))), hex(euro) + "42");
  assert.equal(r.held, 0);
  // A RuneError with 4+ bytes left is passed on; within the last 3 it waits for more.
  assert.equal(hex(r.push(bytes("ff414243"))), "ff414243");
  assert.equal(hex(r.push(bytes("41ff4142"))), "41");
  assert.equal(r.held, 3);
  assert.equal(hex(r.push(bytes("43"))), "ff414243");
  // Surrogates and overlongs are invalid in Go too: one byte at a time, unchanged.
  assert.equal(hex(r.push(bytes("eda080c0af41424344"))), "eda080c0af41424344");
});

Deno.test("shell corruptInput: one letter/digit at or after the offset, base64 value ±31", () => {
  const p = enc.encode("==+/abcd");
  const r = corruptPayload(p, 100, 101);
  assert.equal(r.at, 104);
  assert.equal(dec.decode(r.payload), "==+/" + String.fromCharCode(replacementFor(0x61)!) + "bcd");
  assert.equal(dec.decode(p), "==+/abcd", "the input is not modified");
  assert.equal(corruptPayload(p, 0, 8).at, undefined);
  const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  for (let i = 0; i < b64.length; i++) {
    const j = b64.indexOf(String.fromCharCode(replacementFor(b64.charCodeAt(i))!));
    assert.equal(Math.abs(i - j), 31);
  }
  assert.equal(replacementFor(0x2b), undefined);
});

// ---- sessions over the wire ---------------------------------------------------------------------

interface Shell {
  emu: Emulator;
  logs: string[];
  start(body: Record<string, unknown>): Promise<SessionGrant>;
  close(): Promise<void>;
}

/** The whole emulator (API + MGS) on a free port, unpaced; StartSession as the SDK sends it. */
async function shellEmulator(initialWaitMs = 0): Promise<Shell> {
  const logs: string[] = [];
  const emu = await startFull({
    port: 0,
    pacing: false,
    log: (l) => logs.push(l),
    agent: { shellInitialWaitMs: initialWaitMs, shellCwd: "/" },
    shellEnv: SHELL_ENV,
  });
  const clients: TestClient[] = [];
  return {
    emu,
    logs,
    async start(body) {
      const res = await fetch(emu.url + "/", {
        method: "POST",
        headers: {
          "x-amz-target": "AmazonSSM.StartSession",
          "content-type": "application/x-amz-json-1.1",
          authorization: "AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/ssm/aws4_request",
        },
        body: JSON.stringify({ Target: TARGET, ...body }),
      });
      const grant = await res.json();
      assert.equal(res.status, 200, JSON.stringify(grant));
      return grant;
    },
    async close() {
      for (const c of clients) await c.close();
      await emu.close();
    },
  };
}

const command = (cmd: string) => ({
  DocumentName: "AWS-StartInteractiveCommand",
  Parameters: { command: [cmd] },
});

/** Everything the shell printed so far (in-order Output payloads), as bytes. */
function outputBytes(c: TestClient): Uint8Array {
  const parts = c.delivered.filter((m) => m.payloadType === PayloadType.Output);
  const out = new Uint8Array(parts.reduce((n, m) => n + m.payload.length, 0));
  let o = 0;
  for (const m of parts) {
    out.set(m.payload, o);
    o += m.payload.length;
  }
  return out;
}
const output = (c: TestClient) => dec.decode(outputBytes(c));

function waitOutput(c: TestClient, re: RegExp, ms = 5000): Promise<void> {
  return c.until(() => re.test(output(c)), ms, `output matching ${re}`);
}

const isClosed = (m: ClientMessage) => m.messageType === MessageType.ChannelClosed;

/**
 * Sends `data` as the plugin does (≤1024-byte Output messages) but with a sliding window of
 * `window` messages and resends of the oldest unacked one, since the agent does not ack input
 * it cannot take yet (§5). Returns how many resends it needed.
 */
async function sendReliably(c: TestClient, data: Uint8Array, window = 128, rtoMs = 60) {
  const chunks: Uint8Array[] = [];
  for (let o = 0; o < data.length; o += 1024) chunks.push(data.subarray(o, o + 1024));
  const first = c.nextSeq;
  const acked = new Set<number>();
  const sent = new Map<number, { msg: ClientMessage; at: number }>();
  let scanned = 0;
  let next = 0;
  let lowest = first;
  let resends = 0;
  while (lowest < first + chunks.length) {
    for (; scanned < c.all.length; scanned++) {
      const m = c.all[scanned];
      if (m.messageType === MessageType.Acknowledge) {
        acked.add(json(m.payload).AcknowledgedMessageSequenceNumber as number);
      }
    }
    while (acked.has(lowest)) sent.delete(lowest++);
    while (next < chunks.length && first + next - lowest < window) {
      const msg = c.sendInput(PayloadType.Output, chunks[next++]);
      sent.set(Number(msg.sequenceNumber), { msg, at: Date.now() });
    }
    const oldest = sent.get(lowest);
    if (oldest && Date.now() - oldest.at > rtoMs) {
      c.sendRaw(encodeMessage(oldest.msg));
      oldest.at = Date.now();
      resends++;
    }
    if (c.ws.readyState !== WebSocket.OPEN) throw new Error("socket closed while sending");
    await c.until(() => c.all.length > scanned, 20).catch(() => {});
  }
  return resends;
}

/** `n` random bytes as base64 lines of 76 characters, and their SHA-256 in hex. */
async function upload(n: number, seed = 11) {
  const raw = randomBytes(n, seed);
  let text = "";
  for (let o = 0; o < raw.length; o += 57) {
    text += btoa(String.fromCharCode(...raw.subarray(o, o + 57))) + "\n";
  }
  const digest = await crypto.subtle.digest("SHA-256", raw as Uint8Array<ArrayBuffer>);
  return { raw, text: enc.encode(text), sha: hex(new Uint8Array(digest)) };
}

const UPLOAD = "stty -echo; echo READY; base64 -d | sha256sum";

Deno.test({
  name:
    "shell: echo hi: no handshake, seq 0 SYN is output after the 1 s wait, exit → channel_closed",
  ignore: !linux,
  async fn() {
    const s = await shellEmulator(1000);
    const grant = await s.start(command("echo hi"));
    const t0 = Date.now();
    const c = TestClient.connect(grant);
    const closed = await c.waitFor(isClosed, { what: "channel_closed" });
    const first = c.all.find((m) => m.messageType === MessageType.OutputStreamData)!;
    assert.equal(first.sequenceNumber, 0n);
    assert.equal(first.flags, 1n);
    assert.equal(first.payloadType, PayloadType.Output);
    assert.ok(first.createdDate - t0 >= 900, `first output after ${first.createdDate - t0} ms`);
    assert.equal(c.all.some((m) => m.payloadType === PayloadType.HandshakeRequest), false);
    assert.equal(output(c), "hi\r\n");
    assert.equal(json(closed.payload).Output, "");
    assert.equal(s.emu.registry.get(grant.SessionId)?.state, "terminated");
    assert.equal((await c.closed).code, 1000);
    await s.close();
  },
});

Deno.test({
  name: "shell: a tty inside, TERM/LANG/shellEnv/shellCwd set; the default document runs sh",
  ignore: !linux,
  async fn() {
    const s = await shellEmulator();
    const c = TestClient.connect(
      await s.start(command('test -t 0 && echo tty; echo "$TERM|$LANG|$EMU_SHELL_TEST|$PWD"')),
    );
    await c.waitFor(isClosed, { what: "channel_closed" });
    const lang = Deno.env.get("LANG") ?? "C.UTF-8";
    assert.equal(output(c), `tty\r\nxterm-256color|${lang}|yes|/\r\n`);
    // No DocumentName: SSM-SessionManagerRunShell, an interactive sh on the pty.
    const grant = await s.start({});
    assert.equal(s.emu.registry.get(grant.SessionId)?.documentName, "SSM-SessionManagerRunShell");
    const sh = TestClient.connect(grant);
    await sh.opened;
    sh.sendInput(PayloadType.Output, enc.encode("echo $((6*7))\n"));
    await waitOutput(sh, /^42\r$/m);
    sh.sendInput(PayloadType.Output, enc.encode("exit\n"));
    await sh.waitFor(isClosed, { what: "channel_closed after exit" });
    await s.close();
  },
});

Deno.test({
  name: "shell: base64 upload in canonical mode, ^D at line start ends it; digest matches",
  ignore: !linux,
  async fn() {
    const s = await shellEmulator();
    const c = TestClient.connect(await s.start(command(UPLOAD)));
    await waitOutput(c, /READY\r\n/);
    const { text, sha } = await upload(200 * 1024);
    await sendReliably(c, text);
    c.sendInput(PayloadType.Output, new Uint8Array([0x04]));
    await c.waitFor(isClosed, { what: "channel_closed", timeoutMs: 10_000 });
    assert.equal(output(c), `READY\r\n${sha}  -\r\n`);
    await s.close();
  },
});

Deno.test({
  name: "shell: Size messages resize the pty (stty size follows)",
  ignore: !linux,
  async fn() {
    const s = await shellEmulator();
    const c = TestClient.connect(
      await s.start(command("stty -echo; echo R; read a; stty size; read b; stty size")),
    );
    await waitOutput(c, /R\r\n/);
    c.sendInput(PayloadType.Size, jsonBytes({ cols: 120, rows: 50 }));
    c.sendInput(PayloadType.Output, enc.encode("\n"));
    await waitOutput(c, /50 120\r\n/);
    c.sendInput(PayloadType.Size, jsonBytes({ cols: 90, rows: 30 }));
    c.sendInput(PayloadType.Output, enc.encode("\n"));
    await c.waitFor(isClosed, { what: "channel_closed" });
    assert.equal(output(c), "R\r\n50 120\r\n30 90\r\n");
    await s.close();
  },
});

Deno.test({
  name: "shell: output goes through the agent's UTF-8 quirks (U+FFFD → EF, tail lost at EOF)",
  ignore: !linux,
  async fn() {
    const s = await shellEmulator();
    const c = TestClient.connect(
      await s.start(command(
        "stty -opost; printf 'a\\357\\277\\275bcde'; printf '\\000\\200\\201\\376\\377\\020 0@P';" +
          " printf 'abcd\\377\\376'",
      )),
    );
    await c.waitFor(isClosed, { what: "channel_closed" });
    assert.equal(hex(outputBytes(c)), "61ef62636465" + "008081feff1020304050" + "61626364");
    assert.ok(s.logs.some((l) => /2 trailing byte\(s\) lost at EOF/.test(l)));
    await s.close();
  },
});

/** Whether `pid` is running (a zombie nobody reaps counts as dead). */
function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3));
  } catch {
    return false;
  }
}

Deno.test({
  name: "shell: Flag 2 (TerminateSession) kills the process group; no exit code is sent",
  ignore: !linux,
  async fn() {
    const s = await shellEmulator();
    const c = TestClient.connect(await s.start(command('sleep 1000 & echo "pid:$!"; wait')));
    await waitOutput(c, /pid:\d+/);
    const pid = Number(/pid:(\d+)/.exec(output(c))![1]);
    assert.ok(alive(pid));
    c.sendInput(PayloadType.Flag, flagPayload(2));
    const closed = await c.waitFor(isClosed, { what: "channel_closed" });
    assert.equal(json(closed.payload).Output, "");
    await c.until(() => !alive(pid), 2000, "the sleep to die");
    assert.equal(c.all.some((m) => m.payloadType === PayloadType.ExitCode), false);
    await s.close();
  },
});

Deno.test({
  name: "shell: exit status is not reported; Terminating then channel_closed (MGS-only harness)",
  ignore: !linux,
  async fn() {
    const env = startEmulator({
      forwardAgentSessionState: true,
      agent: { shellInitialWaitMs: 0 },
      shellEnv: SHELL_ENV,
    });
    const grant = env.registry.start(TARGET, "AWS-StartInteractiveCommand", {
      command: ["echo bye; exit 7"],
    });
    const c = env.connect(grant);
    const closedAt = c.all.indexOf(await c.waitFor(isClosed, { what: "channel_closed" }));
    const states = c.all.filter((m) => m.messageType === MessageType.AgentSessionState)
      .map((m) => json(m.payload).SessionState);
    assert.deepEqual(states, ["Connected", "Terminating"]);
    const terminating = c.all.findLastIndex((m) => m.messageType === MessageType.AgentSessionState);
    assert.ok(terminating < closedAt);
    assert.equal(output(c), "bye\r\n");
    assert.equal(c.all.some((m) => m.payloadType === PayloadType.ExitCode), false);
    // A missing command fails the session with a reason instead of running anything.
    const bad = env.connect(env.registry.start(TARGET, "AWS-StartInteractiveCommand", {}));
    const why = await bad.waitFor(isClosed, { what: "channel_closed" });
    assert.match(json(why.payload).Output as string, /parameter command is required/);
    await env.close();
  },
});

Deno.test({
  name: "shell: corruptInput (over HTTP) changes one accepted byte, so the digest differs",
  ignore: !linux,
  async fn() {
    const s = await shellEmulator();
    const res = await fetch(s.emu.url + "/_emulator/faults", {
      method: "POST",
      body: JSON.stringify({ action: "corrupt_input", afterBytes: 5000 }),
    });
    const reply = await res.json();
    assert.equal(reply.ok, true);
    assert.deepEqual(reply.state.corruptInput, { next: 5000, sessions: {} });
    const c = TestClient.connect(await s.start(command(UPLOAD)));
    await waitOutput(c, /READY\r\n/);
    const { text, sha } = await upload(20 * 1024, 5);
    await sendReliably(c, text);
    c.sendInput(PayloadType.Output, new Uint8Array([0x04]));
    await c.waitFor(isClosed, { what: "channel_closed" });
    const got = /^([0-9a-f]{64}) {2}-\r$/m.exec(output(c));
    assert.ok(got, output(c));
    assert.notEqual(got[1], sha);
    assert.ok(s.logs.some((l) => /corrupted shell input byte at offset 500\d/.test(l)), "log");
    // Consumed: the next session is clean.
    assert.equal(s.emu.mgs.faults.state().corruptInput.next, null);
    await s.close();
  },
});

Deno.test({
  name: "shell: 2 MB into a slow reader: input is refused (no ack) and resent, none lost",
  ignore: !linux,
  async fn() {
    const s = await shellEmulator();
    const c = TestClient.connect(
      await s.start(command("stty -echo; echo READY; base64 -d | (sleep 1; wc -c)")),
    );
    await waitOutput(c, /READY\r\n/);
    const { raw, text } = await upload(2 * 1024 * 1024, 3);
    const resends = await sendReliably(c, text);
    c.sendInput(PayloadType.Output, new Uint8Array([0x04]));
    await c.waitFor(isClosed, { what: "channel_closed", timeoutMs: 10_000 });
    assert.equal(output(c).replace(/\s+/g, " ").trim(), `READY ${raw.length}`);
    assert.ok(resends > 0, "the slow reader never held input back");
    await s.close();
  },
});
