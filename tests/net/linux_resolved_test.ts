/**
 * DNS through systemd-resolved, through linuxPlatform(), against the resolve1 fake on a private
 * dbus-daemon (fake_resolve1.ts says why a fake). Skipped, like tests/ffi/dbus_test.ts, where
 * dbus-daemon is not installed. Split DNS sets routing-only domains; a full tunnel (".") sets
 * "~." and the default route; revert (and a failed apply) hands the link back with RevertLink.
 */
import assert from "node:assert/strict";
import { dbus, marshalBody } from "../../ffi/linux/dbus.ts";
import { UserError } from "../../src/errors.ts";
import { ALL_DOMAINS } from "../../src/net/domain.ts";
import { linuxPlatform, resolvectlHint } from "../../src/net/linux.ts";
import type { DnsConfig } from "../../src/net/types.ts";
import {
  type Bus,
  decodeBody,
  type FakeResolved,
  fakeResolved,
  startBus,
} from "./fake_resolve1.ts";

const LO = 1; // the loopback's index, in every network namespace
const FULL: DnsConfig = { ifname: "lo", server: "10.199.0.2", domains: [ALL_DOMAINS] };
const SPLIT: DnsConfig = { ifname: "lo", server: "10.199.0.2", domains: ["corp.example"] };
const VPC_DNS = [[2, new Uint8Array([10, 199, 0, 2])]];

async function withResolved(
  fail: Record<string, string>,
  fn: (r: FakeResolved, dns: ReturnType<typeof linuxPlatform>["dns"]) => Promise<void>,
): Promise<void> {
  const bus: Bus | undefined = await startBus();
  if (!bus) {
    console.log("dbus-daemon not installed: skipped");
    return;
  }
  const dir = await Deno.makeTempDir({ prefix: "ssmpt-resolve-" });
  let r: FakeResolved | undefined;
  try {
    r = await fakeResolved(bus.path, fail);
    await fn(r, linuxPlatform({ busPath: bus.path, resolvedDir: dir }).dns);
  } finally {
    await r?.close();
    await bus.stop();
    await Deno.remove(dir);
  }
}

const linux = Deno.build.os !== "linux";

Deno.test({
  name: "resolved, full tunnel: ~. and the default route on the link; revert hands it back",
  ignore: linux,
  async fn() {
    await withResolved({}, async (r, dns) => {
      const state = await dns.apply(FULL);
      assert.deepEqual(state, { kind: "systemd-resolved", items: ["lo"] });
      assert.deepEqual(r.calls, [
        { member: "SetLinkDNS", args: [LO, VPC_DNS] },
        { member: "SetLinkDomains", args: [LO, [[".", true]]] },
        { member: "SetLinkDefaultRoute", args: [LO, true] },
      ]);
      assert.deepEqual(r.links.get(LO), {
        dns: ["10.199.0.2"],
        domains: ["~."],
        defaultRoute: true,
      });
      await dns.revert(state);
      assert.deepEqual(r.calls.at(-1), { member: "RevertLink", args: [LO] });
      assert.equal(r.links.has(LO), false, "every setting of the link is gone");
    });
  },
});

Deno.test({
  name: "resolved, split DNS: routing-only domains, the default route left to resolved",
  ignore: linux,
  async fn() {
    await withResolved({}, async (r, dns) => {
      const state = await dns.apply({ ...SPLIT, domains: ["corp.example", "ec2.internal"] });
      assert.deepEqual(r.calls.map((c) => c.member), ["SetLinkDNS", "SetLinkDomains"]);
      assert.deepEqual(r.links.get(LO), {
        dns: ["10.199.0.2"],
        domains: ["~corp.example", "~ec2.internal"],
      });
      await dns.revert(state);
      assert.equal(r.links.has(LO), false);
    });
  },
});

Deno.test({
  name: "resolved, full tunnel refused half-way: the link is reverted, the hint says it all",
  ignore: linux,
  async fn() {
    const denied = "org.freedesktop.DBus.Error.AccessDenied";
    await withResolved({ SetLinkDefaultRoute: denied }, async (r, dns) => {
      await assert.rejects(
        dns.apply(FULL),
        (e: Error) =>
          e instanceof UserError && e.message.includes(denied) &&
          e.message.endsWith(
            "run instead: resolvectl dns lo 10.199.0.2; resolvectl domain lo ~.; " +
              "resolvectl default-route lo true",
          ),
      );
      assert.deepEqual(r.calls.map((c) => c.member), [
        "SetLinkDNS",
        "SetLinkDomains",
        "SetLinkDefaultRoute",
        "RevertLink",
      ]);
      assert.equal(r.links.has(LO), false, "no ~. left routing every name to the tunnel");
    });
  },
});

Deno.test("resolvectl hint: the full tunnel adds the default route, split DNS does not", () => {
  assert.equal(
    resolvectlHint({ ifname: "ssmp0", server: "10.0.0.2", domains: [ALL_DOMAINS] }),
    "resolvectl dns ssmp0 10.0.0.2; resolvectl domain ssmp0 ~.; " +
      "resolvectl default-route ssmp0 true",
  );
  assert.equal(
    resolvectlHint(SPLIT),
    "resolvectl dns lo 10.199.0.2; resolvectl domain lo ~corp.example",
  );
});

Deno.test("the fake's decoder reads what our encoder writes", () => {
  // Guards the fake itself: a decoding slip there would make the tests above meaningless.
  const args = [
    dbus.i(7),
    dbus.array("(sb)", [
      dbus.struct(dbus.s("."), dbus.b(true)),
      dbus.struct(dbus.s("x.y"), dbus.b(false)),
    ]),
    dbus.b(true),
  ];
  assert.deepEqual(decodeBody("ia(sb)b", marshalBody(args)), [
    7,
    [[".", true], ["x.y", false]],
    true,
  ]);
  const dnsArgs = [
    dbus.i(3),
    dbus.array("(iay)", [dbus.struct(dbus.i(2), dbus.ay(new Uint8Array([10, 0, 0, 2])))]),
  ];
  assert.deepEqual(decodeBody("ia(iay)", marshalBody(dnsArgs)), [3, [[
    2,
    new Uint8Array([10, 0, 0, 2]),
  ]]]);
});
