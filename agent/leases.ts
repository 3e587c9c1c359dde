/**
 * Leases on disk (`<stateDir>/leases.json`), so a restarted agent gives re-joining tunnels the
 * addresses they had and their connections survive (DESIGN §4 "Healing"). Writes are atomic
 * (temp file + rename) and coalesced: at most one in flight, the latest state always lands.
 */
import { formatIpv4, parseIpv4 } from "./cidr.ts";

export interface SavedLease {
  id: string;
  address: number;
}

interface LeaseDoc {
  version: 1;
  pool: string;
  leases: { id: string; address: string }[];
}

export class LeaseFile {
  readonly path: string;
  #writing?: Promise<void>;
  #again = false;
  #get?: () => SavedLease[];

  constructor(dir: string, readonly pool: string, private log: (line: string) => void = () => {}) {
    this.path = `${dir}/leases.json`;
  }

  /** The saved leases; none when the file is missing, unreadable, or for another pool. */
  async load(): Promise<SavedLease[]> {
    let doc: LeaseDoc;
    try {
      doc = JSON.parse(await Deno.readTextFile(this.path));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        this.log(`leases: ignoring ${this.path}: ${(e as Error).message}`);
      }
      return [];
    }
    if (doc?.version !== 1 || doc.pool !== this.pool || !Array.isArray(doc.leases)) {
      this.log(`leases: ${this.path} is for another pool or version; starting fresh`);
      return [];
    }
    const out: SavedLease[] = [];
    for (const l of doc.leases) {
      const address = typeof l?.address === "string" ? parseIpv4(l.address) : undefined;
      if (typeof l?.id === "string" && address !== undefined) out.push({ id: l.id, address });
    }
    return out;
  }

  /** Persist `get()`'s leases soon; calls while a write runs collapse into one more write. */
  save(get: () => SavedLease[]): void {
    this.#get = get;
    if (this.#writing) {
      this.#again = true;
      return;
    }
    this.#writing = this.#write(get).finally(() => {
      this.#writing = undefined;
      if (this.#again) {
        this.#again = false;
        this.save(this.#get!);
      }
    });
  }

  /** Resolves once nothing is being written (for shutdown and tests). */
  async flushed(): Promise<void> {
    while (this.#writing) await this.#writing;
  }

  async #write(get: () => SavedLease[]): Promise<void> {
    const doc: LeaseDoc = {
      version: 1,
      pool: this.pool,
      leases: get().map((l) => ({ id: l.id, address: formatIpv4(l.address) })),
    };
    const dir = this.path.slice(0, this.path.lastIndexOf("/"));
    const tmp = `${this.path}.tmp`;
    try {
      await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
      await Deno.writeTextFile(tmp, JSON.stringify(doc) + "\n", { mode: 0o600 });
      await Deno.rename(tmp, this.path);
    } catch (e) {
      this.log(`leases: cannot write ${this.path}: ${(e as Error).message}`);
    }
  }
}
