/**
 * A Tun that remembers the last TCP segments it passed, in both directions, as the netstack saw
 * them (inside any LossyTun): a small in-process tcpdump for explaining a stall in the kernel lab.
 * Sequence numbers are shown relative to each direction's SYN.
 */
import type { Tun } from "../../src/net/types.ts";
import { newParsed, parse } from "../../src/netstack/packet.ts";

const FLAGS = ["F", "S", "R", "P", ".", "U", "E", "C"];

export class TraceTun implements Tun {
  #ring: string[] = [];
  #p = newParsed();
  #isn = new Map<string, number>();
  #t0 = performance.now();

  /** `ports`: only segments to or from these ports (all when empty); `keep`: ring size. */
  constructor(private inner: Tun, private ports: number[] = [], private keep = 400) {}

  get name(): string {
    return this.inner.name;
  }
  get index(): number {
    return this.inner.index;
  }
  get mtu(): number {
    return this.inner.mtu;
  }

  async read(timeoutMs: number): Promise<Uint8Array[]> {
    const got = await this.inner.read(timeoutMs);
    for (const p of got) this.#note(p, "in ");
    return got;
  }

  write(packet: Uint8Array): boolean {
    this.#note(packet, "out");
    return this.inner.write(packet);
  }

  close(): void {
    this.inner.close();
  }

  /** The remembered segments, oldest first. */
  lines(): string[] {
    return [...this.#ring];
  }

  #note(pkt: Uint8Array, dir: string): void {
    const p = this.#p;
    if (parse(pkt, p) !== null || p.proto !== 6) return;
    if (this.ports.length && !this.ports.includes(p.sport) && !this.ports.includes(p.dport)) {
      return;
    }
    const key = `${p.sport}>${p.dport}`;
    const back = `${p.dport}>${p.sport}`;
    if (p.flags & 0x02) this.#isn.set(key, p.seq);
    const rel = (v: number, k: string) => {
      const base = this.#isn.get(k);
      return base === undefined ? v : (v - base) >>> 0;
    };
    const flags = FLAGS.filter((_, i) => p.flags & (1 << i)).join("");
    const ms = (performance.now() - this.#t0).toFixed(1);
    this.#ring.push(
      `${ms} ${dir} ${key} [${flags}] seq ${rel(p.seq, key)} ack ${rel(p.ack, back)} ` +
        `win ${p.window} len ${p.dataLen}`,
    );
    if (this.#ring.length > this.keep) this.#ring.shift();
  }
}
