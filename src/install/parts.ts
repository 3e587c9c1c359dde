/**
 * How an upload is split across parallel shell sessions. A session carries only so much per
 * second (specs/ssm-protocol.md §15), so several carry more; each part is a slice of the binary,
 * gzip'd on its own (concatenated gzip members are what `gzip -dc` reads anyway, but separate
 * slices let each session unpack and check its part while the others still upload) and checked
 * on the instance by its own SHA-256 before the slices are joined and the whole is checked.
 */
import { ExitCode, UserError } from "../errors.ts";
import { sha256Hex } from "./payload.ts";

export const DEFAULT_PARALLEL = 4;
export const MAX_PARALLEL = 16;
/**
 * Below this a part is not worth a session of its own: opening one costs a StartSession and the
 * agent's initial wait, about what a session uploads in a quarter of a second anyway.
 */
export const MIN_PART_BYTES = 256 * 1024;

export interface PartPlan {
  /** 1-based, the order the parts are joined in. */
  index: number;
  offset: number;
  length: number;
}

/** `--parallel N`: a whole number from 1 to MAX_PARALLEL. */
export function parseParallel(text: string | number | undefined): number {
  if (text === undefined) return DEFAULT_PARALLEL;
  const s = String(text).trim();
  const n = /^\d+$/.test(s) ? Number(s) : NaN;
  if (!(n >= 1 && n <= MAX_PARALLEL)) {
    throw new UserError(
      `--parallel wants a whole number of sessions from 1 to ${MAX_PARALLEL}, got ${
        JSON.stringify(String(text))
      }`,
      ExitCode.Usage,
    );
  }
  return n;
}

/**
 * Cut `size` bytes into at most `parallel` contiguous parts of nearly equal length (they differ
 * by one byte at most), none shorter than `minPart` unless there is only one.
 */
export function planParts(size: number, parallel: number, minPart = MIN_PART_BYTES): PartPlan[] {
  const count = Math.max(1, Math.min(parallel, Math.floor(size / Math.max(1, minPart))));
  const base = Math.floor(size / count);
  const extra = size % count;
  const out: PartPlan[] = [];
  let offset = 0;
  for (let i = 0; i < count; i++) {
    const length = base + (i < extra ? 1 : 0);
    out.push({ index: i + 1, offset, length });
    offset += length;
  }
  return out;
}

export interface PartSource extends PartPlan {
  /** SHA-256 of the slice itself (what the instance checks when it has arrived). */
  sha256: string;
  bytes: Uint8Array<ArrayBuffer>;
}

/** The slices with their digests; compression is left to each part's upload. */
export async function sliceParts(
  bytes: Uint8Array<ArrayBuffer>,
  plans: PartPlan[],
): Promise<PartSource[]> {
  return await Promise.all(plans.map(async (p) => {
    const slice = bytes.slice(p.offset, p.offset + p.length);
    return { ...p, bytes: slice, sha256: await sha256Hex(slice) };
  }));
}
