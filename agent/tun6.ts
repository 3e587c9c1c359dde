/**
 * The agent tun's IPv6 address (Linux): `<pool6>::1/<len>` without duplicate address detection,
 * so the kernel routes all of pool6 into the tun at once (os-ffi §9.3; golden capture in §10.2).
 */
import { encodeNewAddr } from "../ffi/linux/netlink.ts";
import { nextSeq, transact } from "../ffi/linux/netlink_socket.ts";
import { formatIP } from "../ffi/struct.ts";

/** `ip -6 addr add ADDRESS/PREFIX dev INDEX nodad` as rtnetlink bytes. */
export function encodeTunAddress6(
  seq: number,
  index: number,
  address: Uint8Array,
  prefixLength: number,
): Uint8Array<ArrayBuffer> {
  return encodeNewAddr({ seq, index, local: address, peer: address, prefixLength });
}

/**
 * The tun was opened with IPv6 disabled (src/net/linux.ts, against the kernel's chatter); an
 * address needs it enabled, and without it the kernel also drops the IPv6 packets we write.
 */
export async function addTunAddress6(
  tun: { name: string; index: number },
  address: Uint8Array,
  prefixLength: number,
): Promise<void> {
  const disable = `/proc/sys/net/ipv6/conf/${tun.name}/disable_ipv6`;
  if ((await Deno.readTextFile(disable)).trim() !== "0") await Deno.writeTextFile(disable, "0\n");
  const seq = nextSeq();
  await transact(
    encodeTunAddress6(seq, tun.index, address, prefixLength),
    seq,
    `add address ${formatIP(address)}/${prefixLength} to ${tun.name}`,
  );
}
