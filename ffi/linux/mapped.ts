/**
 * Give back the pages of the executable that startup touched and the process no longer needs.
 * Measured on a tunnel client (issue 13): of ~91 MB RSS, ~46 MB were pages of the deno binary
 * (module loader, transpiler, the V8 snapshot, SDK parsing code) read once during bring-up and
 * left mapped for the process's life. madvise(MADV_DONTNEED) on a clean file-backed range only
 * drops this process's page-table entries: the pages stay in the page cache, and a later use is a
 * minor fault that maps them back unchanged.
 *
 * The danger is a private mapping holding its own copies: MADV_DONTNEED discards them and the
 * next read sees the file's bytes instead (RELRO after relocation is r--p yet dirty; .data is
 * rw-p). So a mapping is released only when smaps shows it can hold no such copy (releasable).
 * Opened apart from ffi/libc.ts so a libc without madvise (musl) only loses the release.
 */

/** One entry of /proc/PID/smaps. Sizes in kB; NaN where the kernel did not say (never safe). */
export interface Mapping {
  start: bigint;
  end: bigint;
  /** "r-xp", "rw-p", "r--s", ... */
  perms: string;
  /** The file, a pseudo name ("[heap]", "[vdso]") or "" for anonymous memory. */
  path: string;
  rssKb: number;
  anonymousKb: number;
  privateDirtyKb: number;
  sharedDirtyKb: number;
  swapKb: number;
  /** Two-letter VmFlags ("rd", "ex", "ac", ...); empty on kernels before 3.8. */
  vmFlags: string[];
}

// One pass over the text picking out headers and the fields used: ~1 ms for 300 mappings, where
// splitting into lines and matching each took 5–40 ms (the first release runs on a cold JIT).
const LINES = new RegExp(
  [
    String.raw`^([0-9a-f]+)-([0-9a-f]+) (\S{4}) [0-9a-f]+ [0-9a-f]+:[0-9a-f]+ \d+[ \t]*(.*)$`,
    String.raw`^(Rss|Anonymous|Private_Dirty|Shared_Dirty|Swap):[ \t]+(\d+) kB$`,
    String.raw`^VmFlags:(.*)$`,
  ].join("|"),
  "gm",
);
const FIELDS: Record<
  string,
  "rssKb" | "anonymousKb" | "privateDirtyKb" | "sharedDirtyKb" | "swapKb"
> = {
  Rss: "rssKb",
  Anonymous: "anonymousKb",
  Private_Dirty: "privateDirtyKb",
  Shared_Dirty: "sharedDirtyKb",
  Swap: "swapKb",
};

/** Parse the text of /proc/PID/smaps. Fields it does not use are skipped. */
export function parseSmaps(text: string): Mapping[] {
  const out: Mapping[] = [];
  let cur: Mapping | undefined;
  for (const m of text.matchAll(LINES)) {
    if (m[1] !== undefined) {
      cur = {
        start: BigInt(`0x${m[1]}`),
        end: BigInt(`0x${m[2]}`),
        perms: m[3],
        path: m[4].trimEnd(),
        rssKb: NaN,
        anonymousKb: NaN,
        privateDirtyKb: NaN,
        sharedDirtyKb: NaN,
        swapKb: NaN,
        vmFlags: [],
      };
      out.push(cur);
    } else if (!cur) continue;
    else if (m[5] !== undefined) cur[FIELDS[m[5]]] = Number(m[6]);
    else cur.vmFlags = m[7].trim().split(/\s+/).filter(Boolean);
  }
  return out;
}

/**
 * Files that stay mapped at the same addresses for the life of the process: the executable and
 * shared libraries (nothing here dlcloses). Data files are left alone even when clean: their
 * owner (sqlite's mmap of Deno's caches) may unmap them at any time, and if anonymous memory
 * took the range between reading smaps and madvise, MADV_DONTNEED would zero it.
 */
export function isStableFile(path: string, executable: string): boolean {
  if (path === executable) return true;
  if (!path.startsWith("/") || path.startsWith("/dev/") || path.startsWith("/memfd:")) {
    return false;
  }
  return /\.so(\.\d+)*$/.test(path);
}

/**
 * VmFlags that rule a mapping out: "ac" (accounted: it was writable and private at some time, so
 * it may hold private copies, e.g. RELRO), "lo" (locked), "io"/"pf" (device memory), "ht"
 * (hugetlb).
 */
const UNSAFE_FLAGS = new Set(["ac", "lo", "io", "pf", "ht"]);

/**
 * The mappings MADV_DONTNEED may drop without losing a byte: a stable file (isStableFile), not
 * writable, with no anonymous (copied-on-write), dirty or swapped-out page, and something
 * resident to give back. A field the kernel did not report counts as unsafe.
 */
export function releasable(mappings: readonly Mapping[], executable: string): Mapping[] {
  return mappings.filter((m) =>
    isStableFile(m.path, executable) &&
    m.perms.length === 4 && !m.perms.includes("w") &&
    m.anonymousKb === 0 && m.privateDirtyKb === 0 && m.sharedDirtyKb === 0 && m.swapKb === 0 &&
    m.rssKb > 0 &&
    !m.vmFlags.some((f) => UNSAFE_FLAGS.has(f)) &&
    m.start < m.end && m.start % 4096n === 0n && m.end % 4096n === 0n
  );
}

/** RssFile of /proc/PID/status in kB (resident pages of mapped files), NaN if absent. */
export function statusRssFileKb(status: string): number {
  const m = /^RssFile:\s+(\d+) kB$/m.exec(status);
  return m ? Number(m[1]) : NaN;
}

/** This process's resident file pages, in bytes. */
export function fileRssBytes(): number {
  return statusRssFileKb(Deno.readTextFileSync("/proc/self/status")) * 1024;
}

const MADV_DONTNEED = 4;
const SYMBOLS = {
  madvise: { parameters: ["pointer", "usize", "i32"], result: "i32" },
} as const;

type Lib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
let lib: Lib | null | undefined;

function open(): Lib | null {
  if (lib !== undefined) return lib;
  try {
    lib = Deno.build.os === "linux" ? Deno.dlopen("libc.so.6", SYMBOLS).symbols : null;
  } catch {
    lib = null;
  }
  return lib;
}

export interface FileRelease {
  /** Mappings madvise was called on. */
  mappings: number;
  /** Their resident bytes before. */
  bytesBefore: number;
  /** Calls that failed (the mapping is left as it was). */
  failed: number;
  /** Time taken (reading smaps, the calls). */
  ms: number;
}

/**
 * Drop this process's resident pages of the executable and shared libraries where that is safe
 * (releasable). Synchronous: 10–25 ms measured, most of it faulting back the pages in use.
 * Undefined where it cannot (not Linux, no glibc).
 */
export function releaseFilePages(): FileRelease | undefined {
  const l = open();
  if (!l) return undefined;
  const t0 = performance.now();
  const chosen = releasable(
    parseSmaps(Deno.readTextFileSync("/proc/self/smaps")),
    Deno.execPath(),
  );
  let failed = 0;
  for (const m of chosen) {
    const r = l.madvise(Deno.UnsafePointer.create(m.start), m.end - m.start, MADV_DONTNEED);
    if (r !== 0) failed++;
  }
  return {
    mappings: chosen.length,
    bytesBefore: chosen.reduce((n, m) => n + m.rssKb * 1024, 0),
    failed,
    ms: performance.now() - t0,
  };
}
