/**
 * Connections by 4-tuple without building a key string per packet (specs/netstack.md §9):
 * IPv4 tuples as two nested number-keyed maps (address·65536 + port is exact in a double);
 * IPv6 tuples under a 32-bit FNV-1a of the 36 tuple bytes, with a full compare on lookup.
 */

export interface Flow {
  readonly family: 4 | 6;
  readonly app: Uint8Array;
  readonly appPort: number;
  readonly remote: Uint8Array;
  readonly remotePort: number;
}

export class FlowTable<T extends Flow> {
  #v4 = new Map<number, Map<number, T>>();
  #v6 = new Map<number, T[]>();
  #size = 0;

  get size(): number {
    return this.#size;
  }

  get(family: 4 | 6, app: Uint8Array, appPort: number, remote: Uint8Array, remotePort: number) {
    if (family === 4) {
      return this.#v4.get(v4Key(app, appPort))?.get(v4Key(remote, remotePort));
    }
    const bucket = this.#v6.get(v6Hash(app, appPort, remote, remotePort));
    if (!bucket) return undefined;
    for (const f of bucket) {
      if (
        f.appPort === appPort && f.remotePort === remotePort && same(f.app, app) &&
        same(f.remote, remote)
      ) return f;
    }
    return undefined;
  }

  set(f: T): void {
    if (f.family === 4) {
      const k = v4Key(f.app, f.appPort);
      let inner = this.#v4.get(k);
      if (!inner) this.#v4.set(k, inner = new Map());
      const k2 = v4Key(f.remote, f.remotePort);
      if (!inner.has(k2)) this.#size++;
      inner.set(k2, f);
      return;
    }
    const h = v6Hash(f.app, f.appPort, f.remote, f.remotePort);
    const bucket = this.#v6.get(h);
    if (!bucket) this.#v6.set(h, [f]);
    else bucket.push(f);
    this.#size++;
  }

  delete(f: T): void {
    if (f.family === 4) {
      const k = v4Key(f.app, f.appPort);
      const inner = this.#v4.get(k);
      if (inner?.get(v4Key(f.remote, f.remotePort)) !== f) return;
      inner.delete(v4Key(f.remote, f.remotePort));
      if (inner.size === 0) this.#v4.delete(k);
      this.#size--;
      return;
    }
    const h = v6Hash(f.app, f.appPort, f.remote, f.remotePort);
    const bucket = this.#v6.get(h);
    const i = bucket?.indexOf(f) ?? -1;
    if (i < 0) return;
    bucket!.splice(i, 1);
    if (bucket!.length === 0) this.#v6.delete(h);
    this.#size--;
  }

  *values(): IterableIterator<T> {
    for (const inner of this.#v4.values()) yield* inner.values();
    for (const bucket of this.#v6.values()) yield* bucket;
  }
}

function v4Key(a: Uint8Array, port: number): number {
  const addr = ((a[0] << 24) | (a[1] << 16) | (a[2] << 8) | a[3]) >>> 0;
  return addr * 65536 + port;
}

function v6Hash(a: Uint8Array, ap: number, b: Uint8Array, bp: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < 16; i++) h = Math.imul(h ^ a[i], 0x01000193);
  for (let i = 0; i < 16; i++) h = Math.imul(h ^ b[i], 0x01000193);
  h = Math.imul(h ^ (ap >> 8), 0x01000193);
  h = Math.imul(h ^ (ap & 0xff), 0x01000193);
  h = Math.imul(h ^ (bp >> 8), 0x01000193);
  h = Math.imul(h ^ (bp & 0xff), 0x01000193);
  return h >>> 0;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
