/**
 * One rtnetlink transaction per call (os-ffi §9.2): socket, bind, send, recv until the reply with
 * our sequence number, close. A socket per request keeps nothing to leak and costs microseconds;
 * routes change a handful of times per run.
 */
import { check, errnoName, lastError, LINUX_E, linuxLibc, OsError } from "../libc.ts";
import { decodeError, type NlMessage, NLMSG_DONE, NLMSG_ERROR, splitMessages } from "./netlink.ts";

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_NONBLOCK = 0x800;
const SOCK_CLOEXEC = 0x80000;
const NETLINK_ROUTE = 0;
const NLM_F_MULTI = 0x2;
const POLLIN = 1;
const RECV_SIZE = 65536;
/** rtnetlink replies are queued before send() returns; this bounds a kernel that does not answer. */
const REPLY_TIMEOUT_MS = 5000;

let lastSeq = Date.now() & 0x7fffffff;

/** A fresh sequence number for a request. */
export function nextSeq(): number {
  lastSeq = (lastSeq + 1) & 0x7fffffff;
  return lastSeq;
}

/**
 * Send `msg` (built with sequence number `seq`) and collect the replies carrying that number:
 * resolves on the ACK (NLMSG_ERROR 0), on NLMSG_DONE, or on a single non-multipart answer (a
 * route get). A kernel error becomes an OsError named `call` with the kernel's errno.
 */
export async function transact(msg: Uint8Array<ArrayBuffer>, seq: number, call: string) {
  const lib = linuxLibc();
  const fd = check(
    "socket(AF_NETLINK)",
    lib.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE),
  );
  try {
    const sa = new Uint8Array(12); // sockaddr_nl: family, pad, pid 0 (kernel assigns), groups 0
    new DataView(sa.buffer).setUint16(0, AF_NETLINK, true);
    check("bind(AF_NETLINK)", lib.bind(fd, sa, 12));
    const sent = Number(lib.send(fd, msg, BigInt(msg.length), 0));
    if (sent < 0) throw lastError(`${call}: send`);
    return await collect(fd, seq, call);
  } finally {
    lib.close(fd);
  }
}

async function collect(fd: number, seq: number, call: string): Promise<NlMessage[]> {
  const lib = linuxLibc();
  const buf = new Uint8Array(RECV_SIZE);
  const pfd = new Uint8Array(8);
  const deadline = Date.now() + REPLY_TIMEOUT_MS;
  const replies: NlMessage[] = [];
  for (;;) {
    const n = Number(lib.recv(fd, buf, BigInt(buf.length), 0));
    if (n < 0) {
      const e = lastError(`${call}: recv`);
      if (e.errno !== LINUX_E.EAGAIN && e.errno !== LINUX_E.EINTR) throw e;
      const left = deadline - Date.now();
      if (left <= 0) throw new OsError(`${call}: no reply from the kernel`, 110, "ETIMEDOUT");
      const dv = new DataView(pfd.buffer);
      dv.setInt32(0, fd, true);
      dv.setInt16(4, POLLIN, true);
      dv.setInt16(6, 0, true);
      await lib.poll_nb(pfd, 1n, Math.min(left, 250));
      continue;
    }
    for (const m of splitMessages(buf.subarray(0, n))) {
      if (m.seq !== seq) continue; // someone else's traffic (or a stale reply)
      if (m.type === NLMSG_ERROR) {
        const errno = decodeError(m);
        if (errno !== 0) throw new OsError(call, errno, errnoName(errno));
        return replies;
      }
      if (m.type === NLMSG_DONE) return replies;
      replies.push({ ...m, body: m.body.slice() });
      if (!(m.flags & NLM_F_MULTI)) return replies;
    }
  }
}
