/**
 * TEST DOUBLE — nothing in production imports this. A fake libSystem with a toy xnu behind it,
 * so the darwin code runs on Linux: it records every call with decoded arguments (`calls`) and
 * behaves like the kernel would (utun units, interface flags/MTU/addresses, a routing table with
 * EEXIST/ESRCH, RTM_GET replies among unrelated routing noise). `fail()` scripts an errno for the
 * next matching call. Like arm64 xnu, ioctl/fcntl fail with EFAULT/EINVAL unless the argument is
 * passed both 3rd and 9th (os-ffi §2.3).
 */
import { DARWIN_E } from "../libc.ts";
import { formatIP, readCString } from "../struct.ts";
import * as C from "./constants.ts";
import { decodeRouteReply, decodeRtMsg, encodeRtMsg } from "./route_msg.ts";
import { sockaddrDl, sockaddrIn } from "./sockaddr.ts";
import type { DarwinSys } from "./sys.ts";

type Buf = Uint8Array<ArrayBuffer>;
export type FakeCall = { name: string } & Record<string, unknown>;

interface FakeIf {
  index: number;
  flags: number;
  mtu: number;
  addrs: { local: string; peer: string; mask: string }[];
}
interface FakeRoute {
  ifname: string;
  index: number;
  gateway?: string;
  flags: number;
}
interface FakeFd {
  kind: "ctl" | "route" | "inet" | "pipe-r" | "pipe-w";
  /** The address family of an "inet" socket: the _IN6 ioctls need AF_INET6. */
  af?: number;
  fl: number;
  rx: Uint8Array[];
  utun?: string;
  peer?: number;
}

const prefixOf = (mask: Uint8Array) =>
  mask.reduce((n, b) => n + b.toString(2).replace(/0/g, "").length, 0);

export class FakeDarwinLibc implements DarwinSys {
  readonly calls: FakeCall[] = [];
  root = true;
  pid = 4242;
  ctlId = 0x0a;
  /** Units taken by other processes: utun0..utun4, so the kernel picks utun5 (index 24). */
  readonly busy = new Set([0, 1, 2, 3, 4]);
  readonly ifs = new Map<string, FakeIf>([
    ["lo0", { index: 1, flags: 0x8049, mtu: 16384, addrs: [] }],
    ["en0", { index: 4, flags: 0x8863, mtu: 1500, addrs: [] }],
  ]);
  readonly routes = new Map<string, FakeRoute>([
    ["0.0.0.0/0", { ifname: "en0", index: 4, gateway: "192.168.1.1", flags: 0x803 }],
    ["192.168.1.0/24", { ifname: "en0", index: 4, flags: 0x1 }],
  ]);
  /** Frames the code wrote to each utun. */
  readonly sent = new Map<string, Uint8Array[]>();
  /** Unrelated routing messages delivered before each RTM_GET reply. */
  noise: Uint8Array[] = [];
  #errno = 0;
  #nextFd = 3;
  readonly #fds = new Map<number, FakeFd>();
  readonly #failures: { name: string; errno: number; match?: (c: FakeCall) => boolean }[] = [];
  #wake: (() => void)[] = [];

  /** The next call named `name` (and matching) returns -1 with `errno`. */
  fail(name: string, errno: number, match?: (c: FakeCall) => boolean): this {
    this.#failures.push({ name, errno, match });
    return this;
  }

  /** Call names in order, e.g. ["socket", "ioctl CTLIOCGINFO", ...]. */
  get names(): string[] {
    return this.calls.map((c) => (c.name === "ioctl" ? `ioctl ${c.req}` : c.name));
  }

  /** File descriptors still open (a leak shows up here). */
  get openFds(): number[] {
    return [...this.#fds.keys()];
  }

  /** Queue a frame (with its 4-byte header) for the code to read from `ifname`. */
  inject(ifname: string, frame: Uint8Array): void {
    for (const f of this.#fds.values()) if (f.utun === ifname) f.rx.push(frame.slice());
    this.#notify();
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = [];
    for (const f of w) f();
  }

  #call(c: FakeCall, run: () => number): number {
    this.calls.push(c);
    const i = this.#failures.findIndex((f) => f.name === c.name && (!f.match || f.match(c)));
    if (i >= 0) return this.#err(this.#failures.splice(i, 1)[0].errno);
    return run();
  }

  #err(n: number): number {
    this.#errno = n;
    return -1;
  }

  #open(kind: FakeFd["kind"]): number {
    const fd = this.#nextFd++;
    this.#fds.set(fd, { kind, fl: 2, rx: [] });
    return fd;
  }

  errno(): number {
    return this.#errno;
  }

  socket(domain: number, type: number, protocol: number): number {
    return this.#call({ name: "socket", domain, type, protocol }, () => {
      if (domain === C.PF_SYSTEM && type === C.SOCK_DGRAM && protocol === C.SYSPROTO_CONTROL) {
        return this.#open("ctl");
      }
      if (domain === C.PF_ROUTE && type === C.SOCK_RAW) return this.#open("route");
      if ((domain === C.AF_INET || domain === C.AF_INET6) && type === C.SOCK_DGRAM) {
        const fd = this.#open("inet");
        this.#fds.get(fd)!.af = domain;
        return fd;
      }
      return this.#err(43);
    });
  }

  connect(fd: number, addr: Buf, len: number): number {
    const dv = new DataView(addr.buffer, addr.byteOffset);
    const scId = dv.getUint32(4, true), scUnit = dv.getUint32(8, true);
    return this.#call({ name: "connect", fd, len, scLen: addr[0], scId, scUnit }, () => {
      const f = this.#fds.get(fd);
      if (f?.kind !== "ctl" || addr[0] !== 32 || len !== 32) return this.#err(DARWIN_E.EINVAL);
      if (!this.root) return this.#err(DARWIN_E.EPERM);
      if (scId !== this.ctlId) return this.#err(DARWIN_E.ENOENT);
      let unit = scUnit - 1;
      if (scUnit === 0) { for (unit = 0; this.busy.has(unit);) unit++; }
      if (this.busy.has(unit)) return this.#err(DARWIN_E.EBUSY);
      this.busy.add(unit);
      f.utun = `utun${unit}`;
      this.ifs.set(f.utun, { index: 19 + unit, flags: 0x8051, mtu: 1500, addrs: [] });
      return 0;
    });
  }

  getsockopt(fd: number, level: number, name: number, value: Buf, len: Buf): number {
    return this.#call({ name: "getsockopt", fd, level, opt: name }, () => {
      const u = this.#fds.get(fd)?.utun;
      if (!u || level !== C.SYSPROTO_CONTROL || name !== C.UTUN_OPT_IFNAME) {
        return this.#err(DARWIN_E.EINVAL);
      }
      value.set(new TextEncoder().encode(u + "\0"));
      new DataView(len.buffer).setUint32(0, u.length + 1, true);
      return 0;
    });
  }

  ioctl(fd: number, req: bigint, arg: Buf, ...rest: [bigint, bigint, bigint, bigint, bigint, Buf]) {
    const r = Number(req);
    const c: FakeCall = {
      name: "ioctl",
      fd,
      req: C.IOCTL_NAMES[r] ?? `0x${r.toString(16)}`,
      arg: arg.slice(),
      ninthIsArg: rest[5] === arg,
      middle: rest.slice(0, 5),
    };
    if (r !== C.CTLIOCGINFO) c.ifname = readCString(arg.subarray(0, 16));
    return this.#call(c, () => {
      if (rest[5] !== arg) return this.#err(14); // EFAULT: the variadic argument was not on the stack
      const f = this.#fds.get(fd);
      const dv = new DataView(arg.buffer, arg.byteOffset, arg.byteLength);
      if (r === C.CTLIOCGINFO) {
        if (f?.kind !== "ctl") return this.#err(DARWIN_E.EINVAL);
        if (readCString(arg.subarray(4)) !== C.UTUN_CONTROL_NAME) return this.#err(DARWIN_E.ENOENT);
        dv.setUint32(0, this.ctlId, true);
        return 0;
      }
      const ifc = this.ifs.get(c.ifname as string);
      if (f?.kind !== "inet") return this.#err(25);
      if (!ifc) return this.#err(DARWIN_E.ENXIO);
      const setter = r === C.SIOCAIFADDR || r === C.SIOCAIFADDR_IN6 || r === C.SIOCSIFMTU ||
        r === C.SIOCSIFFLAGS;
      if (setter && !this.root) return this.#err(DARWIN_E.EPERM);
      switch (r) {
        case C.SIOCAIFADDR: {
          const peer = arg.subarray(36, 40);
          if (peer.every((b) => b === 0)) return this.#err(DARWIN_E.EDESTADDRREQ);
          const ip = (o: number) => formatIP(arg.subarray(o, o + 4));
          ifc.addrs.push({ local: ip(20), peer: ip(36), mask: ip(52) });
          // xnu installs a host route to the peer only (os-ffi §6).
          const { index } = ifc;
          this.routes.set(`${ip(36)}/32`, { ifname: c.ifname as string, index, flags: 0x5 });
          return 0;
        }
        case C.SIOCAIFADDR_IN6: {
          // xnu in6_update_ifa's checks (os-ffi §6); 47 = EAFNOSUPPORT.
          if (f.af !== C.AF_INET6) return this.#err(25);
          if (arg[16] !== 28 || arg[17] !== C.AF_INET6) return this.#err(47);
          const plen = prefixOf(arg.subarray(80, 96));
          if (arg[72] === 0 || arg[72] > 28 || plen === 0) return this.#err(DARWIN_E.EINVAL);
          if (dv.getUint32(124, true) > dv.getUint32(120, true)) return this.#err(DARWIN_E.EINVAL);
          const dst = arg[45]; // utun is p2p: an AF_INET6 destination only with /128
          if (dst !== C.AF_UNSPEC && dst !== C.AF_INET6) return this.#err(47);
          if (dst === C.AF_INET6 && plen !== 128) return this.#err(DARWIN_E.EINVAL);
          const a6 = (o: number) => formatIP(arg.subarray(o, o + 16));
          ifc.addrs.push({ local: a6(24), peer: dst ? a6(52) : "", mask: `/${plen}` });
          return 0;
        }
        case C.SIOCSIFMTU:
          ifc.mtu = dv.getInt32(16, true);
          return ifc.mtu < 576 || ifc.mtu > 16384 ? this.#err(DARWIN_E.EINVAL) : 0;
        case C.SIOCGIFMTU:
          dv.setInt32(16, ifc.mtu, true);
          return 0;
        case C.SIOCGIFFLAGS:
          dv.setUint16(16, ifc.flags, true);
          return 0;
        case C.SIOCSIFFLAGS:
          ifc.flags = dv.getUint16(16, true);
          return 0;
      }
      return this.#err(25);
    });
  }

  fcntl(
    fd: number,
    cmd: number,
    v: bigint,
    ...rest: [bigint, bigint, bigint, bigint, bigint, bigint]
  ) {
    const c = { name: "fcntl", fd, cmd, value: Number(v), ninthIsArg: rest[5] === v };
    return this.#call(c, () => {
      const f = this.#fds.get(fd);
      if (!f) return this.#err(9);
      if (rest[5] !== v) return this.#err(DARWIN_E.EINVAL);
      if (cmd === C.F_GETFL) return f.fl;
      if (cmd === C.F_SETFL) f.fl = Number(v);
      return 0;
    });
  }

  read(fd: number, buf: Buf, n: bigint): number {
    return this.#call({ name: "read", fd }, () => {
      const f = this.#fds.get(fd);
      if (!f) return this.#err(9);
      const m = f.rx.shift();
      if (!m) return this.#err(DARWIN_E.EAGAIN);
      const len = Math.min(m.length, Number(n), buf.length);
      buf.set(m.subarray(0, len));
      return len;
    });
  }

  write(fd: number, buf: Buf, n: bigint): number {
    const bytes = buf.slice(0, Number(n));
    const f = this.#fds.get(fd);
    const c: FakeCall = { name: "write", fd, bytes };
    if (f?.kind === "route") c.rtm = decodeRtMsg(bytes);
    return this.#call(c, () => {
      if (!f) return this.#err(9);
      if (f.kind === "pipe-w") {
        this.#fds.get(f.peer!)?.rx.push(bytes);
        this.#notify();
        return bytes.length;
      }
      if (f.utun) {
        this.sent.set(f.utun, [...this.sent.get(f.utun) ?? [], bytes]);
        return bytes.length;
      }
      if (f.kind === "route") return this.#route(f, bytes);
      return this.#err(DARWIN_E.EINVAL);
    });
  }

  /** A toy route_output(): validates like xnu, then add/delete/get on `routes`. */
  #route(f: FakeFd, bytes: Uint8Array): number {
    const m = decodeRtMsg(bytes);
    if (m.msglen !== bytes.length) return this.#err(DARWIN_E.EINVAL);
    if (m.version !== C.RTM_VERSION) return this.#err(43);
    if (m.type !== C.RTM_GET && !this.root) return this.#err(DARWIN_E.EPERM);
    const r = decodeRouteReply(m);
    if (!r.dst?.ip || r.dst.ip.length !== 4) return this.#err(DARWIN_E.EINVAL);
    const host = r.netmask?.ip === undefined;
    const prefix = `${formatIP(r.dst.ip)}/${host ? 32 : prefixOf(r.netmask!.ip!)}`;
    // RTF_IFSCOPE: the route of that interface only, kept as "prefix%ifindex" (netstat's `I`).
    const scope = m.flags & C.RTF_IFSCOPE ? m.index : 0;
    const key = scope ? `${prefix}%${scope}` : prefix;
    if (m.type === C.RTM_ADD) {
      if (this.routes.has(key)) return this.#err(DARWIN_E.EEXIST);
      if (r.gateway?.ip) {
        // A gateway must be on a directly connected network: an on-link route, not a gateway's.
        const via = this.#lookup(r.gateway.ip);
        const on = via === undefined ? undefined : this.routes.get(via);
        if (!on || on.gateway) return this.#err(DARWIN_E.ENETUNREACH);
        const gateway = m.flags & C.RTF_GATEWAY ? formatIP(r.gateway.ip) : undefined;
        this.routes.set(key, { ifname: on.ifname, index: on.index, gateway, flags: m.flags });
        return bytes.length;
      }
      const idx = r.gateway?.link?.index ?? 0;
      const ifname = [...this.ifs].find(([, i]) => i.index === idx)?.[0];
      if (!ifname) return this.#err(DARWIN_E.ENETUNREACH);
      this.routes.set(key, { ifname, index: idx, flags: m.flags });
      return bytes.length;
    }
    if (m.type === C.RTM_DELETE) {
      if (!this.routes.delete(key)) return this.#err(DARWIN_E.ESRCH);
      return bytes.length;
    }
    if (m.type !== C.RTM_GET) return this.#err(DARWIN_E.EINVAL);
    // A scoped exact lookup falls back to the unscoped route when that one is on the interface.
    const exact = this.routes.has(key)
      ? key
      : scope && this.routes.get(prefix)?.index === scope
      ? prefix
      : undefined;
    const found = host ? this.#lookup(r.dst.ip) : exact;
    if (!found) return this.#err(DARWIN_E.ESRCH);
    const rt = this.routes.get(found)!;
    const [net, len] = found.split("%")[0].split("/");
    const mask = new Uint8Array(4).map((_, i) =>
      (0xff00 >> Math.min(8, Math.max(0, +len - 8 * i))) & 0xff
    );
    const src = this.ifs.get(rt.ifname)?.addrs[0]?.local ?? "192.168.1.23";
    const a = (s: string) => sockaddrIn(new Uint8Array(s.split(".").map(Number)));
    const reply = encodeRtMsg({
      type: C.RTM_GET,
      flags: rt.flags | C.RTF_DONE,
      seq: m.seq,
      pid: this.pid,
      index: rt.index,
      // DST, GATEWAY, NETMASK (none for a host route), no GENMASK, IFP (named sockaddr_dl),
      // IFA (source address).
      addrs: [
        a(net),
        rt.gateway ? a(rt.gateway) : sockaddrDl(rt.index),
        rt.flags & C.RTF_HOST ? undefined : a(formatIP(mask)),
        undefined,
        sockaddrDl(rt.index, rt.ifname),
        a(src),
      ],
    });
    f.rx.push(...this.noise, reply);
    return bytes.length;
  }

  #lookup(ip: Uint8Array): string | undefined {
    const n = ip.reduce((acc, b) => acc * 256 + b, 0);
    let best: string | undefined, bestLen = -1;
    for (const key of this.routes.keys()) {
      if (key.includes("%")) continue; // scoped: only for lookups that name the interface
      const [net, len] = key.split("/");
      const base = net.split(".").reduce((acc, b) => acc * 256 + Number(b), 0);
      const size = 2 ** (32 - Number(len));
      if (n >= base && n < base + size && Number(len) > bestLen) [best, bestLen] = [key, +len];
    }
    return best;
  }

  close(fd: number): number {
    return this.#call({ name: "close", fd }, () => {
      const f = this.#fds.get(fd);
      if (!f) return this.#err(9);
      this.#fds.delete(fd);
      if (f.utun) {
        // Closing the control socket destroys the interface and purges its routes.
        const idx = this.ifs.get(f.utun)!.index;
        this.ifs.delete(f.utun);
        this.busy.delete(Number(f.utun.slice(4)));
        for (const [k, r] of this.routes) if (r.index === idx) this.routes.delete(k);
      }
      return 0;
    });
  }

  pipe(fds: Buf): number {
    return this.#call({ name: "pipe" }, () => {
      const r = this.#open("pipe-r"), w = this.#open("pipe-w");
      this.#fds.get(w)!.peer = r;
      const dv = new DataView(fds.buffer, fds.byteOffset);
      dv.setInt32(0, r, true);
      dv.setInt32(4, w, true);
      return 0;
    });
  }

  getpid(): number {
    return this.pid;
  }

  if_nametoindex(name: Buf): number {
    const n = readCString(name);
    this.calls.push({ name: "if_nametoindex", ifname: n });
    return this.ifs.get(n)?.index ?? 0;
  }

  if_indextoname(index: number, buf: Buf): Deno.PointerValue {
    const hit = [...this.ifs].find(([, i]) => i.index === index);
    if (!hit) return null;
    buf.set(new TextEncoder().encode(hit[0] + "\0"));
    return Deno.UnsafePointer.of(buf);
  }

  async poll_nb(fds: Buf, nfds: number, timeoutMs: number): Promise<number> {
    const dv = new DataView(fds.buffer, fds.byteOffset);
    const list = Array.from({ length: nfds }, (_, i) => dv.getInt32(8 * i, true));
    this.calls.push({ name: "poll", nfds, fds: list, timeoutMs });
    const ready = () => list.filter((fd) => (this.#fds.get(fd)?.rx.length ?? 0) > 0).length;
    if (ready() === 0) {
      await new Promise<void>((res) => {
        const t = setTimeout(res, timeoutMs);
        this.#wake.push(() => {
          clearTimeout(t);
          res();
        });
      });
    }
    return ready();
  }
}
