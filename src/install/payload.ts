/**
 * The agent binary as it travels to the instance: found for the instance's architecture,
 * checked, hashed, gzip'd, and cut into base64 lines.
 *
 * Why base64 lines: the upload goes through a pty in canonical mode (specs/ssm-protocol.md §9),
 * where control bytes are line-editing commands (^C, ^D, ^U, DEL…) and a line longer than
 * 4095 bytes is cut. The base64 alphabet and `\n` pass a terminal unchanged; lines of 76
 * characters stay far below the limit; and ^D at the start of a line is the tty's end of file,
 * which ends `base64 -d` on the instance.
 */
import { Buffer } from "node:buffer";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ExitCode, UserError } from "../errors.ts";

export type AgentArch = "x64" | "arm64";

/** `uname -m` → the release's architecture name. */
export function archFromUname(machine: string): AgentArch {
  const m = machine.trim();
  if (m === "x86_64" || m === "amd64") return "x64";
  if (m === "aarch64" || m === "arm64") return "arm64";
  throw new UserError(
    `the instance's architecture is ${
      JSON.stringify(m)
    }; ssm-proxy-agent is built for x86_64 and aarch64 only`,
    ExitCode.Remote,
  );
}

const ELF_MACHINE: Record<number, AgentArch> = { 62: "x64", 183: "arm64" };

/** The architecture of an ELF executable; undefined for anything else (e.g. a script). */
export function elfArch(head: Uint8Array): AgentArch | "other" | undefined {
  if (head.length < 20 || head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c) {
    return undefined;
  }
  if (head[3] !== 0x46) return undefined;
  const machine = head[18] | (head[19] << 8);
  return ELF_MACHINE[machine] ?? "other";
}

/** Where a release or a local build keeps the agent binaries, nearest first. */
export function candidatePaths(arch: AgentArch): string[] {
  const name = `ssm-proxy-agent-linux-${arch}`;
  const dirs = [dirname(Deno.execPath())];
  const env = Deno.env.get("SSM_PROXY_AGENT_DIR");
  if (env) dirs.unshift(env);
  // From a source checkout (`deno task dev`): what `deno task build` wrote.
  if (import.meta.url.startsWith("file:")) {
    dirs.push(join(dirname(fileURLToPath(import.meta.url)), "../../dist"));
  }
  return dirs.map((d) => join(d, name));
}

export interface AgentBinary {
  path: string;
  size: number;
  sha256: string;
  bytes: Uint8Array<ArrayBuffer>;
}

export interface AgentPayload {
  path: string;
  size: number;
  sha256: string;
  gzip: Uint8Array<ArrayBuffer>;
}

/** The binary found, read, checked against the architecture and hashed (not yet compressed). */
/**
 * readAgentBinary, with the file's bytes perhaps already being read (`--binary` names the file
 * before the instance has said its architecture: install.ts starts reading it at once).
 */
export async function readAgentBinary(
  arch: AgentArch,
  explicit?: string,
  early?: Promise<Uint8Array<ArrayBuffer>>,
): Promise<AgentBinary> {
  let path = explicit;
  if (!path) {
    for (const p of candidatePaths(arch)) {
      if (await Deno.stat(p).then((s) => s.isFile, () => false)) {
        path = p;
        break;
      }
    }
  }
  if (!path) {
    throw new UserError(
      `no ssm-proxy-agent binary for linux-${arch}: put ssm-proxy-agent-linux-${arch} from the release next to ssm-proxy (or in $SSM_PROXY_AGENT_DIR), or pass --binary PATH`,
      ExitCode.Usage,
    );
  }
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = await (early ?? Deno.readFile(path));
  } catch (e) {
    throw new UserError(`--binary ${path}: ${(e as Error).message}`, ExitCode.Usage);
  }
  const found = elfArch(bytes.subarray(0, 20));
  if (found !== undefined && found !== arch) {
    throw new UserError(
      `${path} is built for ${found}, but the instance is ${arch}: use ssm-proxy-agent-linux-${arch}`,
      ExitCode.Usage,
    );
  }
  if (found === undefined && !(bytes[0] === 0x23 && bytes[1] === 0x21)) {
    throw new UserError(
      `${path} is not an executable (neither ELF nor a #! script)`,
      ExitCode.Usage,
    );
  }
  return { path, size: bytes.length, sha256: await sha256Hex(bytes), bytes };
}

export async function loadPayload(arch: AgentArch, explicit?: string): Promise<AgentPayload> {
  const b = await readAgentBinary(arch, explicit);
  return { path: b.path, size: b.size, sha256: b.sha256, gzip: await gzip(b.bytes) };
}

export async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  return hex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
}

/** Raw bytes per gzip member: each is one synchronous call of ~0.2 s, between which timers run. */
const GZIP_SLICE_BYTES = 8 << 20;

/**
 * gzip as consecutive members (RFC 1952 §2.2: `gzip -d` unpacks them as one stream). node:zlib's
 * deflate takes 2.1 s for a 72 MB agent where CompressionStream took 3.1 s, and with 4 sessions
 * uploading ~4 MB/s that second is 6 % of the install; slicing keeps the event loop (signals, the
 * sessions starting meanwhile) from stalling for the whole of it.
 */
export async function gzip(bytes: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  const { gzipSync } = await import("node:zlib");
  const members: Uint8Array[] = [];
  let size = 0;
  for (let at = 0; at < bytes.length || at === 0; at += GZIP_SLICE_BYTES) {
    const m = gzipSync(bytes.subarray(at, at + GZIP_SLICE_BYTES));
    members.push(m);
    size += m.length;
    if (at + GZIP_SLICE_BYTES < bytes.length) await new Promise((r) => setTimeout(r, 0));
  }
  const out = new Uint8Array(size);
  let o = 0;
  for (const m of members) {
    out.set(m, o);
    o += m.length;
  }
  return out;
}

/** 57 bytes → one 76-character base64 line. */
const LINE_BYTES = 57;

/** The upload's text: base64 lines, `linesPerChunk` at a time, then ^D. */
export function* base64Chunks(data: Uint8Array, linesPerChunk = 256): Generator<Uint8Array> {
  const step = LINE_BYTES * linesPerChunk;
  const enc = new TextEncoder();
  for (let i = 0; i < data.length; i += step) {
    const b64 = Buffer.from(data.buffer, data.byteOffset + i, Math.min(step, data.length - i))
      .toString("base64");
    let text = "";
    for (let j = 0; j < b64.length; j += 76) text += b64.slice(j, j + 76) + "\n";
    yield enc.encode(text);
  }
  yield Uint8Array.of(0x04);
}

/** Bytes base64Chunks yields for `n` input bytes, for progress. */
export function encodedLength(n: number): number {
  const lines = Math.ceil(n / LINE_BYTES);
  return Math.ceil(n / 3) * 4 + lines + 1;
}

export function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
