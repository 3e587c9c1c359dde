/**
 * Where agentless DNS really goes. Apps query the VPC resolver's address (the tunnel answers as
 * it), but the real SSM agent refuses to forward to the VPC's reserved addresses, base+2
 * included (specs/ssm-protocol.md §8: "Forwarding to IP address … is forbidden"). So each
 * stream to a resolver goes to the first candidate that still works: the resolver itself (an
 * agent without the rule, or a resolver that is an ordinary address such as a Route 53 inbound
 * endpoint), then the instance's own stub resolver (systemd-resolved on 127.0.0.53, as on Amazon
 * Linux 2023 and Ubuntu). A candidate that fails is skipped for later streams; the relay resends
 * a failed query once, so the switch costs one round trip.
 */
import type { Destination, RemoteStream, RemoteStreamEvents, StreamTransport } from "./types.ts";

export const INSTANCE_STUB_RESOLVER = "127.0.0.53";

export interface UpstreamOptions {
  /** Tried before the address queried: resolvers the user named (`--dns-upstream`). */
  preferred?: string[];
  /** Tried after it; by default the instance's stub resolver. */
  fallbacks?: string[];
  log?: (line: string) => void;
}

export class DnsUpstreams implements StreamTransport {
  #next = 0;
  #preferred: string[];
  #fallbacks: string[];
  #log?: (line: string) => void;
  /** Which candidate answered last: for status. */
  current?: string;

  constructor(private inner: StreamTransport, o: UpstreamOptions = {}) {
    this.#preferred = o.preferred ?? [];
    this.#fallbacks = o.fallbacks ?? [INSTANCE_STUB_RESOLVER];
    this.#log = o.log;
  }

  open(dst: Destination, events: RemoteStreamEvents): RemoteStream {
    const hosts = [...this.#preferred, dst.host, ...this.#fallbacks];
    const i = Math.min(this.#next, hosts.length - 1);
    const host = hosts[i];
    const to: Destination = { family: host.includes(":") ? 6 : 4, host, port: dst.port };
    return this.inner.open(to, {
      ...events,
      opened: (r) => {
        if (r === "ok") this.current = `${host}:${dst.port}`;
        else if (i === this.#next && i < hosts.length - 1) {
          this.#next = i + 1;
          this.#log?.(
            `DNS: ${host}:${dst.port} ${r} through Session Manager; trying ${
              hosts[i + 1]
            }:${dst.port}`,
          );
        }
        events.opened(r);
      },
    });
  }
}
