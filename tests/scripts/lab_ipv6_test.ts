/**
 * The lab's IPv6 (createLab({ ipv6: true }), scripts/lab/ipv6.ts): the instance reaches the
 * vpc's dual-stack services and the IPv6-only host over IPv6 (seen by its uplink address), the
 * lab DNS answers AAAA (checked with dig, not our own decoder), the internet is reachable over
 * IPv6, a laptop's IPv6 leak is counted, a lab without ipv6 has no IPv6 beyond link-local, and
 * destroy() leaves nothing.
 */
import assert from "node:assert/strict";
import { createLab, type Lab, type Role } from "../../scripts/lab.ts";
import {
  answerFor,
  decodeMessage,
  encodeQuery,
  encodeResponse,
  RCODE_NOERROR,
  TYPE_A,
  TYPE_AAAA,
} from "../../scripts/lab/dns.ts";
import {
  INET6_LINK_VPC,
  INTERNET_ADDRESS6,
  ipv6Plan,
  LAPTOP_ROUTER6,
} from "../../scripts/lab/ipv6.ts";
import { startLeakCounter } from "../../scripts/lab/leaks.ts";
import { run } from "../../scripts/lab/proc.ts";
import { PAGE_MARKER } from "../../scripts/lab/services.ts";
import { e2eTest } from "../support/lab.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

Deno.test("lab ipv6: the plan puts lab X in 2001:db8:X::/64, names with AAAA records", () => {
  const p = ipv6Plan(42, { instances: 1, internet: false });
  assert.equal(p.vpcNetwork6, "2001:db8:42::/64");
  assert.equal(p.instanceVpcAddress6, "2001:db8:42::1");
  assert.equal(p.serviceAddress6, "2001:db8:42::10");
  assert.equal(p.ipv6OnlyAddress, "2001:db8:42::20");
  assert.equal(p.instance2VpcAddress6, undefined);
  assert.equal(p.internetAddress6, undefined);
  assert.equal(p.dnsTable6[p.dualStackName], p.serviceAddress6);
  assert.equal(p.dnsTable6[p.ipv6OnlyName], p.ipv6OnlyAddress);
  const both = ipv6Plan(7, { instances: 2, internet: true });
  assert.equal(both.instance2VpcAddress6, "2001:db8:7::2");
  assert.equal(both.internetAddress6, INTERNET_ADDRESS6);
});

Deno.test("lab dns: A and AAAA from one table, NODATA for the family a name lacks", () => {
  const table = { "web.lab.internal": ["10.99.1.10", "2001:db8:1::10"], "v6": "2001:db8:1::20" };
  const ask = (name: string, type: number) =>
    answerFor(table, decodeMessage(encodeQuery(1, name, type)));
  assert.deepEqual(ask("web.lab.internal", TYPE_A), { rcode: 0, addresses: ["10.99.1.10"] });
  assert.deepEqual(ask("web.lab.internal", TYPE_AAAA), { rcode: 0, addresses: ["2001:db8:1::10"] });
  assert.deepEqual(ask("v6", TYPE_AAAA), { rcode: 0, addresses: ["2001:db8:1::20"] });
  assert.deepEqual(ask("v6", TYPE_A), { rcode: 0, addresses: [] });

  const q = decodeMessage(encodeQuery(5, "v6", TYPE_AAAA));
  const bytes = encodeResponse(q, RCODE_NOERROR, ["2001:db8:1::20"], 30);
  assert.equal(
    hex(bytes.subarray(bytes.length - 28)),
    "c00c001c00010000001e0010" + "20010db8000100000000000000000020",
  );
  assert.deepEqual(decodeMessage(bytes).answers, [{
    name: "v6",
    type: TYPE_AAAA,
    class: 1,
    ttl: 30,
    address: "2001:db8:1::20",
  }]);
});

async function sh(lab: Lab, role: Role, cmd: string): Promise<string> {
  const r = await lab.exec(role, ["sh", "-c", cmd]);
  assert.ok(r.success, `${role}: ${cmd}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** GET over IPv6 (curl's own timeout: 2 s). */
const get6 = (lab: Lab, role: Role, addr: string) =>
  sh(lab, role, `curl -sS -g --max-time 2 http://[${addr}]/`);

const dig = (lab: Lab, type: string, name: string, server: string) =>
  sh(lab, "instance", `dig +short +time=1 +tries=2 ${type} ${name} @${server}`);

/** What the lab leaves on the machine: its namespaces, their /etc/netns dirs, its directory. */
async function leftovers(lab: Lab): Promise<string[]> {
  const ns = (await run(["ip", "netns", "list"])).stdout.split("\n").map((l) => l.split(" ")[0])
    .filter((n) => n.startsWith(`ssmp-${lab.id}-`));
  const paths: string[] = [];
  for (const p of [lab.dir, ...lab.roles.map((r) => `/etc/netns/${lab.ns(r)}`)]) {
    if (await Deno.stat(p).then(() => true, () => false)) paths.push(p);
  }
  return [...ns, ...paths];
}

e2eTest("lab ipv6: dual-stack vpc, IPv6-only host, AAAA, IPv6 internet, laptop leaks", async () => {
  const lab = await createLab({ ipv6: true, internet: true, instances: 2, handleSignals: false });
  try {
    const s6 = lab.serviceAddress6!, only = lab.ipv6OnlyAddress!;
    assert.ok((await leftovers(lab)).length > 0);

    // The vpc's services over IPv6, from the instance.
    assert.match(await get6(lab, "instance", s6), new RegExp(PAGE_MARKER));
    assert.equal(await sh(lab, "instance", `printf hello6 | socat -T2 - UDP6:[${s6}]:7`), "hello6");
    await sh(lab, "instance", `ping -6 -c1 -W2 ${s6} >/dev/null`);
    // The IPv6-only host sees each instance by its uplink address: no NAT on the way.
    assert.equal(await get6(lab, "instance", only), `${lab.instanceVpcAddress6}\n`);
    assert.equal(await get6(lab, "instance2", only), `${lab.instance2VpcAddress6}\n`);
    assert.equal(await sh(lab, "instance", `printf x | socat -T2 - UDP6:[${only}]:7`), "x");

    // DNS: AAAA over either family, the A record still there, the IPv6-only name AAAA only.
    assert.equal(await dig(lab, "AAAA", lab.dualStackName!, lab.resolver), `${s6}\n`);
    assert.equal(await dig(lab, "A", lab.dualStackName!, s6), `${lab.serviceAddress}\n`);
    assert.equal(await dig(lab, "AAAA", lab.ipv6OnlyName!, s6), `${only}\n`);
    assert.equal(await dig(lab, "+tcp AAAA", lab.ipv6OnlyName!, lab.resolver), `${only}\n`);
    const a = await sh(lab, "instance", `dig +time=1 +tries=2 A ${lab.ipv6OnlyName} @${s6}`);
    assert.match(a, /status: NOERROR.*\n.*ANSWER: 0,/, `no A record, yet the name exists:\n${a}`);

    // The internet over IPv6, routed both ways by the vpc (no NAT there either).
    assert.equal(lab.internetAddress6, INTERNET_ADDRESS6);
    assert.equal(await get6(lab, "instance", INTERNET_ADDRESS6), `${lab.instanceVpcAddress6}\n`);
    assert.equal(await get6(lab, "vpc", INTERNET_ADDRESS6), `${INET6_LINK_VPC}\n`);
    assert.equal(
      await sh(lab, "instance", `printf y | socat -T2 - UDP6:[${INTERNET_ADDRESS6}]:7`),
      "y",
    );
    // IPv4 is unchanged beside it.
    assert.equal(
      await sh(lab, "instance", `curl -sS --max-time 2 http://${lab.internetAddress}/`),
      `${lab.instanceVpcAddress}\n`,
    );

    // The laptop keeps IPv6 on lab0 and routes it by default via the instance, so a leak of
    // IPv6 leaves lab0 and is counted (and, as for IPv4, never answered).
    assert.equal(await sh(lab, "laptop", "cat /proc/sys/net/ipv6/conf/lab0/disable_ipv6"), "0\n");
    assert.match(
      await sh(lab, "laptop", "ip -6 route show default"),
      new RegExp(
        `^default via ${LAPTOP_ROUTER6} dev lab0 `,
      ),
    );
    const leaks = await startLeakCounter(lab, "laptop", { allow: [lab.instanceAddress] });
    try {
      const r = await lab.exec("laptop", ["ping", "-6", "-c", "1", "-W", "1", INTERNET_ADDRESS6]);
      assert.ok(!r.success, "a laptop's IPv6 leak got an answer");
      assert.deepEqual(await leaks.destinations(), [INTERNET_ADDRESS6]);
    } finally {
      await leaks.stop();
    }
  } finally {
    await lab.destroy();
  }
  assert.deepEqual(await leftovers(lab), []);
});

/** Global-scope IPv6 addresses (documentation, ULA or any other) in `role`. */
const global6 = async (lab: Lab, role: Role) =>
  (await sh(lab, role, "ip -6 -o addr show scope global")).trim();

e2eTest("lab ipv6: off by default; without the internet laptops get no IPv6 route", async () => {
  const plain = await createLab({ services: false, handleSignals: false });
  try {
    assert.equal(plain.serviceAddress6, undefined);
    assert.deepEqual(plain.dnsTable6, {});
    for (const role of plain.roles) {
      assert.equal(await global6(plain, role), "", `IPv6 addresses in ${role}`);
      assert.equal((await sh(plain, role, "ip -6 route show default")).trim(), "", role);
    }
  } finally {
    await plain.destroy();
  }
  assert.deepEqual(await leftovers(plain), []);

  const lab = await createLab({ ipv6: true, services: false, handleSignals: false });
  try {
    assert.equal(lab.internetAddress6, undefined);
    assert.match(await global6(lab, "instance"), new RegExp(`${lab.instanceVpcAddress6}/64`));
    assert.match(
      await sh(lab, "instance", "ip -6 route show default"),
      new RegExp(`^default via ${lab.serviceAddress6} dev ${lab.instanceUplink} `),
    );
    assert.equal(await global6(lab, "laptop"), "");
    assert.equal((await sh(lab, "laptop", "ip -6 route show default")).trim(), "");
    assert.match(await sh(lab, "laptop", "ip -6 -o addr show dev lab0"), /inet6 fe80::/);
  } finally {
    await lab.destroy();
  }
  assert.deepEqual(await leftovers(lab), []);
});
