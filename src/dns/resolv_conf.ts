/**
 * resolv.conf(5) as far as split DNS needs it, pure: which nameservers the system used, and the
 * file we put in its place (the old search/domain/options lines kept, one nameserver: our
 * forwarder). The header marks the file as ours, so a later run can tell its own file from the
 * original and never backs it up as such.
 */

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
  /** Why the file was rewritten in place instead of replaced, if it was (lines). */
  note?: string;
}

export function renderResolvConf(r: RenderInput): string {
  const lines = [
    `${MARKER} (pid ${r.pid}) for split DNS: names in ${r.domains.join(", ")} go to`,
    `# ${r.server} through the tunnel, all others to the nameservers this file had before.`,
    "# `ssm-proxy stop` restores the original, saved in",
    `#   ${r.backup}`,
    `# (by hand: put back the "previous" nameserver lines instead of the last line).`,
    ...(r.note ? r.note.split("\n").map((l) => `# ${l}`) : []),
    ...r.previous.nameservers.map((n) => `# previous: nameserver ${n}`),
    ...r.previous.kept,
    `nameserver ${r.forwarder}`,
  ];
  return lines.join("\n") + "\n";
}
