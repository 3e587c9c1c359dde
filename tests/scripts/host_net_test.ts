/**
 * scripts/lab/host_net.ts: the OS tools' text as the smoke tests read it. The macOS samples follow
 * Apple's printing code (network_cmds netstat.tproj/route.c netname+domask: trailing zero octets
 * dropped, the prefix only when not the classful one; route.tproj/route.c print_getmsg: a
 * "gateway:" line only for RTF_GATEWAY routes; configd dnsinfo_logging.h: "  domain   : x").
 * The live tests run the real tools of the OS they are on (no root needed).
 */
import assert from "node:assert/strict";
import {
  ipRouteLines,
  netstatLines,
  parseBsdDestination,
  parseCidr,
  parseIfconfigList,
  parseIpLinkNames,
  parseIpRouteGet,
  parseRouteGet,
  scutilDomains,
  within,
} from "../../scripts/lab/host_net.ts";

const net = (cidr: string) => parseCidr(cidr);

Deno.test("BSD netstat destinations: abbreviated networks, classful masks, hosts", () => {
  const cases: [string, string][] = [
    ["10.99/24", "10.99.0.0/24"], // class A with a /24: "10.99" + "/24"
    ["10.99.0/24", "10.99.0.0/24"],
    ["10", "10.0.0.0/8"],
    ["10/8", "10.0.0.0/8"],
    ["127", "127.0.0.0/8"],
    ["172.16", "172.16.0.0/16"],
    ["198.18.250", "198.18.250.0/24"], // class C with its natural /24: no suffix
    ["192.168.64", "192.168.64.0/24"],
    ["10.99.0.128/25", "10.99.0.128/25"],
    ["10.99.0.10", "10.99.0.10/32"],
    ["198.18.0.2", "198.18.0.2/32"],
    ["default", "0.0.0.0/0"],
    ["10.99.0.10%utun4", "10.99.0.10/32"],
  ];
  for (const [token, want] of cases) {
    assert.deepEqual(parseBsdDestination(token), net(want), token);
  }
  for (const bad of ["link#4", "fe80::1", "10.99.0.300", "", "10/33"]) {
    assert.equal(parseBsdDestination(bad), undefined, bad);
  }
});

Deno.test("within: networks and hosts inside a CIDR", () => {
  assert.ok(within(net("10.99.0.0/24"), net("10.99.0.0/24")));
  assert.ok(within(net("10.99.0.10/32"), net("10.99.0.0/24")));
  assert.ok(!within(net("10.0.0.0/8"), net("10.99.0.0/24")));
  assert.ok(!within(net("10.99.1.0/24"), net("10.99.0.0/24")));
});

const NETSTAT_UP = `Routing tables

Internet:
Destination        Gateway            Flags               Netif Expire
default            192.168.64.1       UGScg                 en0
10                 link#6             UCS                   en0      !
10.99/24           link#24            UCS                 utun4
10.99.0.10         link#24            UHWIi               utun4
127                127.0.0.1          UCS                   lo0
127.0.0.1          127.0.0.1          UH                    lo0
169.254            link#6             UCS                   en0      !
192.168.64         link#6             UCS                   en0      !
192.168.64.1/32    link#6             UCS                   en0      !
198.18.0.2         198.18.0.1         UH                  utun4
224.0.0/4          link#6             UmCS                  en0      !
255.255.255.255/32 link#6             UCS                   en0      !
`;

Deno.test("netstat -rn -f inet: our CIDR's lines (the /8 LAN around it is not ours)", () => {
  const cidr = net("10.99.0.0/24");
  assert.deepEqual(netstatLines(NETSTAT_UP, cidr).map((l) => l.split(/\s+/)[0]), [
    "10.99/24",
    "10.99.0.10",
  ]);
  assert.deepEqual(netstatLines(NETSTAT_UP, cidr, "utun4").map((l) => l.split(/\s+/)[0]), [
    "10.99/24",
    "10.99.0.10",
    "198.18.0.2",
  ]);
  const after = NETSTAT_UP.split("\n").filter((l) => !l.includes("utun4")).join("\n");
  assert.deepEqual(netstatLines(after, cidr, "utun4"), []);
});

Deno.test("ip route: our CIDR's lines, with route types and dev", () => {
  const table = [
    "10.99.0.0/24 dev ssmp0 scope link",
    "198.18.0.2 dev ssmp0 proto kernel scope link src 198.18.0.1",
    "10.0.0.0/8 dev eth0 proto kernel scope link src 10.1.2.3",
    "local 198.18.0.1 dev ssmp0 table local proto kernel scope host src 198.18.0.1",
    "local 10.99.0.5 dev eth1 table local proto kernel scope host src 10.99.0.5",
    "default via 10.0.0.1 dev eth0",
    "",
  ].join("\n");
  const cidr = net("10.99.0.0/24");
  assert.deepEqual(ipRouteLines(table, cidr), [
    "10.99.0.0/24 dev ssmp0 scope link",
    "local 10.99.0.5 dev eth1 table local proto kernel scope host src 10.99.0.5",
  ]);
  assert.equal(ipRouteLines(table, cidr, "ssmp0").length, 4);
});

Deno.test("route -n get: interface, and a gateway only for gateway routes", () => {
  const viaDefault = `   route to: 10.99.0.10
destination: default
       mask: default
    gateway: 192.168.64.1
  interface: en0
      flags: <UP,GATEWAY,DONE,STATIC,PRCLONING,GLOBAL>
 recvpipe  sendpipe  ssthresh  rtt,msec    rttvar  hopcount      mtu     expire
       0         0         0         0         0         0      1500         0
`;
  assert.deepEqual(parseRouteGet(viaDefault), { interface: "en0", gateway: "192.168.64.1" });
  const viaUtun = `   route to: 10.99.0.10
destination: 10.99.0.0
       mask: 255.255.255.0
  interface: utun4
      flags: <UP,DONE,CLONING,STATIC>
 recvpipe  sendpipe  ssthresh  rtt,msec    rttvar  hopcount      mtu     expire
       0         0         0         0         0         0      1400         0
`;
  assert.deepEqual(parseRouteGet(viaUtun), { interface: "utun4" });
  assert.deepEqual(parseRouteGet("route: writing to routing socket: not in table\n"), {});
});

Deno.test("ip route get: dev and via", () => {
  assert.deepEqual(
    parseIpRouteGet("10.99.0.10 dev ssmp0 src 198.18.0.1 uid 0 \n    cache \n"),
    { interface: "ssmp0" },
  );
  assert.deepEqual(
    parseIpRouteGet("1.1.1.1 via 10.0.0.1 dev eth0 src 10.1.2.3 uid 0 \n    cache \n"),
    { interface: "eth0", gateway: "10.0.0.1" },
  );
});

Deno.test("interface lists and scutil --dns domains", () => {
  assert.deepEqual(parseIfconfigList("lo0 gif0 stf0 en0 utun0 utun1 utun4\n"), [
    "en0",
    "gif0",
    "lo0",
    "stf0",
    "utun0",
    "utun1",
    "utun4",
  ]);
  assert.deepEqual(
    parseIpLinkNames(
      "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue\n" +
        "7: veth0@if6: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500\n" +
        "9: ssmp0: <POINTOPOINT,MULTICAST,NOARP,UP,LOWER_UP> mtu 1400\n",
    ),
    ["lo", "ssmp0", "veth0"],
  );
  const dns = `DNS configuration

resolver #1
  nameserver[0] : 192.168.64.1
  if_index : 6 (en0)
  flags    : Request A records
  reach    : 0x00020002 (Reachable,Directly Reachable Address)

resolver #2
  domain   : local
  options  : mdns
  timeout  : 5
  flags    : Request A records
  reach    : 0x00000000 (Not Reachable)
  order    : 300000

resolver #8
  domain   : lab.internal
  nameserver[0] : 10.99.0.2
  port     : 53
  timeout  : 5
  flags    : Request A records
  reach    : 0x00000003 (Reachable,Transient Connection)
`;
  assert.deepEqual(scutilDomains(dns), ["lab.internal", "local"]);
});

async function tool(cmd: string, args: string[]): Promise<string> {
  const o = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  assert.equal(o.code, 0, `${cmd} ${args.join(" ")}: ${dec.decode(o.stderr)}`);
  return dec.decode(o.stdout);
}

Deno.test({
  name: "live (macOS): ifconfig -l, netstat -rn -f inet and route -n get read as expected",
  ignore: Deno.build.os !== "darwin",
  async fn() {
    assert.ok(parseIfconfigList(await tool("/sbin/ifconfig", ["-l"])).includes("lo0"));
    const table = await tool("/usr/sbin/netstat", ["-rn", "-f", "inet"]);
    assert.ok(netstatLines(table, net("127.0.0.0/8")).length > 0, table);
    const lo = parseRouteGet(await tool("/sbin/route", ["-n", "get", "127.0.0.1"]));
    assert.equal(lo.interface, "lo0");
  },
});

Deno.test({
  name: "live (Linux): ip -o link and ip route get read as expected",
  ignore: Deno.build.os !== "linux",
  async fn() {
    assert.ok(parseIpLinkNames(await tool("ip", ["-o", "link", "show"])).includes("lo"));
    const lo = parseIpRouteGet(await tool("ip", ["-4", "route", "get", "127.0.0.1"]));
    assert.equal(lo.interface, "lo");
  },
});
