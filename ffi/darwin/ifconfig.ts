/**
 * Interface configuration ioctls on a scratch datagram socket (os-ffi §6): what
 * `ifconfig utunN inet L P netmask M mtu N up` does. utun is point-to-point, so SIOCAIFADDR needs
 * the peer as destination, and installs only a host route to it: every other prefix is a
 * PF_ROUTE add (route_socket.ts), after the address, which becomes the routes' source.
 */
import {
  AF_INET,
  AF_INET6,
  IFF_UP,
  IN6_IFF_NODAD,
  SIOCAIFADDR,
  SIOCAIFADDR_IN6,
  SIOCDIFADDR,
  SIOCGIFFLAGS,
  SIOCGIFMTU,
  SIOCSIFFLAGS,
  SIOCSIFMTU,
  SOCK_DGRAM,
} from "./constants.ts";
import {
  decodeIfreqFlags,
  decodeIfreqMtu,
  encodeIfreq,
  encodeIfreqAddr,
  encodeIfreqFlags,
  encodeIfreqMtu,
  encodeIn6Aliasreq,
  encodeInAliasreq,
} from "./structs.ts";
import { type DarwinSys, ioctl, sysCheck } from "./sys.ts";

/** Run `f` with a scratch socket of `family`, closed afterwards whatever happens. */
function withSocket<T>(sys: DarwinSys, family: number, f: (fd: number) => T): T {
  const fd = sysCheck(sys, "socket", sys.socket(family, SOCK_DGRAM, 0));
  try {
    return f(fd);
  } finally {
    sys.close(fd);
  }
}

/** Add local → peer with the given prefix (SIOCAIFADDR, or SIOCAIFADDR_IN6 for IPv6). */
export function addAddress(
  sys: DarwinSys,
  ifname: string,
  local: Uint8Array,
  peer: Uint8Array,
  prefixLength: number,
): void {
  if (local.length === 4) {
    const req = encodeInAliasreq(ifname, local, peer, prefixLength);
    withSocket(sys, AF_INET, (fd) => ioctl(sys, fd, SIOCAIFADDR, req, ifname));
  } else {
    // A p2p IPv6 destination is only accepted with /128 (EINVAL otherwise).
    const req = encodeIn6Aliasreq(ifname, local, peer, 128);
    withSocket(sys, AF_INET6, (fd) => ioctl(sys, fd, SIOCAIFADDR_IN6, req, ifname));
  }
}

/**
 * Add our own IPv6 address as a /128 with no destination (what `ifconfig utunN inet6 A/128` does):
 * the routes say what goes through the tunnel. NODAD: nobody else is on a utun, and a tentative
 * address could not be a source address for the second DAD takes (xnu honours the flag).
 */
export function addAddress6(sys: DarwinSys, ifname: string, local: Uint8Array): void {
  const req = encodeIn6Aliasreq(ifname, local, undefined, 128, IN6_IFF_NODAD);
  withSocket(sys, AF_INET6, (fd) => ioctl(sys, fd, SIOCAIFADDR_IN6, req, ifname));
}

/** Remove an IPv4 address (SIOCDIFADDR); EADDRNOTAVAIL when it is not there. */
export function deleteAddress(sys: DarwinSys, ifname: string, local: Uint8Array): void {
  const req = encodeIfreqAddr(ifname, local);
  withSocket(sys, AF_INET, (fd) => ioctl(sys, fd, SIOCDIFADDR, req, ifname));
}

export function setMtu(sys: DarwinSys, ifname: string, mtu: number): void {
  const req = encodeIfreqMtu(ifname, mtu);
  withSocket(sys, AF_INET, (fd) => ioctl(sys, fd, SIOCSIFMTU, req, ifname));
}

export function getMtu(sys: DarwinSys, ifname: string): number {
  const req = encodeIfreq(ifname);
  withSocket(sys, AF_INET, (fd) => ioctl(sys, fd, SIOCGIFMTU, req, ifname));
  return decodeIfreqMtu(req);
}

export function getFlags(sys: DarwinSys, ifname: string): number {
  const req = encodeIfreq(ifname);
  withSocket(sys, AF_INET, (fd) => ioctl(sys, fd, SIOCGIFFLAGS, req, ifname));
  return decodeIfreqFlags(req);
}

/**
 * Set IFF_UP (read-modify-write, keeping the other flags). utun is born up; setting it anyway is
 * what `ifconfig utunN up` in tailscale/openvpn does, and costs one ioctl.
 */
export function setUp(sys: DarwinSys, ifname: string): void {
  withSocket(sys, AF_INET, (fd) => {
    const req = encodeIfreq(ifname);
    ioctl(sys, fd, SIOCGIFFLAGS, req, ifname);
    const flags = decodeIfreqFlags(req);
    ioctl(sys, fd, SIOCSIFFLAGS, encodeIfreqFlags(ifname, flags | IFF_UP), ifname);
  });
}
