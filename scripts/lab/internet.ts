/**
 * The lab's "internet" (`createLab({ internet: true })`, for full-tunnel tests): an `inet`
 * namespace behind the vpc, reached only through it, holding one public-looking host.
 *
 *   vpc  inet0 198.51.100.1/30  ⇄  inet vpc0 198.51.100.2/30   (inet: default via .1)
 *   vpc  203.0.113.0/24 via 198.51.100.2;  inet lo 203.0.113.10/32 (whoami :80, echo :7 UDP)
 *   instance(s): default via the vpc (like an EC2 instance's VPC router)
 *   laptop(s):   default via their instance end of lab0 (like a home router)
 *
 * Only documentation ranges (RFC 5737), only inside namespaces: nothing can leave the machine.
 * There is no NAT in vpc or inet, so a request arrives with the address its sender's last NAT
 * gave it (from the instance: its vpc address), and the vpc has no route back to a laptop's
 * lab0 network, so a laptop request that leaks past the tunnel never gets an answer.
 *
 * With `ipv6: true` too, inet also has an IPv6 address and routes (scripts/lab/ipv6.ts).
 *
 * Run as a program (inside inet), it is that host's services, on each --addr:
 *   HTTP :80   any GET: the client's source address as seen here, one line of plain text
 *   echo :7    UDP, each datagram sent back as is
 * and prints "ready" once both listen.
 */
import type { Lab, LabProcess, Role } from "../lab.ts";
import { must } from "./proc.ts";
import { echo, http, udp, whoami } from "./services.ts";

export { whoami };

/** The public host's address (on inet's lo). */
export const INTERNET_ADDRESS = "203.0.113.10";
/** The "internet" the vpc routes to inet. */
export const INTERNET_NETWORK = "203.0.113.0/24";
/** vpc ⇄ inet link: the vpc's end (its source address towards the internet) and inet's. */
export const INET_LINK_VPC = "198.51.100.1";
export const INET_LINK_INET = "198.51.100.2";

/** Create the inet namespace's links, addresses and routes; `lab.roles` already made it. */
export async function buildInternet(lab: Lab): Promise<void> {
  const inNs = (role: Role, ...args: string[]) => must(["ip", "-n", lab.ns(role), ...args]);
  await must([
    "ip",
    "link",
    "add",
    "name",
    "inet0",
    "netns",
    lab.ns("vpc"),
    "type",
    "veth",
    "peer",
    "name",
    "vpc0",
    "netns",
    lab.ns("inet"),
  ]);
  await inNs("vpc", "addr", "add", `${INET_LINK_VPC}/30`, "dev", "inet0");
  await inNs("inet", "addr", "add", `${INET_LINK_INET}/30`, "dev", "vpc0");
  await inNs("inet", "addr", "add", `${INTERNET_ADDRESS}/32`, "dev", "lo");
  await inNs("vpc", "link", "set", "inet0", "up");
  await inNs("inet", "link", "set", "vpc0", "up");
  await inNs("vpc", "route", "add", INTERNET_NETWORK, "via", INET_LINK_INET, "dev", "inet0");
  await inNs("inet", "route", "add", "default", "via", INET_LINK_VPC, "dev", "vpc0");
  // The vpc is the router between the instances and the internet; nothing else forwards here.
  await must(["ip", "netns", "exec", lab.ns("vpc"), "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  for (const role of ["instance", "instance2"] as const) {
    if (!lab.roles.includes(role)) continue;
    await inNs(
      role,
      "route",
      "add",
      "default",
      "via",
      lab.serviceAddress,
      "dev",
      lab.instanceUplink,
    );
  }
  for (const l of lab.laptops) {
    await inNs(l.role, "route", "add", "default", "via", l.gateway, "dev", "lab0");
  }
}

/** Start the whoami and echo services in inet; resolves once they listen. */
export async function startInternet(lab: Lab): Promise<LabProcess> {
  const self = new URL(import.meta.url).pathname;
  const v6 = lab.internetAddress6 ? ["--addr", lab.internetAddress6] : [];
  const p = lab.spawn(
    "inet",
    [Deno.execPath(), "run", "-A", self, "--addr", INTERNET_ADDRESS, ...v6],
    {},
    "inet services",
  );
  await p.waitForLine(/^ready$/, 20_000);
  return p;
}

if (import.meta.main) {
  const addrs = Deno.args.flatMap((a, i) => Deno.args[i - 1] === "--addr" ? [a] : []);
  await Promise.all(
    (addrs.length ? addrs : [INTERNET_ADDRESS]).flatMap((addr) => [
      http(addr, (_req, info) => whoami(info.remoteAddr)),
      udp(addr, 7, echo),
    ]),
  );
  console.log("ready");
}
