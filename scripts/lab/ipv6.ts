/**
 * The lab's IPv6 (`createLab({ ipv6: true })`): a dual-stack vpc, an IPv6-only host, and with
 * `internet: true` an IPv6 internet. X is the lab's byte, written as in 10.99.X.0 (so lab 42 has
 * 2001:db8:42::/64); every address is nodad and links skip DAD (prepareIpv6), so each address
 * is usable the moment it exists.
 *
 *   instance vpc0 2001:db8:X::1/64  ⇄  vpc lab0 2001:db8:X::10/64 (the vpc services, beside IPv4)
 *                                                2001:db8:X::20/64 (IPv6 only: whoami :80, echo :7)
 *   instance: default via 2001:db8:X::10 (the vpc is its router, as a VPC's is)
 *   instance2 vpc0 2001:db8:X::2/64  ⇄  vpc lab1 (::10 and ::20 again as /128, ::2/128 routed there)
 *
 * With `internet: true` too (scripts/lab/internet.ts for the IPv4 side):
 *
 *   vpc inet0 2001:db8:fffe::1/64  ⇄  inet vpc0 2001:db8:fffe::2/64   (inet: default via ::1)
 *   vpc 2001:db8:ffff::/48 via 2001:db8:fffe::2;  inet lo 2001:db8:ffff::10/128 (whoami, echo)
 *   instance lapN fe80::1/64  ⇄  laptop lab0: default via fe80::1 (a home router)
 *
 * Without the internet, laptops keep IPv6 on lab0 (link-local only) but get no IPv6 route. As
 * for IPv4 there is no NAT but the agent's and the vpc has no route to a tunnel's pool or to a
 * laptop, so only the agent's NAT66 gets a tunnelled packet an answer. Documentation addresses
 * (RFC 3849) and link-local ones only, all inside the lab's namespaces.
 */
import type { Lab, Role } from "../lab.ts";
import { must } from "./proc.ts";

/** The IPv6 internet host (on inet's lo) and the network the vpc routes to inet. */
export const INTERNET_ADDRESS6 = "2001:db8:ffff::10";
export const INTERNET_NETWORK6 = "2001:db8:ffff::/48";
/** vpc ⇄ inet link: the vpc's end (its source address towards the internet) and inet's. */
export const INET6_LINK_VPC = "2001:db8:fffe::1";
export const INET6_LINK_INET = "2001:db8:fffe::2";
/** The instance's end of each laptop link: the laptops' IPv6 router with `internet: true`. */
export const LAPTOP_ROUTER6 = "fe80::1";
/** A name with A and AAAA records (both the service address), and one with AAAA only. */
export const DUAL_STACK_NAME = "web.lab.internal";
export const IPV6_ONLY_NAME = "v6only.lab.internal";

/** The IPv6 fields of a Lab (see scripts/lab.ts). */
export interface Ipv6Plan {
  vpcNetwork6: string;
  instanceVpcAddress6: string;
  instance2VpcAddress6?: string;
  serviceAddress6: string;
  ipv6OnlyAddress: string;
  internetAddress6?: string;
  dnsTable6: Record<string, string>;
  dualStackName: string;
  ipv6OnlyName: string;
}

/** Fails to compile if a plan field is not a Lab field: scripts/lab.ts copies the plan over. */
export type Ipv6PlanFitsLab = Pick<Lab, keyof Ipv6Plan>;

/** The addresses and names of lab X; pure. */
export function ipv6Plan(x: number, o: { instances: 1 | 2; internet: boolean }): Ipv6Plan {
  const net = `2001:db8:${x}::`;
  const service = `${net}10`;
  const only = `${net}20`;
  return {
    vpcNetwork6: `${net}/64`,
    instanceVpcAddress6: `${net}1`,
    ...(o.instances === 2 ? { instance2VpcAddress6: `${net}2` } : {}),
    serviceAddress6: service,
    ipv6OnlyAddress: only,
    ...(o.internet ? { internetAddress6: INTERNET_ADDRESS6 } : {}),
    dnsTable6: { "db.lab.internal": service, [DUAL_STACK_NAME]: service, [IPV6_ONLY_NAME]: only },
    dualStackName: DUAL_STACK_NAME,
    ipv6OnlyName: IPV6_ONLY_NAME,
  };
}

/**
 * Before any link exists in `role`'s namespace: links made there skip duplicate address
 * detection. Otherwise each veth's link-local address stays tentative for a second or two, and
 * until then the kernel cannot send neighbour solicitations for forwarded packets (they need a
 * link-local source), nor a laptop any packet at all.
 */
export async function prepareIpv6(lab: Lab, role: Role): Promise<void> {
  await must([
    "ip",
    "netns",
    "exec",
    lab.ns(role),
    "sysctl",
    "-qw",
    "net.ipv6.conf.default.accept_dad=0",
  ]);
}

/** Add the IPv6 addresses and routes; the IPv4 build (links included) is done already. */
export async function buildIpv6(lab: Lab): Promise<void> {
  if (!lab.serviceAddress6 || !lab.instanceVpcAddress6 || !lab.ipv6OnlyAddress) {
    throw new Error("buildIpv6 needs a lab created with ipv6: true");
  }
  const inNs = (role: Role, ...args: string[]) => must(["ip", "-n", lab.ns(role), "-6", ...args]);
  const addr = (role: Role, a: string, dev: string) =>
    inNs(role, "addr", "add", a, "dev", dev, "nodad");
  const uplink = lab.instanceUplink;

  await addr("instance", `${lab.instanceVpcAddress6}/64`, uplink);
  await addr("vpc", `${lab.serviceAddress6}/64`, "lab0");
  await addr("vpc", `${lab.ipv6OnlyAddress}/64`, "lab0");
  await inNs("instance", "route", "add", "default", "via", lab.serviceAddress6, "dev", uplink);

  if (lab.instance2VpcAddress6) {
    // Neighbour discovery answers only for addresses on the link asked on: the vpc's addresses
    // go on lab1 too, so instance2 finds its router and the services as the first instance does.
    await addr("vpc", `${lab.serviceAddress6}/128`, "lab1");
    await addr("vpc", `${lab.ipv6OnlyAddress}/128`, "lab1");
    await inNs(
      "vpc",
      "route",
      "add",
      `${lab.instance2VpcAddress6}/128`,
      "dev",
      "lab1",
      "src",
      lab.serviceAddress6,
    );
    await addr("instance2", `${lab.instance2VpcAddress6}/64`, uplink);
    await inNs("instance2", "route", "add", "default", "via", lab.serviceAddress6, "dev", uplink);
  }

  if (!lab.internet) return;
  await addr("vpc", `${INET6_LINK_VPC}/64`, "inet0");
  await addr("inet", `${INET6_LINK_INET}/64`, "vpc0");
  await addr("inet", `${INTERNET_ADDRESS6}/128`, "lo");
  await inNs("vpc", "route", "add", INTERNET_NETWORK6, "via", INET6_LINK_INET, "dev", "inet0");
  await inNs("inet", "route", "add", "default", "via", INET6_LINK_VPC, "dev", "vpc0");
  await must([
    "ip",
    "netns",
    "exec",
    lab.ns("vpc"),
    "sysctl",
    "-qw",
    "net.ipv6.conf.all.forwarding=1",
  ]);
  for (const [i, l] of lab.laptops.entries()) {
    await addr("instance", `${LAPTOP_ROUTER6}/64`, `lap${i}`);
    await inNs(l.role, "route", "add", "default", "via", LAPTOP_ROUTER6, "dev", "lab0");
  }
}
