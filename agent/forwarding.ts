/**
 * IPv4 and IPv6 forwarding as plain /proc/sys writes (no sysctl command). Previous values are
 * kept so stopping the agent leaves the host as it found it.
 */
const IP_FORWARD = "/proc/sys/net/ipv4/ip_forward";
const IPV6_CONF = "/proc/sys/net/ipv6/conf";

export interface ForwardingHandle {
  restore(): Promise<void>;
}

export async function enableForwarding(path = IP_FORWARD): Promise<ForwardingHandle> {
  const old = (await Deno.readTextFile(path)).trim();
  if (old !== "1") await Deno.writeTextFile(path, "1\n");
  return {
    async restore() {
      if (old !== "1") await Deno.writeTextFile(path, `${old}\n`).catch(() => {});
    },
  };
}

/**
 * net.ipv6.conf.all.forwarding=1 (os-ffi §9.4). Turning it on makes interfaces with accept_ra=1
 * ignore router advertisements, and the kernel at once drops the default routes learned from
 * them except on interfaces with accept_ra=2. EC2 gives the IPv6 default route by RA, so the
 * uplink goes to accept_ra=2 first, or the instance would lose its IPv6 way out.
 */
export async function enableIpv6Forwarding(
  uplink: string | undefined,
  conf = IPV6_CONF,
): Promise<ForwardingHandle> {
  const fwd = `${conf}/all/forwarding`;
  const old = (await Deno.readTextFile(fwd)).trim();
  if (old === "1") return { restore: () => Promise.resolve() };
  const ra = uplink ? `${conf}/${uplink}/accept_ra` : undefined;
  const oldRa = ra ? (await Deno.readTextFile(ra).catch(() => "")).trim() : "";
  const raChanged = ra !== undefined && oldRa === "1";
  if (raChanged) await Deno.writeTextFile(ra, "2\n");
  try {
    await Deno.writeTextFile(fwd, "1\n");
  } catch (e) {
    if (raChanged) await Deno.writeTextFile(ra, `${oldRa}\n`).catch(() => {});
    throw e;
  }
  return {
    async restore() {
      await Deno.writeTextFile(fwd, `${old}\n`).catch(() => {});
      if (raChanged) await Deno.writeTextFile(ra, `${oldRa}\n`).catch(() => {});
    },
  };
}
