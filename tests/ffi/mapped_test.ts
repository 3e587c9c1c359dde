import assert from "node:assert/strict";
import fc from "fast-check";
import {
  isStableFile,
  type Mapping,
  parseSmaps,
  releasable,
  statusRssFileKb,
} from "../../ffi/linux/mapped.ts";

const linux = Deno.build.os === "linux";
const EXE = "/usr/lib/node_modules/deno/deno";
const LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6";

/**
 * /proc/self/smaps of `deno run` after importing @aws-sdk/client-ssm (deno 2.9.5, Linux 6.18),
 * trimmed to a few mappings of each kind and, past the first, to the fields the parser reads.
 * Trailing spaces on headers and VmFlags are as the kernel writes them.
 */
const SMAPS = `7b7a0780000-7b7a0790000 r--p 00000000 00:00 0 
Rss:                   8 kB
Shared_Dirty:          0 kB
Private_Dirty:         8 kB
Anonymous:             8 kB
Swap:                  0 kB
VmFlags: rd mr mw me dc ac 
55ce1a04d000-55ce1bbd2000 r--p 00000000 fe:00 1442056                    /usr/lib/node_modules/deno/deno
Size:              28180 kB
KernelPageSize:        4 kB
MMUPageSize:           4 kB
Rss:               12628 kB
Pss:                1546 kB
Pss_Dirty:             0 kB
Shared_Clean:      12628 kB
Shared_Dirty:          0 kB
Private_Clean:         0 kB
Private_Dirty:         0 kB
Referenced:        12628 kB
Anonymous:             0 kB
KSM:                   0 kB
LazyFree:              0 kB
AnonHugePages:         0 kB
ShmemPmdMapped:        0 kB
FilePmdMapped:         0 kB
Shared_Hugetlb:        0 kB
Private_Hugetlb:       0 kB
Swap:                  0 kB
SwapPss:               0 kB
Locked:                0 kB
THPeligible:           0
VmFlags: rd mr mw me 
55ce1be48000-55ce1fb59000 r-xp 01b85000 fe:00 1442056                    /usr/lib/node_modules/deno/deno
Rss:               16260 kB
Shared_Dirty:          0 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd ex mr mw me 
55ce1fb59000-55ce1fdb2000 rw-p 05895000 fe:00 1442056                    /usr/lib/node_modules/deno/deno
Rss:                2404 kB
Shared_Dirty:          0 kB
Private_Dirty:      2404 kB
Anonymous:          2404 kB
Swap:                  0 kB
VmFlags: rd wr mr mw me ac 
55ce1fdc2000-55ce1fdc3000 r--p 05afd000 fe:00 1442056                    /usr/lib/node_modules/deno/deno
Rss:                   4 kB
Shared_Dirty:          0 kB
Private_Dirty:         4 kB
Anonymous:             4 kB
Swap:                  0 kB
VmFlags: rd mr mw me ac 
55ce2daca000-55ce2df72000 rw-p 00000000 00:00 0                          [heap]
Rss:                4704 kB
Shared_Dirty:          0 kB
Private_Dirty:      4704 kB
Anonymous:          4704 kB
Swap:                  0 kB
VmFlags: rd wr mr mw me ac 
7f8110000000-7f812fdc0000 rwxp 00000000 00:00 0 
Rss:                 212 kB
Shared_Dirty:          0 kB
Private_Dirty:       212 kB
Anonymous:           212 kB
Swap:                  0 kB
VmFlags: rd wr ex mr mw me dc nr 
7f812fdc0000-7f812ffe6000 r-xp 035dc000 fe:00 1442056                    /usr/lib/node_modules/deno/deno
Rss:                2112 kB
Shared_Dirty:          0 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd ex mr mw me 
7f812ffe6000-7f8130000000 rwxp 00000000 00:00 0 
Rss:                   0 kB
Shared_Dirty:          0 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd wr ex mr mw me dc nr 
7f814de00000-7f814e3b9000 r--s 00000000 fe:00 16039948                   /root/.cache/deno/v8_code_cache_v2
Rss:                2880 kB
Shared_Dirty:          0 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd sh mr mw me ms 
7f814ea3f000-7f814ea47000 rw-s 00000000 fe:00 16042280                   /root/.cache/deno/v8_code_cache_v2-shm
Rss:                  32 kB
Shared_Dirty:         32 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd wr sh mr mw me ms 
7f8150110000-7f8150266000 r-xp 00026000 fe:00 339380                     /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                1216 kB
Shared_Dirty:          0 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd ex mr mw me 
7f81502b9000-7f81502bd000 r--p 001cf000 fe:00 339380                     /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                  16 kB
Shared_Dirty:          0 kB
Private_Dirty:        16 kB
Anonymous:            16 kB
Swap:                  0 kB
VmFlags: rd mr mw me ac 
7f81503ee000-7f81503f0000 r-xp 00000000 00:00 0                          [vdso]
Rss:                   4 kB
Shared_Dirty:          0 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd ex mr mw me de 
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
Rss:                   0 kB
Shared_Dirty:          0 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: ex 
`;

/** The mapping of SMAPS that starts at `start`. */
function at(ms: Mapping[], start: bigint): Mapping {
  const m = ms.find((m) => m.start === start);
  assert.ok(m, `a mapping at ${start.toString(16)}`);
  return m;
}

Deno.test("parseSmaps reads every mapping with its addresses, perms, path and sizes", () => {
  const ms = parseSmaps(SMAPS);
  assert.equal(ms.length, 15);
  assert.deepEqual(at(ms, 0x55ce1a04d000n), {
    start: 0x55ce1a04d000n,
    end: 0x55ce1bbd2000n,
    perms: "r--p",
    path: EXE,
    rssKb: 12628,
    anonymousKb: 0,
    privateDirtyKb: 0,
    sharedDirtyKb: 0,
    swapKb: 0,
    vmFlags: ["rd", "mr", "mw", "me"],
  });
  // RELRO: read-only now, but relocation wrote it: copied-on-write pages.
  const relro = at(ms, 0x55ce1fdc2000n);
  assert.deepEqual(
    [relro.perms, relro.path, relro.anonymousKb, relro.privateDirtyKb, relro.vmFlags.at(-1)],
    ["r--p", EXE, 4, 4, "ac"],
  );
  const jit = at(ms, 0x7f8110000000n);
  assert.deepEqual([jit.perms, jit.path, jit.anonymousKb], ["rwxp", "", 212]);
  assert.equal(at(ms, 0x7f814de00000n).path, "/root/.cache/deno/v8_code_cache_v2");
  assert.equal(at(ms, 0x7f81503ee000n).path, "[vdso]");
  const vsyscall = at(ms, 0xffffffffff600000n);
  assert.deepEqual([vsyscall.end, vsyscall.perms], [0xffffffffff601000n, "--xp"]);
  assert.equal(at(ms, 0x7b7a0780000n).path, "", "anonymous: no path");
});

Deno.test("releasable picks the clean text and rodata of the executable and libc, nothing else", () => {
  const picked = releasable(parseSmaps(SMAPS), EXE).map((m) => `${m.perms} ${m.path}`);
  assert.deepEqual(picked, [
    `r--p ${EXE}`,
    `r-xp ${EXE}`,
    `r-xp ${EXE}`, // V8's builtins, remapped from the binary into its code range
    `r-xp ${LIBC}`,
  ]);
  // Not the RELRO (dirty r--p), .data (rw-p), the JIT (rwxp), the heap, [vdso], [vsyscall], the
  // code cache (a clean r--s, but sqlite may unmap it at any time).
});

Deno.test("releasable refuses a clean-looking mapping with any one sign of private data", () => {
  const clean = at(parseSmaps(SMAPS), 0x55ce1a04d000n);
  assert.equal(releasable([clean], EXE).length, 1);
  const variants: Partial<Mapping>[] = [
    { perms: "rw-p" },
    { perms: "rwxp" },
    { anonymousKb: 4 },
    { privateDirtyKb: 4 },
    { sharedDirtyKb: 4 },
    { swapKb: 4 }, // copies swapped out show in no other field
    { anonymousKb: NaN }, // the kernel did not say
    { swapKb: NaN },
    { vmFlags: [...clean.vmFlags, "ac"] }, // was writable once
    { vmFlags: [...clean.vmFlags, "lo"] },
    { rssKb: 0 }, // nothing to give back
    { path: `${EXE} (deleted)` },
    { path: "/root/.cache/deno/dep_analysis_cache_v2" },
    { path: "" },
    { start: clean.start + 8n },
  ];
  for (const v of variants) {
    assert.deepEqual(releasable([{ ...clean, ...v }], EXE), [], JSON.stringify(v, bigints));
  }
});

Deno.test("isStableFile: the executable and shared libraries, not data files or devices", () => {
  assert.ok(isStableFile(EXE, EXE));
  assert.ok(isStableFile(LIBC, EXE));
  assert.ok(isStableFile("/usr/lib/x86_64-linux-gnu/libnss_files.so.2", EXE));
  assert.ok(isStableFile("/opt/lib/libfoo.so", EXE));
  for (const p of ["", "[heap]", "[vdso]", "/root/.cache/deno/v8_code_cache_v2", "/dev/zero"]) {
    assert.ok(!isStableFile(p, EXE), p);
  }
  assert.ok(!isStableFile("/memfd:libx.so", EXE));
  assert.ok(!isStableFile(`${LIBC} (deleted)`, EXE));
  assert.ok(!isStableFile("/usr/lib/libfoo.so.bak", EXE));
});

function bigints(_k: string, v: unknown) {
  return typeof v === "bigint" ? `0x${v.toString(16)}` : v;
}

const PATHS = [
  EXE,
  LIBC,
  "",
  "[heap]",
  "[stack]",
  "[vdso]",
  "[vvar]",
  "/root/.cache/deno/v8_code_cache_v2",
  "/dev/zero",
  "/memfd:doublemapper (deleted)",
];
// Mostly clean, so that a fair share of mappings is safe and the property has cases both ways.
const kb = fc.oneof({ arbitrary: fc.constant(0), weight: 6 }, fc.nat(1 << 20));
const rare = (flag: string) =>
  fc.oneof({ arbitrary: fc.constant([]), weight: 6 }, fc.constant([flag]));
const arbMapping: fc.Arbitrary<Mapping> = fc.record({
  start: fc.bigInt({ min: 0n, max: (1n << 47n) - 1n }).map((x) => x << 12n),
  pages: fc.bigInt({ min: 1n, max: 1n << 20n }),
  perms: fc.tuple(
    fc.constantFrom("r", "-"),
    fc.constantFrom("w", "-"),
    fc.constantFrom("x", "-"),
    fc.constantFrom("p", "s"),
  ).map((t) => t.join("")),
  path: fc.oneof(fc.constantFrom(EXE, LIBC), fc.constantFrom(...PATHS)),
  rssKb: fc.oneof(fc.nat(1 << 20), fc.constant(0)),
  anonymousKb: kb,
  privateDirtyKb: kb,
  sharedDirtyKb: kb,
  swapKb: kb,
  flags: fc.subarray(["rd", "wr", "ex", "sh", "mr", "mw", "me", "dc", "nr"]),
  ac: rare("ac"),
  lo: rare("lo"),
}).map(({ pages, flags, ac, lo, ...m }) => ({
  ...m,
  end: m.start + (pages << 12n),
  vmFlags: [...flags, ...ac, ...lo],
}));

/** The smaps text the kernel would write for these mappings (the fields the parser reads). */
function format(ms: Mapping[]): string {
  const hex = (x: bigint) => x.toString(16).padStart(8, "0");
  return ms.map((m) =>
    [
      `${hex(m.start)}-${hex(m.end)} ${m.perms} 00000000 fe:00 ${m.path ? 1442056 : 0}`.padEnd(73) +
      m.path,
      `Size:           ${(m.end - m.start) / 1024n} kB`,
      `Rss:            ${m.rssKb} kB`,
      `Shared_Dirty:   ${m.sharedDirtyKb} kB`,
      `Private_Dirty:  ${m.privateDirtyKb} kB`,
      `Anonymous:      ${m.anonymousKb} kB`,
      `Swap:           ${m.swapKb} kB`,
      `THPeligible:    0`,
      `VmFlags: ${m.vmFlags.map((f) => `${f} `).join("")}`,
    ].join("\n")
  ).join("\n") + "\n";
}

Deno.test("parseSmaps reads back whatever mappings it is given", () => {
  fc.assert(fc.property(fc.array(arbMapping, { maxLength: 20 }), (ms) => {
    assert.deepEqual(parseSmaps(format(ms)), ms);
  }));
});

Deno.test("releasable never picks a writable, anonymous, dirty, swapped or unstable mapping", () => {
  let total = 0;
  fc.assert(
    fc.property(fc.array(arbMapping, { maxLength: 30 }), (ms) => {
      const picked = releasable(ms, EXE);
      total += picked.length;
      for (const m of picked) {
        assert.ok(ms.includes(m));
        assert.ok(!m.perms.includes("w"), m.perms);
        assert.ok(m.path === EXE || m.path === LIBC, m.path);
        assert.deepEqual(
          [m.anonymousKb, m.privateDirtyKb, m.sharedDirtyKb, m.swapKb],
          [0, 0, 0, 0],
        );
        assert.ok(!m.vmFlags.includes("ac") && !m.vmFlags.includes("lo"));
      }
      // And it picks every one that is safe: nothing is left out by accident.
      const safe = ms.filter((m) =>
        (m.path === EXE || m.path === LIBC) && !m.perms.includes("w") && m.rssKb > 0 &&
        m.anonymousKb + m.privateDirtyKb + m.sharedDirtyKb + m.swapKb === 0 &&
        !m.vmFlags.includes("ac") && !m.vmFlags.includes("lo")
      );
      assert.equal(picked.length, safe.length);
    }),
    { numRuns: 300 },
  );
  assert.ok(total > 20, `the generated mappings include safe ones: ${total}`);
});

Deno.test("statusRssFileKb reads RssFile from /proc/PID/status", () => {
  const status = "VmRSS:\t   91200 kB\nRssAnon:\t   45084 kB\nRssFile:\t   46116 kB\n" +
    "RssShmem:\t       0 kB\n";
  assert.equal(statusRssFileKb(status), 46116);
  assert.ok(Number.isNaN(statusRssFileKb("VmRSS:\t 1 kB\n")));
});

const REPO = new URL("../../", import.meta.url);
const url = (p: string) => JSON.stringify(new URL(p, REPO).href);

/** Run a script in a fresh deno (its own mappings) from the repo root; its last line, parsed. */
async function child(script: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
}

/** Child code: load much (the CLI, the SSM SDK) and define a workload to run before and after. */
const LOAD = `
  const rssFile = () =>
    Number(/RssFile:\\s+(\\d+)/.exec(Deno.readTextFileSync("/proc/self/status"))[1]) / 1024;
  const { buildProgram } = await import(${url("src/cli/program.ts")});
  await import("@aws-sdk/client-ssm");
  const work = async () => {
    const help = buildProgram().commands.map((c) => c.helpInformation()).join("");
    const words = [...help.matchAll(/--([a-z][a-z-]+)/g)].map((m) => m[1]).sort();
    const json = JSON.parse(JSON.stringify({ words, n: help.length, f: 1.5e300 }));
    const sha = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(help)));
    const fresh = new Function("a", "b", "return a.map((x) => x * b).reduce((s, x) => s + x, 0)");
    return JSON.stringify([json, Array.from(sha), fresh([1, 2, 3], 7), new Date(0).toISOString()]);
  };
`;

Deno.test({
  name: "releaseFilePages drops the startup pages and the process runs on correctly",
  ignore: !linux,
  async fn() {
    const r = await child(`
      ${LOAD}
      const { releaseFilePages } = await import(${url("ffi/linux/mapped.ts")});
      const first = await work();
      const before = rssFile();
      const release = releaseFilePages();
      const after = rssFile();
      const again = await work();
      const second = releaseFilePages();
      const third = await work();
      console.log(JSON.stringify({ before, after, release, second, same: first === again && again === third, first }));
    `);
    const s = JSON.stringify({ ...r, first: undefined });
    assert.ok(r.release.mappings > 0 && r.release.failed === 0, s);
    assert.ok(r.release.bytesBefore > 10 * 2 ** 20, s);
    assert.ok(r.before - r.after >= 10, `RssFile drops by 10 MB or more: ${s}`);
    assert.equal(r.second.failed, 0, s);
    assert.ok(r.same, "the same results after each release");
    const [json, sha, sum] = JSON.parse(r.first);
    assert.ok(json.words.includes("target") && sha.length === 32 && sum === 42, r.first);
  },
});

Deno.test({
  name: "keepMemoryTrimmed releases file pages on its first tick",
  ignore: !linux,
  async fn() {
    const r = await child(`
      ${LOAD}
      const { keepMemoryTrimmed } = await import(${url("src/runtime.ts")});
      await work();
      const before = rssFile();
      const stop = keepMemoryTrimmed(60_000);
      await new Promise((r) => setTimeout(r, 300));
      const after = rssFile();
      stop();
      console.log(JSON.stringify({ before, after, work: (await work()).length }));
    `);
    assert.ok(r.before - r.after >= 10, `RssFile drops by 10 MB or more: ${JSON.stringify(r)}`);
    assert.ok(r.work > 100);
  },
});
