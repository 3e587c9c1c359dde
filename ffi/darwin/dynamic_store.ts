/**
 * A session with configd's dynamic store (macos-dns-routes §2.5, §3.6). Opened with
 * `UseSessionKeys`, so configd deletes every key this session created when the session ends:
 * `close()`, a crash and `kill -9` alike. Keep the object alive as long as the keys must live.
 * Every call is synchronous, so `SCError()` (per thread) is read straight after a failure.
 */
import type { DarwinSC } from "./cf.ts";
import { CfError, fromCF, type Plist, release, toCF } from "./plist.ts";

/** SCError codes this code branches on (SystemConfiguration.h). */
export const SC_STATUS = {
  Failed: 1001,
  InvalidArgument: 1002,
  AccessError: 1003,
  NoKey: 1004,
  KeyExists: 1005,
  NoStoreSession: 2001,
  NoStoreServer: 2002,
} as const;

/** A SystemConfiguration call failed; `code` is SCError() right after it. */
export class ScError extends Error {
  override name = "ScError";
  constructor(readonly call: string, readonly code: number, detail: string) {
    super(`${call}: ${detail} (SCError ${code})`);
  }
}

function scError(sc: DarwinSC, call: string): ScError {
  const code = sc.SCError();
  const s = sc.SCErrorString(code);
  const detail = s === null ? "failed" : new Deno.UnsafePointerView(s).getCString();
  return new ScError(call, code, detail);
}

/** Run `f` with a CF object for `v`, released afterwards whatever happens. */
function withCF<T>(sc: DarwinSC, v: Plist, f: (ref: Deno.PointerObject) => T): T {
  const ref = toCF(sc, v);
  try {
    return f(ref);
  } finally {
    release(sc, ref);
  }
}

export class DynamicStore {
  #store: Deno.PointerObject | null;

  private constructor(readonly sc: DarwinSC, store: Deno.PointerObject) {
    this.#store = store;
  }

  /** A session whose keys configd removes when it ends (`UseSessionKeys` = kCFBooleanTrue). */
  static open(sc: DarwinSC, name: string): DynamicStore {
    // configd wants a CFBoolean here: a CFNumber 1 is InvalidArgument (_configopen.c).
    const store = withCF(
      sc,
      { UseSessionKeys: true },
      (opts) =>
        withCF(sc, name, (n) => sc.SCDynamicStoreCreateWithOptions(null, n, opts, null, null)),
    );
    if (store === null) throw scError(sc, "SCDynamicStoreCreateWithOptions");
    return new DynamicStore(sc, store);
  }

  get closed(): boolean {
    return this.#store === null;
  }

  #handle(): Deno.PointerObject {
    if (this.#store === null) throw new CfError("the dynamic store session is closed");
    return this.#store;
  }

  /** A key's value, or undefined when there is none. */
  get(key: string): Plist | undefined {
    const store = this.#handle();
    const ref = withCF(this.sc, key, (k) => this.sc.SCDynamicStoreCopyValue(store, k));
    if (ref === null) {
      const e = scError(this.sc, `SCDynamicStoreCopyValue ${key}`);
      if (e.code === SC_STATUS.NoKey) return undefined;
      throw e;
    }
    try {
      return fromCF(this.sc, ref);
    } finally {
      release(this.sc, ref);
    }
  }

  /**
   * Set and remove keys in one transaction. configd ignores per-key refusals here (a key another
   * session owns is silently kept), so read back what matters.
   */
  setMultiple(set: Record<string, Plist>, remove: string[] = []): void {
    const store = this.#handle();
    const call = (s: Deno.PointerValue, r: Deno.PointerValue) =>
      this.sc.SCDynamicStoreSetMultiple(store, s, r, null);
    const removing = (s: Deno.PointerValue) =>
      remove.length ? withCF(this.sc, remove, (r) => call(s, r)) : call(s, null);
    const ok = Object.keys(set).length ? withCF(this.sc, set, removing) : removing(null);
    if (ok === 0) throw scError(this.sc, "SCDynamicStoreSetMultiple");
  }

  /** Remove a key (whoever owns it); false when there was none. */
  remove(key: string): boolean {
    const store = this.#handle();
    const ok = withCF(this.sc, key, (k) => this.sc.SCDynamicStoreRemoveValue(store, k));
    if (ok !== 0) return true;
    const e = scError(this.sc, `SCDynamicStoreRemoveValue ${key}`);
    if (e.code === SC_STATUS.NoKey) return false;
    throw e;
  }

  /** The keys matching a regex(3) pattern. */
  keys(pattern: string): string[] {
    const store = this.#handle();
    const ref = withCF(this.sc, pattern, (p) => this.sc.SCDynamicStoreCopyKeyList(store, p));
    if (ref === null) throw scError(this.sc, "SCDynamicStoreCopyKeyList");
    try {
      const list = fromCF(this.sc, ref);
      return Array.isArray(list) ? list.filter((k): k is string => typeof k === "string") : [];
    } finally {
      release(this.sc, ref);
    }
  }

  /** End the session: configd removes the keys it created. Idempotent. */
  close(): void {
    const store = this.#store;
    this.#store = null;
    if (store !== null) this.sc.CFRelease(store);
  }
}
