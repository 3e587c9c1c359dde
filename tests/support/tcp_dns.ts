/**
 * A small authoritative DNS server over TCP (RFC 1035 §4.2.2 framing, RFC 7766: many queries per
 * connection) for the kernel lab: the netstack's DNS relay carries UDP queries to it as DNS over
 * TCP, and a client's TCP retry after a truncated answer reaches it the same way. Answers A, AAAA
 * and TXT from a table of exact names; any other name is NXDOMAIN, an existing name with no record
 * of the asked type gets an empty NOERROR answer.
 */
import { decodeMessage, encodeName, type Message } from "../../scripts/lab/dns.ts";
import { type DnsTcpServer, tcpDns } from "../../scripts/lab/services.ts";
import { parseAddr } from "../../src/netstack/packet.ts";

export const TYPE_A = 1;
export const TYPE_TXT = 16;
export const TYPE_AAAA = 28;

export interface Records {
  a?: string[];
  aaaa?: string[];
  txt?: string[];
}

export class TcpDnsServer {
  readonly stats = { connections: 0, queries: 0 };
  #server: DnsTcpServer;

  constructor(readonly table: Record<string, Records>, hostname = "127.0.0.1", port = 53) {
    this.#server = tcpDns(hostname, port, (msg) => {
      this.stats.queries++;
      try {
        return this.answer(decodeMessage(msg));
      } catch {
        return undefined; // not DNS: no answer, like a resolver facing garbage
      }
    }, () => this.stats.connections++);
  }

  close(): Promise<void> {
    return this.#server.close();
  }

  /** The response to one query. */
  answer(q: Message): Uint8Array {
    const question = q.questions[0];
    const rec = question ? this.table[question.name] : undefined;
    const rdatas: Uint8Array[] = [];
    if (rec && question) {
      if (question.type === TYPE_A) { for (const a of rec.a ?? []) rdatas.push(parseAddr(a)!); }
      if (question.type === TYPE_AAAA) {
        for (const a of rec.aaaa ?? []) rdatas.push(parseAddr(a)!);
      }
      if (question.type === TYPE_TXT) { for (const t of rec.txt ?? []) rdatas.push(txt(t)); }
    }
    const rcode = question && !rec ? 3 : 0;
    const qname = question ? encodeName(question.name) : new Uint8Array(0);
    const size = 12 + (question ? qname.length + 4 : 0) +
      rdatas.reduce((s, r) => s + 12 + r.length, 0);
    const out = new Uint8Array(size);
    const v = new DataView(out.buffer);
    v.setUint16(0, q.id);
    v.setUint16(2, 0x8000 | 0x0400 | (q.flags & 0x0100) | 0x0080 | rcode); // QR AA RD RA
    v.setUint16(4, question ? 1 : 0);
    v.setUint16(6, rdatas.length);
    let o = 12;
    if (question) {
      out.set(qname, o);
      o += qname.length;
      v.setUint16(o, question.type);
      v.setUint16(o + 2, question.class);
      o += 4;
    }
    for (const r of rdatas) {
      v.setUint16(o, 0xc00c); // the question's name
      v.setUint16(o + 2, question!.type);
      v.setUint16(o + 4, 1);
      v.setUint32(o + 6, 60);
      v.setUint16(o + 10, r.length);
      out.set(r, o + 12);
      o += 12 + r.length;
    }
    return out;
  }
}

/** One TXT character-string (≤ 255 bytes). */
function txt(s: string): Uint8Array {
  const b = new TextEncoder().encode(s);
  if (b.length > 255) throw new Error("a TXT string is at most 255 bytes");
  const out = new Uint8Array(1 + b.length);
  out[0] = b.length;
  out.set(b, 1);
  return out;
}
