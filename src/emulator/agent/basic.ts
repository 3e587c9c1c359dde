/**
 * Basic (non-multiplexed) port forwarding (specs/ssm-protocol.md §8 "Basic mode"): one TCP
 * connection dialled at session start, raw bytes both ways. DisconnectToPort (flag 1) closes it;
 * the next data re-dials. A destination close also waits for the next data to re-dial.
 *
 * The spec is silent on a failing re-dial; here the data is dropped and the client gets a
 * ConnectToPortError flag, rather than the agent's endless not-acked loop.
 */
import type { PortHost } from "./mux.ts";
import { MAX_PENDING_TCP_WRITE } from "./mux.ts";
import { TcpLink } from "./tcp.ts";

const DISCONNECT_TO_PORT = 1;
const CONNECT_TO_PORT_ERROR = 3;

export class BasicPort {
  #tcp?: TcpLink;
  #links = new Set<TcpLink>();
  #closed = false;
  #started = false;

  constructor(private host: PortHost) {}

  /** The initial dial; failing it fails the session, as the agent's InitializeStreams does. */
  start(): void {
    this.#started = true;
    this.#dial((err) => this.host.fail(`Unable to connect to the destination: ${err.message}`));
  }

  input(payload: Uint8Array): boolean {
    if (this.#closed) return true;
    if (this.#tcp && this.#tcp.pendingWrite > MAX_PENDING_TCP_WRITE) return false;
    if (!this.#tcp || this.#tcp.closed) {
      this.#dial((err) => {
        this.host.log(`agent: basic re-dial failed: ${err.message}`);
        this.host.flag(CONNECT_TO_PORT_ERROR);
      });
    }
    this.#tcp!.write(payload);
    return true;
  }

  flag(value: number): void {
    if (value !== DISCONNECT_TO_PORT || !this.#started) return;
    this.#tcp?.close();
    this.#tcp = undefined;
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const l of this.#links) l.close();
    await Promise.all([...this.#links].map((l) => l.done));
  }

  #dial(onError: (err: Error) => void): void {
    const { hostname, port } = this.host.destination;
    const tcp: TcpLink = new TcpLink(hostname, port, {
      data: async (bytes) => {
        if (this.#closed || this.#tcp !== tcp) return;
        this.host.out(bytes);
        await this.host.room();
      },
      dialError: (err) => {
        if (this.#tcp === tcp) this.#tcp = undefined;
        if (!this.#closed) onError(err);
      },
      closed: () => {
        if (this.#tcp === tcp) this.#tcp = undefined;
      },
    });
    this.#tcp = tcp;
    this.#links.add(tcp);
    tcp.done.then(() => this.#links.delete(tcp));
  }
}
