/**
 * TEST DOUBLE — nothing in production imports this. A fake SystemConfiguration on top of the fake
 * CoreFoundation (fake_cf.ts), so the configd code runs on Linux (macos-dns-routes §7):
 *
 * - configd: sessions with or without `UseSessionKeys`, keys with an owner; a session-keyed set of
 *   a key it does not own fails with KeyExists (1005), which SetMultiple swallows; removing an
 *   absent key is NoKey (1004); not root is AccessError (1003); a session that ends (CFRelease of
 *   the store, or `crash()`) takes its keys with it; `restartConfigd()` loses all State:.
 * - IPMonitor, small: after every change it elects the primary IPv4 service (OverridePrimary
 *   wins if the dict has a Router and an existing interface) and rewrites State:/Network/Global/
 *   IPv4 and /DNS from it.
 */
import type { DarwinSC } from "./cf.ts";
import { SC_STATUS } from "./dynamic_store.ts";
import { FakeCF } from "./fake_cf.ts";
import type { Plist } from "./plist.ts";

type Ptr = Deno.PointerValue;

interface Session {
  id: number;
  name: string;
  sessionKeys: boolean;
  open: boolean;
}
interface StoreKey {
  value: Plist;
  /** The session that created it with UseSessionKeys; configd removes it with the session. */
  owner?: number;
}

export const PHYSICAL_SERVICE = "8C5E2D3A-0000-4000-8000-00000000E0E0";
export const GLOBAL_IPV4 = "State:/Network/Global/IPv4";
export const GLOBAL_DNS = "State:/Network/Global/DNS";

export class FakeDarwinSC extends FakeCF implements DarwinSC {
  /** The process runs as root (configd lets root write State: keys). */
  root = true;
  /** Model §9.1 failing: IPMonitor ignores OverridePrimary on a third-party service. */
  ignoreOverridePrimary = false;
  /** Runs at the start of each SetMultiple (another client racing us). */
  beforeSetMultiple?: () => void;
  readonly store = new Map<string, StoreKey>();
  readonly #sessions: Session[] = [];
  readonly #failures: { name: string; code: number }[] = [];
  #error = 0;

  /** `interfaceExists`: the kernel's view (the fake libc's, usually); en0 by default. */
  constructor(readonly interfaceExists: (name: string) => boolean = (n) => n === "en0") {
    super();
    this.seed();
  }

  /** The physical network as configd shows it before any VPN: en0 via 192.168.1.1. */
  seed(): void {
    this.store.set("Setup:/Network/Global/IPv4", { value: { ServiceOrder: [PHYSICAL_SERVICE] } });
    this.store.set(`State:/Network/Service/${PHYSICAL_SERVICE}/IPv4`, {
      value: {
        InterfaceName: "en0",
        Addresses: ["192.168.1.23"],
        SubnetMasks: ["255.255.255.0"],
        Router: "192.168.1.1",
      },
    });
    this.store.set(`State:/Network/Service/${PHYSICAL_SERVICE}/DNS`, {
      value: { ServerAddresses: ["192.168.1.1"], DomainName: "lan" },
    });
    this.#ipmonitor();
  }

  /** The next call named `name` fails with SCError `code`. */
  fail(name: string, code: number): this {
    this.#failures.push({ name, code });
    return this;
  }

  /** Sessions still open. */
  get openSessions(): number {
    return this.#sessions.filter((s) => s.open).length;
  }

  /** The process dies: configd sees no senders on its sessions and closes them. */
  crash(): void {
    for (const s of this.#sessions) this.#closeSession(s);
    this.forgetObjects();
  }

  /** configd restarts: all State: is lost; agents (DHCP) re-publish the physical service. */
  restartConfigd(): void {
    for (const k of [...this.store.keys()]) if (k.startsWith("State:")) this.store.delete(k);
    this.seed();
  }

  /** Write a key as another (plain) client would, e.g. a stale key or another VPN. */
  put(key: string, value: Plist): void {
    this.store.set(key, { value: structuredClone(value) });
    this.#ipmonitor();
  }

  /** An interface came or went: IPMonitor re-elects. */
  interfacesChanged(): void {
    this.#ipmonitor();
  }

  /** A key's value as configd holds it. */
  value(key: string): Plist | undefined {
    return this.store.get(key)?.value;
  }

  protected override freed(v: unknown): void {
    this.#closeSession(v as Session);
  }

  #fail(name: string): boolean {
    const i = this.#failures.findIndex((f) => f.name === name);
    if (i < 0) return false;
    this.#error = this.#failures.splice(i, 1)[0].code;
    return true;
  }

  #session(store: Ptr, what: string): Session {
    const s = this.as(store, "opaque", what).v as Session;
    if (!s.open) throw new Error(`${what}: session closed`);
    return s;
  }

  #key(p: Ptr, what: string): string {
    return this.as(p, "string", what).v;
  }

  #closeSession(s: Session): void {
    if (!s.open) return;
    s.open = false;
    for (const [k, v] of this.store) if (v.owner === s.id) this.store.delete(k);
    this.#ipmonitor();
  }

  SCError = (): number => this.#error;

  /** Static C strings, kept alive like libSystem's. */
  readonly #errorTexts = new Map<number, Uint8Array<ArrayBuffer>>();

  SCErrorString = (code: number): Ptr => {
    let text = this.#errorTexts.get(code);
    if (!text) {
      this.#errorTexts.set(code, text = new TextEncoder().encode(`fake SCError ${code}\0`));
    }
    return Deno.UnsafePointer.of(text);
  };

  SCDynamicStoreCreateWithOptions(alloc: Ptr, name: Ptr, opts: Ptr, cb: Ptr, ctx: Ptr): Ptr {
    const options = opts === null ? {} : this.decode(this.idOf(opts)) as Record<string, Plist>;
    const storeName = this.#key(name, "SCDynamicStoreCreateWithOptions");
    this.record({ name: "SCDynamicStoreCreateWithOptions", storeName, options });
    if (alloc !== null || cb !== null || ctx !== null) throw new Error("expected NULLs");
    if (this.#fail("SCDynamicStoreCreateWithOptions")) return null;
    const flag = options.UseSessionKeys;
    if (flag !== undefined && typeof flag !== "boolean") {
      this.#error = SC_STATUS.InvalidArgument; // _configopen.c: must be a CFBoolean
      return null;
    }
    const session = {
      id: this.#sessions.length + 1,
      name: storeName,
      sessionKeys: !!flag,
      open: true,
    };
    this.#sessions.push(session);
    return this.ptr(this.newObj({ t: "opaque", v: session }));
  }

  SCDynamicStoreCopyValue(store: Ptr, key: Ptr): Ptr {
    const k = this.#key(key, "SCDynamicStoreCopyValue");
    this.#session(store, "SCDynamicStoreCopyValue");
    this.record({ name: "SCDynamicStoreCopyValue", key: k });
    if (this.#fail("SCDynamicStoreCopyValue")) return null;
    const v = this.store.get(k);
    if (!v) {
      this.#error = SC_STATUS.NoKey;
      return null;
    }
    return this.ptr(this.encode(v.value));
  }

  SCDynamicStoreSetMultiple(store: Ptr, set: Ptr, remove: Ptr, notify: Ptr): number {
    const s = this.#session(store, "SCDynamicStoreSetMultiple");
    const values = set === null ? null : this.decode(this.idOf(set)) as Record<string, Plist>;
    const removed = remove === null ? null : this.decode(this.idOf(remove)) as string[];
    this.record({ name: "SCDynamicStoreSetMultiple", set: values, remove: removed, notify });
    this.beforeSetMultiple?.();
    if (this.#fail("SCDynamicStoreSetMultiple")) return 0;
    if (!this.root) {
      this.#error = SC_STATUS.AccessError;
      return 0;
    }
    for (const [k, v] of Object.entries(values ?? {})) {
      const old = this.store.get(k);
      // Session-keyed: only new keys or our own; anything else is KeyExists, which SetMultiple
      // swallows (_configset.c casts each result to void).
      if (s.sessionKeys && old && old.owner !== s.id) continue;
      const owner = s.sessionKeys ? s.id : undefined; // a plain set strips another's tag
      this.store.set(k, { value: v, ...(owner !== undefined ? { owner } : {}) });
    }
    for (const k of removed ?? []) this.store.delete(k);
    this.#ipmonitor();
    return 1;
  }

  SCDynamicStoreRemoveValue(store: Ptr, key: Ptr): number {
    const k = this.#key(key, "SCDynamicStoreRemoveValue");
    this.#session(store, "SCDynamicStoreRemoveValue");
    this.record({ name: "SCDynamicStoreRemoveValue", key: k });
    if (this.#fail("SCDynamicStoreRemoveValue")) return 0;
    if (!this.root) {
      this.#error = SC_STATUS.AccessError;
      return 0;
    }
    if (!this.store.delete(k)) {
      this.#error = SC_STATUS.NoKey;
      return 0;
    }
    this.#ipmonitor();
    return 1;
  }

  SCDynamicStoreCopyKeyList(store: Ptr, pattern: Ptr): Ptr {
    const p = this.#key(pattern, "SCDynamicStoreCopyKeyList");
    this.#session(store, "SCDynamicStoreCopyKeyList");
    this.record({ name: "SCDynamicStoreCopyKeyList", pattern: p });
    if (this.#fail("SCDynamicStoreCopyKeyList")) return null;
    const re = new RegExp(p); // regexec: unanchored unless the pattern anchors itself
    return this.ptr(this.encode([...this.store.keys()].filter((k) => re.test(k))));
  }

  // --- IPMonitor ----------------------------------------------------------------------------

  #ipmonitor(): void {
    const order = (this.value("Setup:/Network/Global/IPv4") as { ServiceOrder?: string[] })
      ?.ServiceOrder ?? [];
    let best: { id: string; rank: number; dict: Record<string, Plist> } | undefined;
    for (const [k, { value }] of this.store) {
      const m = /^State:\/Network\/Service\/([^/]+)\/IPv4$/.exec(k);
      if (!m || typeof value !== "object" || Array.isArray(value)) continue;
      const d = value as Record<string, Plist>;
      const ifname = d.InterfaceName, router = d.Router, addrs = d.Addresses;
      if (typeof ifname !== "string" || !this.interfaceExists(ifname)) continue;
      if (!Array.isArray(addrs) || addrs.length === 0) continue;
      // No Router: no default route, so not a primary candidate (ip_plugin.c demotes to Last).
      if (typeof router !== "string") continue;
      const override = !this.ignoreOverridePrimary &&
        (d.OverridePrimary === true || (typeof d.OverridePrimary === "number" &&
          d.OverridePrimary !== 0));
      const i = order.indexOf(m[1]);
      const rank = (override ? 0 : 1) * 2 ** 24 + (i < 0 ? 0xffffff : i);
      if (!best || rank < best.rank) best = { id: m[1], rank, dict: d };
    }
    if (!best) {
      this.store.delete(GLOBAL_IPV4);
      this.store.delete(GLOBAL_DNS);
      return;
    }
    this.store.set(GLOBAL_IPV4, {
      value: {
        PrimaryInterface: best.dict.InterfaceName,
        PrimaryService: best.id,
        Router: best.dict.Router,
      },
    });
    const dns = this.value(`State:/Network/Service/${best.id}/DNS`) as
      | Record<string, Plist>
      | undefined;
    if (!dns || !Array.isArray(dns.ServerAddresses)) {
      this.store.delete(GLOBAL_DNS);
      return;
    }
    const global: Record<string, Plist> = { ServerAddresses: dns.ServerAddresses };
    for (const k of ["SearchDomains", "DomainName"]) if (k in dns) global[k] = dns[k];
    this.store.set(GLOBAL_DNS, { value: global });
  }
}
