import type { RouteInfo, Routes } from "../../src/net/types.ts";

/**
 * A routing table as the kernel would answer RTM_GETROUTE: the first entry whose prefix starts the
 * address (plain string prefixes such as "192.168.1."), or "default". Adding and deleting do
 * nothing: the tests using it check what would conflict, not what is changed.
 */
export function routeTable(entries: [string, RouteInfo][]): Routes {
  return {
    add: () => Promise.resolve(),
    delete: () => Promise.resolve(),
    addPin: () => Promise.resolve(),
    deletePin: () => Promise.resolve(),
    get(address: string) {
      const hit = entries.find(([prefix]) => prefix === "default" || address.startsWith(prefix));
      return Promise.resolve(hit?.[1]);
    },
    defaultRoute: () => Promise.resolve(entries.find(([prefix]) => prefix === "default")?.[1]),
  };
}
