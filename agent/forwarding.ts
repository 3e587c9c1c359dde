/**
 * IPv4 forwarding as a plain /proc/sys write (no sysctl command). The previous value is kept so
 * stopping the agent leaves the host as it found it.
 */
const IP_FORWARD = "/proc/sys/net/ipv4/ip_forward";

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
