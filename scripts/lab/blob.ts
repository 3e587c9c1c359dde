/**
 * Deterministic bytes for the lab's /blob endpoint: xorshift32 seeded by the size, so the
 * server can stream any size without storing it and a checker knows what to expect.
 */
import { createHash } from "node:crypto";

const CHUNK = 64 * 1024;

/** The blob of `size` bytes as a sequence of chunks (each a fresh buffer). */
export function* blobChunks(size: number): Generator<Uint8Array> {
  let x = (size >>> 0) || 1;
  for (let off = 0; off < size; off += CHUNK) {
    const n = Math.min(CHUNK, size - off);
    const out = new Uint8Array(n);
    // CHUNK is a multiple of 4, so every chunk but the last starts on a word boundary.
    for (let i = 0; i < n; i += 4) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      out[i] = x;
      if (i + 1 < n) out[i + 1] = x >>> 8;
      if (i + 2 < n) out[i + 2] = x >>> 16;
      if (i + 3 < n) out[i + 3] = x >>> 24;
    }
    yield out;
  }
}

export function blobSha256(size: number): string {
  const h = createHash("sha256");
  for (const c of blobChunks(size)) h.update(c);
  return h.digest("hex");
}
