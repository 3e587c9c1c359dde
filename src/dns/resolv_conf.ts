/**
 * resolv.conf(5) as far as split DNS needs it, pure: which nameservers the system used, and the
 * file we put in its place (the old search/domain/options lines kept, one nameserver: our
 * forwarder). The header marks the file as ours, so a later run can tell its own file from the
 * original and never backs it up as such. The file also carries the whole original in comment
 * lines: the backup lives in the state dir, which a reboot clears, and /etc survives it.
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { coversAll } from "../net/domain.ts";
import type { Original } from "./resolv_file.ts";

export interface ResolvConf {
  /** `nameserver` addresses, in order (glibc reads at most three; the forwarder tries them all). */
  nameservers: string[];
  /** Every other directive line, verbatim and in order (search, domain, options, sortlist). */
  kept: string[];
}

const MARKER = "# Written by ssm-proxy";
const OURS_RE = /^# Written by ssm-proxy \(pid (\d+)\)/m;

/**
 * The forwarder's address: on loopback, and one no common resolver uses (systemd-resolved takes
 * 127.0.0.53 and .54, dnsmasq and unbound 127.0.0.1).
 */
export const FORWARDER_ADDRESS = "127.0.0.153";

/** The default when a file names no nameserver (resolv.conf(5)): the local machine. */
export const IMPLICIT_NAMESERVER = "127.0.0.1";

export function parseResolvConf(text: string): ResolvConf {
  const nameservers: string[] = [];
  const kept: string[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    // Both '#' and ';' start comments (resolv.conf(5)).
    if (line === "" || line[0] === "#" || line[0] === ";") continue;
    const [key, value] = line.split(/\s+/, 2);
    if (key === "nameserver") {
      if (value) nameservers.push(value);
    } else kept.push(line);
  }
  return { nameservers, kept };
}

/** The pid in our header, or undefined when the file is not ours. */
export function ownerPid(text: string): number | undefined {
  const m = OURS_RE.exec(text);
  return m ? Number(m[1]) : undefined;
}

export interface RenderInput {
  /** What the file held before (its nameservers become comments, its other lines are kept). */
  previous: ResolvConf;
  /** The forwarder's address, the file's only nameserver. */
  forwarder: string;
  /** Domains sent through the tunnel, and where. */
  domains: string[];
  server: string;
  pid: number;
  /** Where the original is saved. */
  backup: string;
  /** The original again, carried inside the file for after a reboot. */
  embedded: Embedded;
  /** Why the file was rewritten in place instead of replaced, if it was (lines). */
  note?: string;
}

/**
 * No `search` line of ours, only the old ones: the domains are routes for names, not suffixes to
 * try (as systemd-resolved's "~domain"), and "." could not be one anyway.
 */
export function renderResolvConf(r: RenderInput): string {
  const what = coversAll(r.domains)
    ? [
      `${MARKER} (pid ${r.pid}) for full-tunnel DNS: every name goes to`,
      `# ${r.server} through the tunnel; the nameservers this file had before are not used.`,
    ]
    : [
      `${MARKER} (pid ${r.pid}) for split DNS: names in ${r.domains.join(", ")} go to`,
      `# ${r.server} through the tunnel, all others to the nameservers this file had before.`,
    ];
  const lines = [
    ...what,
    "# `ssm-proxy stop` restores the original, saved in",
    `#   ${r.backup}`,
    "# and in the ssm-proxy-original lines below, which any ssm-proxy command puts back after",
    '# a reboot (by hand: put back the "previous" nameserver lines instead of the last line).',
    ...(r.note ? r.note.split("\n").map((l) => `# ${l}`) : []),
    ...r.previous.nameservers.map((n) => `# previous: nameserver ${n}`),
    ...encodeEmbedded(r.embedded),
    ...r.previous.kept,
    `nameserver ${r.forwarder}`,
  ];
  return lines.join("\n") + "\n";
}

/** The original inside our file: what a restore needs when the backup is gone. */
export interface Embedded {
  original: Original;
  /**
   * The boot our file was written in (/proc/sys/kernel/random/boot_id): after a reboot the pid
   * in the header may belong to an unrelated process, so it says nothing about ours.
   */
  bootId?: string;
}

const EMBED = "# ssm-proxy-original: ";
/** Base64 per line: with the prefix, 98 columns, so no line is longer than a terminal. */
const EMBED_WIDTH = 76;

const digest = (b: Uint8Array) => createHash("sha256").update(b).digest("hex").slice(0, 16);
const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");

/**
 * `key=value` fields joined by ';', cut into comment lines. No whitespace anywhere, so editors
 * that trim lines cannot change it; the digest catches any other edit (base64 decoding would
 * silently skip a damaged character).
 */
export function encodeEmbedded(e: Embedded): string[] {
  const o = e.original;
  const fields: string[] = [];
  if (e.bootId && /^[A-Za-z0-9-]+$/.test(e.bootId)) fields.push(`boot=${e.bootId}`);
  const data = (b: Uint8Array) => [`sha256=${digest(b)}`, `data=${b64(b)}`];
  if (o.kind === "file") {
    fields.push(
      "kind=file",
      `mode=${o.mode.toString(8)}`,
      `uid=${o.uid ?? ""}`,
      `gid=${o.gid ?? ""}`,
      ...data(o.bytes),
    );
  } else if (o.kind === "symlink") {
    fields.push("kind=symlink", ...data(new TextEncoder().encode(o.target)));
  } else fields.push("kind=absent");
  const payload = fields.join(";");
  const lines: string[] = [];
  for (let i = 0; i < payload.length; i += EMBED_WIDTH) {
    lines.push(EMBED + payload.slice(i, i + EMBED_WIDTH));
  }
  return lines;
}

/** The original carried in `text`, or undefined when there is none or it was damaged. */
export function decodeEmbedded(text: string): Embedded | undefined {
  const payload = text.split("\n")
    .filter((l) => l.startsWith(EMBED))
    .map((l) => l.slice(EMBED.length).trim())
    .join("");
  if (payload === "") return undefined;
  const f = new Map<string, string>();
  for (const field of payload.split(";")) {
    const eq = field.indexOf("=");
    if (eq < 0) return undefined;
    f.set(field.slice(0, eq), field.slice(eq + 1));
  }
  const bootId = f.get("boot");
  const data = (): Uint8Array | undefined => {
    const d = f.get("data");
    if (d === undefined || !/^[A-Za-z0-9+/]*={0,2}$/.test(d)) return undefined;
    const bytes = new Uint8Array(Buffer.from(d, "base64"));
    return digest(bytes) === f.get("sha256") ? bytes : undefined;
  };
  const id = (s: string | undefined): number | null | undefined =>
    s === "" ? null : s !== undefined && /^\d+$/.test(s) ? Number(s) : undefined;
  let original: Original;
  switch (f.get("kind")) {
    case "file": {
      const bytes = data();
      const mode = f.get("mode");
      const uid = id(f.get("uid"));
      const gid = id(f.get("gid"));
      if (!bytes || !mode || !/^[0-7]{1,4}$/.test(mode) || uid === undefined || gid === undefined) {
        return undefined;
      }
      original = { kind: "file", bytes, mode: parseInt(mode, 8), uid, gid };
      break;
    }
    case "symlink": {
      const bytes = data();
      if (!bytes || bytes.length === 0) return undefined;
      original = { kind: "symlink", target: new TextDecoder().decode(bytes) };
      break;
    }
    case "absent":
      original = { kind: "absent" };
      break;
    default:
      return undefined;
  }
  return bootId ? { original, bootId } : { original };
}
