/**
 * The shell programs `ssm-proxy agent install|status|uninstall` run on the instance, through an
 * AWS-StartInteractiveCommand session (`sh -c <script>` on a pty, specs/ssm-protocol.md §9).
 *
 * Injection: no user-supplied text is ever placed in a script. The scripts are constants; the
 * only values that reach the instance (SHA-256 digests, sizes, part numbers, and the temporary
 * directory the instance itself named) travel as input lines that the scripts validate as hex,
 * digits or a plain path before using. `shellQuote` exists for the day a value must be
 * embedded, and is property-tested.
 *
 * Results come back as marker lines `__SSMP_<WORD>__ <text>` on the pty (exit codes are not
 * reported by shell sessions). The pty turns `\n` into `\r\n`; parseMarkers strips that.
 *
 * SSM_PROXY_INSTALL_ROOT, if set in the SSM agent's environment, prefixes every path (like
 * DESTDIR): the tests install into a directory inside the lab's instance namespace.
 */

export const AGENT_BIN = "/usr/local/bin/ssm-proxy-agent";
export const AGENT_UNIT = "/etc/systemd/system/ssm-proxy-agent.service";
export const AGENT_CONFIG = "/etc/ssm-proxy/agent.yaml";
export const AGENT_STATE = "/var/lib/ssm-proxy";

/** Single-quote for POSIX sh: safe for any string, including newlines and quotes. */
export function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

const PRELUDE = `set -u
say() { printf '__SSMP_%s__ %s\\n' "$1" "$2"; }
die() { say FAIL "$1"; exit 1; }
R=\${SSM_PROXY_INSTALL_ROOT-}
B="$R${AGENT_BIN}"
C="$R${AGENT_CONFIG}"
S=
if [ "$(id -u)" != 0 ]; then
  S='sudo -n'
  sudo -n true 2>/dev/null || die "root is needed and $(id -un) cannot sudo without a password; allow it or set Session Manager's Run As to a user that can"
fi
sysd=; command -v systemctl >/dev/null 2>&1 && sysd=1
agent() { if [ -f "$C" ]; then $S "$B" "$@" --config "$C"; else $S "$B" "$@"; fi; }
`;

/** Where the install's temporary directory may be: absolute, plain characters, ours by name. */
const DIR_CHECK = `case "$D" in *[!A-Za-z0-9/._-]*|*..*|"") die "bad directory line";; esac
case "$D" in /*/ssm-proxy.*) ;; *) die "bad directory line";; esac
`;

/**
 * Install, the control session. Protocol: prints INFO lines (arch, installed binary's SHA-256 and
 * version, DIR: its temporary directory, where PART_SCRIPT sessions put the parts), then READY,
 * and reads one line: `skip`, or `<sha256> <bytes> <part sha256>…` (one digest per part, in
 * order), acknowledged with PARTS. Then it reads `join` or `abort`. On `join` it checks each part's SHA-256
 * again, concatenates them in order (the parts are slices of one gzip stream), unpacks that and
 * checks the whole, stages both files next to their targets,
 * renames them into place, and (re)starts the unit. Any failure before the renames, and `abort`,
 * leave nothing behind: the directory is removed before the answer is printed.
 */
export const INSTALL_SCRIPT = PRELUDE + `U="$R${AGENT_UNIT}"
set -f
for c in base64 gzip sha256sum mktemp uname; do
  command -v "$c" >/dev/null 2>&1 || die "$c is not installed on the instance"
done
cur=-; ver=-
if [ -f "$B" ]; then
  cur=$(sha256sum "$B" | cut -d' ' -f1)
  ver=$("$B" --version 2>/dev/null | head -n 1) || ver=-
fi
t=$(mktemp -d "\${TMPDIR:-/tmp}/ssm-proxy.XXXXXXXX") || die "cannot create a temporary directory"
cleanup() { rm -rf "$t"; $S rm -f "$B.new" "$U.new" 2>/dev/null; }
die() { cleanup; say FAIL "$1"; exit 1; }
trap cleanup EXIT
trap 'exit 1' HUP INT TERM
case "$t" in
  *[!A-Za-z0-9/._-]*) die "the temporary directory $t has characters the upload cannot name; point TMPDIR elsewhere";;
esac
: >"$t/.ssm-proxy-install" || die "cannot write in $t"
stty -echo 2>/dev/null
say ARCH "$(uname -m)"
say CURRENT "$cur"
say VERSION "\${ver:--}"
say SYSTEMD "\${sysd:-0}"
say DIR "$t"
say READY ""
IFS=' ' read -r H N L || die "no answer from ssm-proxy"
# The session may be ended as soon as the last marker is out: clean up before printing it.
[ "$H" = skip ] && { cleanup; say SKIPPED ""; exit 0; }
case "$H" in *[!0-9a-f]*|"") die "bad checksum line";; esac
case "$N" in *[!0-9]*|"") die "bad size line";; esac
[ "\${#H}" = 64 ] || die "bad checksum line"
P=0
for h in $L; do
  case "$h" in *[!0-9a-f]*) die "bad part line";; esac
  [ "\${#h}" = 64 ] || die "bad part line"
  P=$((P + 1))
done
[ "$P" -ge 1 ] || die "bad part line"
[ "$P" -le 16 ] || die "bad part line"
say PARTS "$P"
IFS=' ' read -r W || die "no answer from ssm-proxy"
[ "$W" = join ] || { cleanup; say ABORTED ""; exit 1; }
set --
i=0
for h in $L; do
  i=$((i + 1))
  f="$t/part.$i"
  [ -f "$f" ] || die "part $i of $P never arrived; nothing was installed"
  g=$(sha256sum "$f" | cut -d' ' -f1)
  [ "$g" = "$h" ] || die "part $i of $P changed after it arrived (SHA-256 $g, expected $h); nothing was installed"
  set -- "$@" "$f"
done
cat "$@" >"$t/agent.gz" || die "cannot join the parts in $t (is the disk full?); nothing was installed"
rm -f "$@"
gzip -dc <"$t/agent.gz" >"$t/agent" 2>"$t/gz.err" || die "the upload arrived corrupted (gzip: $(head -c 200 "$t/gz.err" | tr '\\n' ' ')); nothing was installed"
rm -f "$t/agent.gz"
got=$(sha256sum "$t/agent" | cut -d' ' -f1)
size=$(wc -c <"$t/agent" | tr -d ' ')
if [ "$got" != "$H" ]; then
  die "the upload arrived corrupted ($size of $N bytes, SHA-256 $got, expected $H); nothing was installed"
fi
$S mkdir -p "$(dirname "$B")" "$(dirname "$U")" || die "cannot create $(dirname "$B")"
$S install -m 0755 "$t/agent" "$B.new" || die "cannot write $B.new"
nv=$("$B.new" --version 2>&1 | head -n 1) || die "the uploaded binary does not run here: $nv"
"$B.new" unit >"$t/unit" 2>&1 || die "the uploaded binary could not print its unit: $(head -c 200 "$t/unit")"
$S install -m 0644 "$t/unit" "$U.new" || die "cannot write $U.new"
$S mv -f "$U.new" "$U" || die "cannot move the unit into place"
$S mv -f "$B.new" "$B" || die "cannot move the binary into place"
say INSTALLED "$nv"
if [ -n "$sysd" ]; then
  $S systemctl daemon-reload || die "systemctl daemon-reload failed"
  $S systemctl enable ssm-proxy-agent >/dev/null 2>&1 || die "systemctl enable ssm-proxy-agent failed"
  $S systemctl restart ssm-proxy-agent || die "systemctl restart ssm-proxy-agent failed; see journalctl -u ssm-proxy-agent"
  i=0
  while [ "$(systemctl is-active ssm-proxy-agent 2>/dev/null)" != active ] && [ $i -lt 10 ]; do
    sleep 1; i=$((i + 1))
  done
  say ACTIVE "$(systemctl is-active ssm-proxy-agent 2>/dev/null)"
fi
cleanup
say DONE ""
`;

const BARE_PRELUDE = `set -uf
say() { printf '__SSMP_%s__ %s\\n' "$1" "$2"; }
`;

/**
 * One part of an upload, in a session of its own. Protocol: READY, then one line
 * `<dir> <index> <count> <sha256>` (the directory the control session printed, validated here
 * like every value), SEND, then base64 of its slice of the gzip'd binary ended by ^D. The slice is
 * decoded to `part.<index>.tmp`, checked, and only then renamed to `part.<index>`, so a part file that
 * exists is a good one. Prints PART with the digest; a bad part is removed before FAIL. Needs no
 * root: the directory belongs to the same Session Manager user.
 */
export const PART_SCRIPT = BARE_PRELUDE + `f=
die() { [ -n "$f" ] && rm -f "$f.tmp" "$f.err"; say FAIL "$1"; exit 1; }
for c in base64 sha256sum; do
  command -v "$c" >/dev/null 2>&1 || die "$c is not installed on the instance"
done
stty -echo 2>/dev/null
say READY ""
IFS=' ' read -r D I P H || die "no answer from ssm-proxy"
${DIR_CHECK}case "$I" in *[!0-9]*|"") die "bad part line";; esac
case "$P" in *[!0-9]*|"") die "bad part line";; esac
case "$H" in *[!0-9a-f]*|"") die "bad part line";; esac
[ "\${#H}" = 64 ] || die "bad part line"
[ -f "$D/.ssm-proxy-install" ] || die "the install's temporary directory $D is gone (its session ended)"
f="$D/part.$I"
say SEND ""
base64 -d >"$f.tmp" 2>"$f.err"
got=$(sha256sum "$f.tmp" | cut -d' ' -f1)
size=$(wc -c <"$f.tmp" | tr -d ' ')
[ "$got" = "$H" ] || die "the upload arrived corrupted (part $I of $P: $size bytes, SHA-256 $got, expected $H; $(head -c 200 "$f.err" | tr '\\n' ' '))"
mv -f "$f.tmp" "$f" || die "cannot write $f"
rm -f "$f.err"
say PART "$got"
`;

/**
 * Removes an install's temporary directory when its control session died before it could
 * (a killed shell runs no trap). Reads the directory as one line and validates it first.
 */
export const CLEANUP_SCRIPT = BARE_PRELUDE + `die() { say FAIL "$1"; exit 1; }
stty -echo 2>/dev/null
say READY ""
IFS=' ' read -r D || die "no answer from ssm-proxy"
${DIR_CHECK}[ -f "$D/.ssm-proxy-install" ] && rm -rf "$D"
say DONE ""
`;

/** Status: version, unit state, and the running agent's own status document if it has one. */
export const STATUS_SCRIPT = PRELUDE + `if [ -f "$B" ]; then
  say VERSION "$("$B" --version 2>&1 | head -n 1)"
  st=$(agent status --json 2>/dev/null | tr -d '\\n')
  say STATUS "\${st:--}"
else
  say VERSION -
fi
if [ -n "$sysd" ]; then
  say ACTIVE "$(systemctl is-active ssm-proxy-agent 2>/dev/null)"
  say ENABLED "$(systemctl is-enabled ssm-proxy-agent 2>/dev/null)"
fi
say DONE ""
`;

/** Uninstall: stop and disable, undo NAT and state with the agent's own cleanup, remove files. */
export const UNINSTALL_SCRIPT = PRELUDE + `U="$R${AGENT_UNIT}"
D="$R${AGENT_STATE}"
[ -f "$B" ] || [ -f "$U" ] || { say ABSENT ""; say DONE ""; exit 0; }
if [ -n "$sysd" ]; then
  $S systemctl disable --now ssm-proxy-agent >/dev/null 2>&1 && say REMOVED "stopped and disabled ssm-proxy-agent.service"
fi
if [ -x "$B" ]; then
  e=$(mktemp) || die "cannot create a temporary file"
  agent cleanup 2>"$e" | while IFS= read -r l; do say REMOVED "$l"; done
  [ -s "$e" ] && say WARN "ssm-proxy-agent cleanup: $(head -c 300 "$e" | tr '\n' ' ')"
  rm -f "$e"
fi
$S rm -f "$U" && say REMOVED "$U"
[ -n "$sysd" ] && $S systemctl daemon-reload
$S rm -f "$B" && say REMOVED "$B"
$S rm -rf "$D" && say REMOVED "$D"
[ -f "$C" ] && say KEPT "$C (your configuration)"
say DONE ""
`;

export interface Marker {
  word: string;
  text: string;
}

const MARKER = /^__SSMP_([A-Z]+)__ ?(.*)$/;

/**
 * Splits pty output into marker lines and everything else. Returns the complete lines seen so
 * far and the unfinished remainder to prepend to the next chunk.
 */
export function parseMarkers(
  text: string,
): { markers: Marker[]; other: string[]; rest: string } {
  const lines = text.split("\n");
  const rest = lines.pop()!;
  const markers: Marker[] = [];
  const other: string[] = [];
  for (const raw of lines) {
    const line = raw.replace(/\r+$/, "");
    const m = MARKER.exec(line);
    if (m) markers.push({ word: m[1], text: m[2] });
    else if (line.trim()) other.push(line);
  }
  return { markers, other, rest };
}
