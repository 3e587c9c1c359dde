import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import fc from "fast-check";
import {
  archFromUname,
  base64Chunks,
  elfArch,
  encodedLength,
  gzip,
  loadPayload,
} from "../../src/install/payload.ts";
import { UserError } from "../../src/errors.ts";

function joined(data: Uint8Array, linesPerChunk?: number): string {
  let s = "";
  for (const c of base64Chunks(data, linesPerChunk)) s += new TextDecoder().decode(c);
  return s;
}

Deno.test("base64Chunks: only what a canonical-mode tty passes unchanged, ending in ^D", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 3000 }), fc.integer({ min: 1, max: 9 }), (data, per) => {
      const text = joined(data, per);
      assert.equal(text.at(-1), "\x04");
      const body = text.slice(0, -1);
      assert.match(body, /^[A-Za-z0-9+/=\n]*$/);
      for (const line of body.split("\n").slice(0, -1)) assert.ok(line.length <= 76);
      assert.ok(body === "" || body.endsWith("\n"), "^D must start a line to mean EOF");
      assert.deepEqual(new Uint8Array(Buffer.from(body, "base64")), data);
      assert.equal(text.length, encodedLength(data.length));
    }),
  );
});

Deno.test("archFromUname and elfArch", () => {
  assert.equal(archFromUname("x86_64\r"), "x64");
  assert.equal(archFromUname("aarch64"), "arm64");
  assert.throws(() => archFromUname("armv7l"), UserError);
  const elf = new Uint8Array(64);
  elf.set([0x7f, 0x45, 0x4c, 0x46]);
  elf[18] = 62;
  assert.equal(elfArch(elf), "x64");
  elf[18] = 183;
  assert.equal(elfArch(elf), "arm64");
  elf[18] = 40;
  assert.equal(elfArch(elf), "other");
  assert.equal(elfArch(new TextEncoder().encode("#!/bin/sh\nexec true\n".padEnd(30))), undefined);
});

Deno.test("loadPayload: wrong architecture and non-executables are refused before any upload", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const elf = new Uint8Array(64);
    elf.set([0x7f, 0x45, 0x4c, 0x46]);
    elf[18] = 183;
    await Deno.writeFile(`${dir}/arm`, elf);
    await assert.rejects(
      loadPayload("x64", `${dir}/arm`),
      /built for arm64, but the instance is x64/,
    );
    await Deno.writeTextFile(`${dir}/text`, "hello");
    await assert.rejects(loadPayload("x64", `${dir}/text`), /not an executable/);
    await assert.rejects(loadPayload("x64", `${dir}/missing`), /--binary/);
    const script = "#!/bin/sh\necho ssm-proxy-agent 9.9.9\n";
    await Deno.writeTextFile(`${dir}/a $(x) 'b`, script);
    const p = await loadPayload("x64", `${dir}/a $(x) 'b`);
    assert.equal(p.size, script.length);
    assert.match(p.sha256, /^[0-9a-f]{64}$/);
    const back = await new Response(
      new Blob([p.gzip]).stream().pipeThrough(new DecompressionStream("gzip")),
    ).text();
    assert.equal(back, script);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function gunzip(gz: Uint8Array): Promise<Uint8Array> {
  const p = new Deno.Command("gzip", { args: ["-dc"], stdin: "piped", stdout: "piped" }).spawn();
  // Read while writing: the output outgrows the pipe long before the input is all in.
  const out = p.output();
  const w = p.stdin.getWriter();
  await w.write(gz);
  await w.close();
  const r = await out;
  assert.ok(r.success, "gzip -dc failed");
  return r.stdout;
}

Deno.test("gzip output is what gzip -dc reads", async () => {
  const data = new TextEncoder().encode("ssm-proxy ".repeat(1000));
  assert.deepEqual(await gunzip(await gzip(data)), data);
  assert.deepEqual(await gunzip(await gzip(new Uint8Array(0))), new Uint8Array(0));
});

Deno.test("gzip of a large binary is several members that gzip -dc reads as one stream", async () => {
  // 20 MB: three members of up to 8 MB, with the member boundaries inside repeated content.
  const data = new Uint8Array(20_000_003);
  for (let i = 0; i < data.length; i += 65536) {
    crypto.getRandomValues(data.subarray(i, Math.min(data.length, i + 1024)));
  }
  const gz = await gzip(data);
  let members = 0;
  for (let i = 0; i + 2 < gz.length; i++) {
    if (gz[i] === 0x1f && gz[i + 1] === 0x8b && gz[i + 2] === 8) members++;
  }
  assert.ok(members >= 3, `${members} gzip headers`);
  assert.deepEqual(await gunzip(gz), data);
});
