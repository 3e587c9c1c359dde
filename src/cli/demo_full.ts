/**
 * The extra steps of `ssm-proxy demo --all-traffic` (src/cli/demo.ts): the lab has an "internet"
 * host (scripts/lab/internet.ts, a whoami service at 203.0.113.10), the tunnel is a full tunnel
 * (src/start/full_tunnel.ts), and these steps show what that changes on the laptop and that stop
 * gives every route back. Parsing and comparing are pure; the show* functions run the checks.
 */
import type { Lab } from "../../scripts/lab.ts";
import { HALF_DEFAULTS } from "../start/full_tunnel.ts";

export type Line = (ok: boolean, what: string, detail: string, ms?: number) => void;

/** The laptop's state a full tunnel changes while up and must give back byte for byte. */
export interface LaptopSnapshot {
  /** IPv4 routes of every table, then IPv6 of the main one (`ip route show` text). */
  routes: string;
  resolvConf: string;
}

/** The half-defaults on `ifname` and the pin for `pinAddress`, found in `ip -4 route show` text. */
export function fullTunnelRoutes(
  routes: string,
  ifname: string,
  pinAddress: string,
): { halves: string[]; missing: string[]; pin?: string; pinDev?: string } {
  const lines = routes.split("\n").map((l) => l.trim()).filter(Boolean);
  const onTun = (l: string) => devOf(l) === ifname;
  const halves = lines.filter((l) => HALF_DEFAULTS.some((h) => l.startsWith(`${h} `)) && onTun(l));
  const missing = HALF_DEFAULTS.filter((h) => !halves.some((l) => l.startsWith(`${h} `)));
  const pin = lines.find((l) =>
    (l.startsWith(`${pinAddress} `) || l.startsWith(`${pinAddress}/32 `)) && !onTun(l)
  );
  return { halves, missing: [...missing], pin, pinDev: pin ? devOf(pin) : undefined };
}

/** Lines only in `before` (removed) and only in `after` (added), in their order. */
export function routeDiff(before: string, after: string): { removed: string[]; added: string[] } {
  const a = before.split("\n").filter(Boolean);
  const b = after.split("\n").filter(Boolean);
  return { removed: a.filter((l) => !b.includes(l)), added: b.filter((l) => !a.includes(l)) };
}

/** The first `nameserver` of a resolv.conf. */
export function nameserverOf(resolvConf: string): string | undefined {
  return /^\s*nameserver\s+(\S+)/m.exec(resolvConf)?.[1];
}

function devOf(route: string): string | undefined {
  return /\bdev (\S+)/.exec(route)?.[1];
}

/** What processes in the laptop namespace see as /etc/resolv.conf (`ip netns exec` mounts it). */
function resolvConfPath(lab: Lab): string {
  return `/etc/netns/${lab.ns("laptop")}/resolv.conf`;
}

async function ip(lab: Lab, args: string[]): Promise<string> {
  const r = await lab.exec("laptop", ["ip", ...args]);
  if (!r.success) throw new Error(`ip ${args.join(" ")}: ${r.stderr.trim()}`);
  return r.stdout;
}

/**
 * IPv4 in every table, IPv6 in the main one only: the local table gains lab0's link-local
 * address whenever its duplicate address detection ends, which is not ours to give back.
 */
export async function laptopSnapshot(lab: Lab): Promise<LaptopSnapshot> {
  return {
    routes: await ip(lab, ["-4", "route", "show", "table", "all"]) +
      await ip(lab, ["-6", "route", "show"]),
    resolvConf: await Deno.readTextFile(resolvConfPath(lab)),
  };
}

/** One line about the laptop before the tunnel: its default route, the one that must survive. */
export function describeBefore(s: LaptopSnapshot): string {
  const def = s.routes.split("\n").find((l) => l.startsWith("default "))?.trim();
  const count = s.routes.split("\n").filter(Boolean).length;
  return `${def ?? "no default route"} (its home router); ${count} route lines kept to compare`;
}

/** The half-defaults through the tun, and the emulator (the tunnel's AWS endpoint) pinned outside. */
export async function showRoutes(lab: Lab, ifname: string, line: Line): Promise<void> {
  console.log("The laptop's routes now: everything into the tunnel but the tunnel's own endpoint:");
  const routes = await ip(lab, ["-4", "route", "show"]);
  const r = fullTunnelRoutes(routes, ifname, lab.instanceAddress);
  line(
    r.missing.length === 0,
    `half-default routes ${HALF_DEFAULTS.join(" and ")}`,
    r.missing.length === 0
      ? `via ${ifname}, more specific than the default route, which stays`
      : `missing ${r.missing.join(", ")} on ${ifname}`,
  );
  for (const h of r.halves) console.log(`      ${h}`);
  line(
    r.pin !== undefined,
    `pin ${lab.instanceAddress} (the emulator, the tunnel's AWS endpoint)`,
    r.pin ? `kept outside the tunnel, via ${r.pinDev}` : `no route for it outside ${ifname}`,
  );
  if (r.pin) console.log(`      ${r.pin}`);
  if (r.missing.length || !r.pin) console.log(indent(routes.trim()));
}

/** The whoami host answers with the address it sees: the instance's, not the laptop's. */
export async function showInternet(lab: Lab, line: Line): Promise<void> {
  const url = `http://${lab.internetAddress}/`;
  const instance = lab.instanceVpcAddress;
  const laptop = lab.laptops[0].address;
  const r = await lab.probe("laptop", ["http", url, `${instance}\n`]);
  line(
    r.ok,
    `HTTP GET ${url} (a host on the internet that answers who is asking)`,
    r.ok
      ? `answers ${instance}, the instance's VPC address, not the laptop's ${laptop}: the internet sees the instance, not the laptop`
      : `expected ${instance}: ${r.detail}`,
    r.ms,
  );
}

/** The system's resolver is now our forwarder, which asks the VPC resolver every name. */
export async function showSystemDns(lab: Lab, line: Line): Promise<void> {
  const conf = await Deno.readTextFile(resolvConfPath(lab));
  const server = nameserverOf(conf);
  const name = "web.lab.internal";
  if (!server) {
    line(false, `DNS ${name} through the laptop's resolv.conf`, "no nameserver in it");
    return;
  }
  const r = await lab.probe("laptop", ["dns", server, name]);
  line(
    r.ok,
    `DNS A ${name} @${server} (the nameserver resolv.conf now names)`,
    r.ok ? `${r.detail}, answered by the VPC resolver ${lab.resolver}` : r.detail,
    r.ms,
  );
}

/** After stop: the laptop's routes and resolv.conf are what they were before the tunnel. */
export async function showRestored(lab: Lab, before: LaptopSnapshot, line: Line): Promise<void> {
  const after = await laptopSnapshot(lab);
  const d = routeDiff(before.routes, after.routes);
  const same = after.routes === before.routes;
  const count = before.routes.split("\n").filter(Boolean).length;
  line(
    same,
    "laptop routes after stop",
    same ? `exactly as before (${count} lines compared)` : "differ from before:",
  );
  if (!same && d.removed.length + d.added.length === 0) {
    console.log(indent("(the same lines, in another order)"));
  } else if (!same) {
    console.log(
      indent([...d.removed.map((l) => `- ${l}`), ...d.added.map((l) => `+ ${l}`)].join("\n")),
    );
  }
  const conf = after.resolvConf === before.resolvConf;
  line(
    conf,
    "laptop resolv.conf after stop",
    conf
      ? `exactly as before (nameserver ${nameserverOf(after.resolvConf)})`
      : after.resolvConf.trim(),
  );
}

const indent = (text: string) => text.split("\n").map((l) => `      ${l}`).join("\n");
