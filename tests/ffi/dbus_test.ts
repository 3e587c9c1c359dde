/**
 * D-Bus marshalling against hand-computed bytes (D-Bus spec, little-endian), and the client
 * against a private dbus-daemon when one is installed: the daemon validates every message it
 * routes, so getting ServiceUnknown back for SetLinkDNS proves the call was well-formed.
 */
import assert from "node:assert/strict";
import {
  dbus,
  DBusConnection,
  DBusError,
  decodeMessage,
  encodeMethodCall,
  marshalBody,
} from "../../ffi/linux/dbus.ts";
import { UserError } from "../../src/errors.ts";
import { linuxPlatform } from "../../src/net/linux.ts";

const hex = (s: string) => new Uint8Array(s.trim().split(/\s+/).map((x) => parseInt(x, 16)));

Deno.test("SetLinkDNS body: i 5, a(iay) [(AF_INET, 10.199.0.53)]", () => {
  const body = marshalBody([
    dbus.i(5),
    dbus.array("(iay)", [dbus.struct(dbus.i(2), dbus.ay(new Uint8Array([10, 199, 0, 53])))]),
  ]);
  assert.deepEqual(body, hex("05 00 00 00 0c 00 00 00 02 00 00 00 04 00 00 00 0a c7 00 35"));
});

Deno.test("SetLinkDomains body: i 5, a(sb) [(ec2.internal, true)]", () => {
  const body = marshalBody([
    dbus.i(5),
    dbus.array("(sb)", [dbus.struct(dbus.s("ec2.internal"), dbus.b(true))]),
  ]);
  assert.deepEqual(
    body,
    hex(`05 00 00 00 18 00 00 00 0c 00 00 00 65 63 32 2e 69 6e 74 65 72 6e 61 6c 00 00 00 00
         01 00 00 00`),
  );
  // An empty array still pads to the element alignment, uncounted.
  assert.deepEqual(
    marshalBody([dbus.i(1), dbus.array("(sb)", [])]),
    hex("01 00 00 00 00 00 00 00"),
  );
});

Deno.test("a method call decodes back (header fields, signature, alignment)", () => {
  const msg = encodeMethodCall({
    serial: 7,
    destination: "org.freedesktop.resolve1",
    path: "/org/freedesktop/resolve1",
    iface: "org.freedesktop.resolve1.Manager",
    member: "RevertLink",
    args: [dbus.i(3)],
  });
  assert.deepEqual(msg.subarray(0, 4), hex("6c 01 00 01"));
  const m = decodeMessage(msg)!;
  assert.equal(m.length, msg.length);
  assert.equal(m.serial, 7);
  assert.equal(m.signature, "i");
  assert.equal(decodeMessage(msg.subarray(0, msg.length - 1)), undefined);
  assert.throws(() => decodeMessage(new Uint8Array(16).fill(0x41)), DBusError);
});

async function startBus(): Promise<{ path: string; stop: () => Promise<void> } | undefined> {
  const path = `/tmp/ssmpt-bus-${Deno.pid}-${Math.random().toString(36).slice(2)}`;
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("dbus-daemon", {
      args: ["--session", "--nofork", "--nopidfile", `--address=unix:path=${path}`],
      stdout: "null",
      stderr: "null",
    }).spawn();
  } catch {
    return undefined; // not installed
  }
  const stop = async () => {
    child.kill("SIGTERM");
    await child.status;
    await Deno.remove(path).catch(() => {});
  };
  for (let i = 0; i < 100; i++) {
    try {
      Deno.statSync(path);
      return { path, stop };
    } catch {
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  await stop();
  throw new Error("dbus-daemon did not create its socket");
}

Deno.test({
  name: "client against a private dbus-daemon: auth, Hello, calls, errors",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const bus = await startBus();
    if (!bus) {
      console.log("dbus-daemon not installed: skipped");
      return;
    }
    try {
      const c = await DBusConnection.connect(bus.path);
      try {
        const r = await c.call({
          destination: "org.freedesktop.DBus",
          path: "/org/freedesktop/DBus",
          iface: "org.freedesktop.DBus",
          member: "GetNameOwner",
          args: [dbus.s("org.freedesktop.DBus")],
        });
        assert.equal(r.firstString, "org.freedesktop.DBus");
        await assert.rejects(
          c.call({
            destination: "org.freedesktop.resolve1",
            path: "/org/freedesktop/resolve1",
            iface: "org.freedesktop.resolve1.Manager",
            member: "SetLinkDNS",
            args: [
              dbus.i(1),
              dbus.array("(iay)", [dbus.struct(dbus.i(2), dbus.ay(new Uint8Array(4)))]),
            ],
          }),
          (e: Error) => e instanceof DBusError && e.errorName.endsWith("ServiceUnknown"),
        );
      } finally {
        c.close();
      }
      // Through the platform: resolved "present" but not answering → the resolvectl fallback line.
      const dir = await Deno.makeTempDir({ prefix: "ssmpt-resolve-" });
      try {
        const dns = linuxPlatform({ busPath: bus.path, resolvedDir: dir }).dns;
        await assert.rejects(
          dns.apply({ ifname: "lo", server: "10.199.0.53", domains: ["ec2.internal"] }),
          (e: Error) =>
            e instanceof UserError && /ServiceUnknown/.test(e.message) &&
            e.message.endsWith("resolvectl dns lo 10.199.0.53; resolvectl domain lo ~ec2.internal"),
        );
        await dns.revert({ kind: "none", items: [] });
      } finally {
        await Deno.remove(dir);
      }
    } finally {
      await bus.stop();
    }
  },
});
