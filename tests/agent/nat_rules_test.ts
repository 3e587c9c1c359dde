import assert from "node:assert/strict";
import {
  iptablesSetup,
  iptablesTeardown,
  nftDropStale6,
  nftRuleset,
  nftRuleset6,
  nftTeardown,
  nftTeardown6,
} from "../../agent/nat_rules.ts";
import { parseCidr } from "../../agent/cidr.ts";
import { parseCidr6 } from "../../agent/cidr6.ts";

const params = { pool: parseCidr("100.64.0.0/16")!, tun: "ssmp0", uplink: "ens5", mtu: 1400 };

Deno.test("nat: nft ruleset replaces a stale table atomically and covers NAT, forward, MSS", () => {
  assert.deepEqual(
    nftRuleset(params),
    `table ip ssm_proxy
delete table ip ssm_proxy
table ip ssm_proxy {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr 100.64.0.0/16 oifname "ens5" masquerade
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "ssmp0" tcp flags & (syn | rst) == syn tcp option maxseg size > 1360 tcp option maxseg size set 1360
    oifname "ssmp0" tcp flags & (syn | rst) == syn tcp option maxseg size > 1360 tcp option maxseg size set 1360
    iifname "ssmp0" accept
    oifname "ssmp0" ct state established,related accept
    oifname "ssmp0" drop
  }
}
`,
  );
  assert.deepEqual(nftTeardown(), "delete table ip ssm_proxy\n");
});

Deno.test("nat: MSS follows the MTU", () => {
  assert.ok(nftRuleset({ ...params, mtu: 1200 }).includes("maxseg size set 1160"));
  const clamp = iptablesSetup({ ...params, mtu: 1200 })[1];
  assert.deepEqual(clamp.slice(-6), ["--mss", "1161:65535", "-j", "TCPMSS", "--set-mss", "1160"]);
});

Deno.test("nat: iptables uses only our chains and removes exactly them", () => {
  const setup = iptablesSetup(params);
  assert.deepEqual(setup.map((a) => a.join(" ")), [
    "-N SSM-PROXY-FWD",
    "-A SSM-PROXY-FWD -i ssmp0 -p tcp --tcp-flags SYN,RST SYN -m tcpmss --mss 1361:65535 -j TCPMSS --set-mss 1360",
    "-A SSM-PROXY-FWD -o ssmp0 -p tcp --tcp-flags SYN,RST SYN -m tcpmss --mss 1361:65535 -j TCPMSS --set-mss 1360",
    "-A SSM-PROXY-FWD -i ssmp0 -j ACCEPT",
    "-A SSM-PROXY-FWD -o ssmp0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    "-A SSM-PROXY-FWD -o ssmp0 -j DROP",
    "-I FORWARD 1 -j SSM-PROXY-FWD",
    "-t nat -N SSM-PROXY-NAT",
    "-t nat -A SSM-PROXY-NAT -s 100.64.0.0/16 -o ens5 -j MASQUERADE",
    "-t nat -A POSTROUTING -j SSM-PROXY-NAT",
  ]);
  assert.deepEqual(iptablesTeardown().map((a) => a.join(" ")), [
    "-D FORWARD -j SSM-PROXY-FWD",
    "-F SSM-PROXY-FWD",
    "-X SSM-PROXY-FWD",
    "-t nat -D POSTROUTING -j SSM-PROXY-NAT",
    "-t nat -F SSM-PROXY-NAT",
    "-t nat -X SSM-PROXY-NAT",
  ]);
  // Built-in chains are only ever jumped from, never flushed or deleted.
  for (const a of [...setup, ...iptablesTeardown()]) {
    const i = a.findIndex((x) => ["-F", "-X", "-N"].includes(x));
    if (i >= 0) assert.deepEqual(a[i + 1].startsWith("SSM-PROXY-"), true);
  }
});

Deno.test("nat66: an ip6 table of the same name: masquerade pool6, same forward rules, MSS -60", () => {
  assert.equal(
    nftRuleset6({
      pool6: parseCidr6("fd7a:5353:5d8b::/48")!,
      tun: "ssmp0",
      uplink: "ens5",
      mtu: 1400,
    }),
    `table ip6 ssm_proxy
delete table ip6 ssm_proxy
table ip6 ssm_proxy {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip6 saddr fd7a:5353:5d8b::/48 oifname "ens5" masquerade
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "ssmp0" tcp flags & (syn | rst) == syn tcp option maxseg size > 1340 tcp option maxseg size set 1340
    oifname "ssmp0" tcp flags & (syn | rst) == syn tcp option maxseg size > 1340 tcp option maxseg size set 1340
    iifname "ssmp0" accept
    oifname "ssmp0" ct state established,related accept
    oifname "ssmp0" drop
  }
}
`,
  );
  assert.equal(nftTeardown6(), "delete table ip6 ssm_proxy\n");
  assert.equal(nftDropStale6(), "table ip6 ssm_proxy\ndelete table ip6 ssm_proxy\n");
});
