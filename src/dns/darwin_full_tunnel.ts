/**
 * The darwin `Dns` for full-tunnel mode (`DnsConfig.domains` holds "."): publishes the tunnel as
 * the primary network service (darwin_default.ts) and keeps that configd session open until
 * `revert`, because ending it is what removes the keys. A `revert` from another process (the
 * next run after a crash) has no session and removes only what is left over.
 */
import { type DarwinSC, darwinSC } from "../../ffi/darwin/cf.ts";
import { UserError } from "../errors.ts";
import type { DnsConfig, DnsState, TunConfig } from "../net/types.ts";
import {
  type DefaultDnsOptions,
  type DefaultDnsSession,
  publishDefaultDns,
  removeLeftoverService,
} from "./darwin_default.ts";

export const SC_KIND = "sc-dynamic-store" as const;

export interface FullTunnelDnsDeps {
  /** CoreFoundation + SystemConfiguration, or a fake in tests. Default: loaded on first use. */
  sc?: DarwinSC;
  /** How `openTun` configured an interface of this process (its address and peer). */
  tun(ifname: string): TunConfig | undefined;
  interfaceExists(name: string): boolean;
  options?: Omit<DefaultDnsOptions, "interfaceExists"> & {
    /** CIDRs kept off the tunnel by configd (`ExcludedRoutes`): the tunnel's own endpoints. */
    excluded?: () => string[];
  };
}

export interface FullTunnelDns {
  apply(cfg: DnsConfig): Promise<DnsState>;
  revert(state: DnsState): Promise<void>;
  /** The open session (tests and the smoke test look at it). */
  readonly session: DefaultDnsSession | undefined;
}

function load(deps: FullTunnelDnsDeps): DarwinSC {
  if (deps.sc) return deps.sc;
  try {
    return darwinSC();
  } catch (e) {
    const why = (e as Error).message;
    throw new UserError(`cannot load macOS SystemConfiguration through FFI (${why}): report this`);
  }
}

export function fullTunnelDns(deps: FullTunnelDnsDeps): FullTunnelDns {
  let live: DefaultDnsSession | undefined;
  return {
    get session() {
      return live;
    },

    async apply(cfg) {
      const t = deps.tun(cfg.ifname);
      if (!t) throw new Error(`full-tunnel DNS: ${cfg.ifname} was not opened by this platform`);
      if (live) await live.close(); // applied again: the new session takes over
      live = undefined;
      const { excluded, ...options } = deps.options ?? {};
      live = await publishDefaultDns(load(deps), {
        ifname: cfg.ifname,
        address: t.address,
        peer: t.peer,
        prefixLength: t.prefixLength,
        server: cfg.server,
        domains: cfg.domains,
        excluded: cfg.excluded ?? excluded?.() ?? [],
      }, { ...options, interfaceExists: deps.interfaceExists });
      return { kind: SC_KIND, items: [...live.keys] };
    },

    async revert(state) {
      if (state.kind !== SC_KIND) return;
      if (live) {
        const s = live;
        live = undefined;
        await s.close();
        return;
      }
      removeLeftoverService(load(deps), state.items, deps.interfaceExists);
    },
  };
}
