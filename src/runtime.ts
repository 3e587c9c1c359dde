/**
 * V8 flags every ssm-proxy process runs with, compiled into the binaries and passed when run
 * from source. Measured in the lab (100 MB download through the tunnel, issue 13):
 * - a 1 MiB young generation keeps the data path's short-lived buffers from growing the heap
 *   (client RSS under load ~200 MB -> ~126 MB, no loss of throughput);
 * - memory-saver mode makes V8 collect the old generation before it grows: without it the heap
 *   crept from 30 MB live to 47 MB and promoted packet buffers (ArrayBuffer backing stores,
 *   outside the heap) piled up to 25–45 MB until a major GC that rarely came. With it: heap
 *   34 MB, backing stores 16 MB, client RSS under load 160–184 -> 131–133 MB.
 */
export const V8_FLAGS = "--max-semi-space-size=1,--memory-saver-mode";

/** How often a long-running process looks at what malloc holds free and what files it maps. */
export const TRIM_PERIOD_MS = 30_000;
/** Free bytes inside malloc worth a trim (which stalls the event loop for ~1–40 ms). */
export const TRIM_MIN_FREE_BYTES = 8 * 2 ** 20;
/**
 * Growth of resident file pages worth another release (which stalls the event loop ~10–25 ms and
 * costs a minor fault for each page used again).
 */
export const RELEASE_MIN_GROWTH_BYTES = 8 * 2 ** 20;

/**
 * For the processes that live long (`start`, `ssm-proxy-agent serve`): now and every
 * TRIM_PERIOD_MS, give what malloc holds free back to the OS (ffi/linux/malloc.ts) when it is
 * more than TRIM_MIN_FREE_BYTES, and drop the executable's pages that bring-up touched
 * (ffi/linux/mapped.ts). Measured in the tunnel bench (issue 13): client RssFile 40–43 -> 22 MB
 * idle and 29 MB under load; client RSS 91 -> 66 MB idle, 111 -> 90 MB under load.
 * Linux only (macOS's allocator returns memory itself); the timer never keeps the process
 * alive. Returns a stop function.
 */
export function keepMemoryTrimmed(periodMs = TRIM_PERIOD_MS): () => void {
  if (Deno.build.os !== "linux") return () => {};
  let stopped = false;
  const files = fileReleaser();
  const tick = async () => {
    const [m, f] = await Promise.all([
      import("../ffi/linux/malloc.ts"),
      import("../ffi/linux/mapped.ts"),
    ]);
    if (stopped) return;
    const info = m.mallocInfo();
    if (info && info.freeBytes >= TRIM_MIN_FREE_BYTES) m.mallocTrim();
    files(f);
  };
  tick();
  const timer = setInterval(tick, periodMs);
  Deno.unrefTimer(timer);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

/**
 * When to drop file pages: on the first tick, then once resident file pages (RssFile, cheap to
 * read, unlike smaps) have grown RELEASE_MIN_GROWTH_BYTES past where they settled after the last
 * release. Settled means one tick later, not right after: the code running anyway (event loop,
 * the data path) faults straight back in, measured 6–14 MB within a few calls, and counting that
 * as growth would drop and refault the same pages every tick.
 */
function fileReleaser() {
  let state: "release" | "settle" | "watch" | "off" = "release";
  let baseline = 0;
  return (f: typeof import("../ffi/linux/mapped.ts")) => {
    if (state === "off") return;
    try {
      const rss = f.fileRssBytes();
      if (state === "settle") {
        baseline = rss;
        state = "watch";
      } else if (state === "release" || rss - baseline >= RELEASE_MIN_GROWTH_BYTES) {
        state = f.releaseFilePages() ? "settle" : "off"; // off: no glibc to call madvise through
      }
    } catch {
      // No /proc to read (a sandbox, a container without it): keep the tunnel, lose the saving.
      state = "off";
    }
  };
}
