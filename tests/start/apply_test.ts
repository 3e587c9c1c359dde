/**
 * bringUp's order against a recording platform: the pins before the routes, a pin whose route
 * the system already has left alone (and not removed on undo), the routes gone before the pins
 * on undo, and the state file naming only what was added.
 */
import assert from "node:assert/strict";
import { bringUp } from "../../src/start/apply.ts";
import type { Link } from "../../src/start/link.ts";
import type { NetworkPlan } from "../../src/start/plan.ts";
import {
  type NetPlatform,
  type PinRoute,
  RouteExistsError,
  type Tun,
} from "../../src/net/types.ts";

function platform(existing: string[]) {
  const log: string[] = [];
  const tun: Tun = {
    name: "ssmp9",
    index: 9,
    mtu: 1400,
    read: () => Promise.resolve([]),
    write: () => true,
    close: () => log.push("close tun"),
  };
  const net: NetPlatform = {
    openTun: () => Promise.resolve(tun),
    routes: {
      add: (c, i) => Promise.resolve(void log.push(`add ${c} ${i}`)),
      delete: (c, i) => Promise.resolve(void log.push(`delete ${c} ${i}`)),
      addPin: (p: PinRoute) => {
        if (existing.includes(p.cidr)) return Promise.reject(new RouteExistsError("exists"));
        log.push(`pin ${p.cidr}`);
        return Promise.resolve();
      },
      deletePin: (p: PinRoute) => Promise.resolve(void log.push(`unpin ${p.cidr}`)),
      get: () => Promise.resolve({ interface: "wlan0", gateway: "192.168.1.1" }),
      defaultRoute: () => Promise.resolve({ interface: "wlan0", gateway: "192.168.1.1" }),
    },
    dns: {
      apply: () => Promise.resolve({ kind: "none", items: [] }),
      revert: () => Promise.resolve(),
    },
  };
  return { net, log };
}

Deno.test("a full tunnel's pins go in first and out last; a route the system has is left alone", async () => {
  const dir = await Deno.makeTempDir();
  Deno.env.set("SSM_PROXY_STATE_DIR", dir);
  try {
    const { net, log } = platform(["192.168.1.20/32"]);
    const lines: string[] = [];
    const link = {
      tunnel: { close: () => Promise.resolve() },
      mode: "agent",
      address: "100.64.0.2",
      peer: "100.64.0.1",
      noIpv6: "test",
      mtu: 1400,
      noResolver: "",
      summary: "",
      sessionIds: [],
      streamUrls: [],
    } as unknown as Link;
    const plan: NetworkPlan = {
      routes: [{ cidr: "0.0.0.0/1", reason: "" }, { cidr: "128.0.0.0/1", reason: "" }],
      skipped: [],
      domains: [],
      dnsRequired: false,
      notes: [],
      allTraffic: true,
      pins: [
        { cidr: "52.94.0.10/32", ifname: "wlan0", gateway: "192.168.1.1", what: "ssm" },
        { cidr: "192.168.1.20/32", ifname: "wlan0", what: "on the LAN" },
      ],
    };
    const up = await bringUp(net, link, plan, {
      name: "t",
      target: { instanceId: "i-0abc" },
      progress: (l) => lines.push(l),
    });
    assert.deepEqual(log, ["pin 52.94.0.10/32", "add 0.0.0.0/1 ssmp9", "add 128.0.0.0/1 ssmp9"]);
    assert.ok(lines.some((l) => /keep 192\.168\.1\.20\/32: a route of the system's/.test(l)));
    assert.deepEqual(up.state.pins?.map((p) => p.cidr), ["52.94.0.10/32"]);
    const saved = JSON.parse(await Deno.readTextFile(`${dir}/t.json`));
    assert.deepEqual(saved.pins.map((p: PinRoute) => p.cidr), ["52.94.0.10/32"]);
    log.length = 0;
    await up.undo();
    assert.deepEqual(log, [
      "delete 128.0.0.0/1 ssmp9",
      "delete 0.0.0.0/1 ssmp9",
      "unpin 52.94.0.10/32",
      "close tun",
    ]);
  } finally {
    Deno.env.delete("SSM_PROXY_STATE_DIR");
    await Deno.remove(dir, { recursive: true });
  }
});
