/**
 * darwin constants (os-ffi §3.1), identical on arm64 and x86_64. Kept apart from the encoders so
 * the ioctl numbers can be checked against the spec's table and against `_IOC` itself.
 */

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_ROUTE = 17;
export const AF_LINK = 18;
export const AF_INET6 = 30;
export const AF_SYSTEM = 32;
export const PF_ROUTE = AF_ROUTE;
export const PF_SYSTEM = AF_SYSTEM;

export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SYSPROTO_CONTROL = 2;
export const AF_SYS_CONTROL = 2;
export const MAX_KCTL_NAME = 96;
export const UTUN_CONTROL_NAME = "com.apple.net.utun_control";
export const UTUN_OPT_IFNAME = 2;
export const IFNAMSIZ = 16;
export const IFT_OTHER = 1;

export const IFF_UP = 0x1;
export const IFF_POINTOPOINT = 0x10;
export const IFF_RUNNING = 0x40;
export const IFF_MULTICAST = 0x8000;

export const O_NONBLOCK = 4;
export const F_GETFL = 3;
export const F_SETFL = 4;
export const F_SETFD = 2;
export const FD_CLOEXEC = 1;
export const POLLIN = 1;

export const ND6_INFINITE_LIFETIME = 0xffffffff;
export const IN6_IFF_NODAD = 0x20;

/** `_IOC` from xnu `sys/ioccom.h`: direction | (len & 0x1fff) << 16 | group << 8 | num. */
export function ioc(inout: number, group: string, num: number, len: number): number {
  return (inout | ((len & 0x1fff) << 16) | (group.charCodeAt(0) << 8) | num) >>> 0;
}
const IOC_IN = 0x80000000; // _IOW: darwin sets bit 31 (Linux uses bit 30 for the same thing)
const IOC_INOUT = 0xc0000000; // _IOWR

export const CTLIOCGINFO = ioc(IOC_INOUT, "N", 3, 100); // 0xC0644E03
export const SIOCSIFFLAGS = ioc(IOC_IN, "i", 16, 32); // 0x80206910
export const SIOCGIFFLAGS = ioc(IOC_INOUT, "i", 17, 32); // 0xC0206911
export const SIOCDIFADDR = ioc(IOC_IN, "i", 25, 32); // 0x80206919
export const SIOCAIFADDR = ioc(IOC_IN, "i", 26, 64); // 0x8040691A
export const SIOCGIFMTU = ioc(IOC_INOUT, "i", 51, 32); // 0xC0206933
export const SIOCSIFMTU = ioc(IOC_IN, "i", 52, 32); // 0x80206934
export const SIOCAIFADDR_IN6 = ioc(IOC_IN, "i", 26, 128); // 0x8080691A (the _64 variant)
export const SIOCDIFADDR_IN6 = ioc(IOC_IN, "i", 25, 288); // 0x81206919

/** Names for the ioctls above, so recorded calls and error lines read as what they are. */
export const IOCTL_NAMES: Record<number, string> = {
  [CTLIOCGINFO]: "CTLIOCGINFO",
  [SIOCSIFFLAGS]: "SIOCSIFFLAGS",
  [SIOCGIFFLAGS]: "SIOCGIFFLAGS",
  [SIOCDIFADDR]: "SIOCDIFADDR",
  [SIOCAIFADDR]: "SIOCAIFADDR",
  [SIOCGIFMTU]: "SIOCGIFMTU",
  [SIOCSIFMTU]: "SIOCSIFMTU",
  [SIOCAIFADDR_IN6]: "SIOCAIFADDR_IN6",
  [SIOCDIFADDR_IN6]: "SIOCDIFADDR_IN6",
};

export const RTM_VERSION = 5;
export const RTM_ADD = 1;
export const RTM_DELETE = 2;
export const RTM_GET = 4;

export const RTF_UP = 0x1;
export const RTF_GATEWAY = 0x2;
export const RTF_HOST = 0x4;
export const RTF_DONE = 0x40;
export const RTF_STATIC = 0x800;
export const RTF_IFSCOPE = 0x1000000;

/** RTAX_* slot i ↔ RTA_* bit (1 << i); sockaddrs follow the header in ascending slot order. */
export const RTAX_DST = 0;
export const RTAX_GATEWAY = 1;
export const RTAX_NETMASK = 2;
export const RTAX_GENMASK = 3;
export const RTAX_IFP = 4;
export const RTAX_IFA = 5;
export const RTAX_AUTHOR = 6;
export const RTAX_BRD = 7;
export const RTAX_MAX = 8;
