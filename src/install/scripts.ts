/**
 * The shell programs `ssm-proxy agent install|status|uninstall` run on the instance, through an
 * AWS-StartInteractiveCommand session (`sh -c <script>` on a pty, specs/ssm-protocol.md §9).
 *
 * Injection: no user-supplied text is ever placed in a script. The scripts are constants; the
 * only values that reach the instance (the binary's SHA-256 and size) travel as one input line
 * that the script itself validates as hex and digits before using. `shellQuote` exists for the
 * day a value must be embedded, and is property-tested.
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

/**
 * Install. Protocol: prints INFO lines (arch, installed binary's SHA-256 and version), then
 * READY, and reads one line: `skip`, or `<sha256 hex> <bytes>`. For an upload it
 * prints SEND and reads base64 of the gzip'd binary in lines, ended by ^D at a line start (the
 * tty's EOF). Then it verifies, stages both files next to their targets, renames them into
 * place, and (re)starts the unit. Any failure before the renames leaves nothing behind.
 */
export const INSTALL_SCRIPT = PRELUDE + `U="$R${AGENT_UNIT}"
for c in base64 gzip sha256sum mktemp uname; do
  command -v "$c" >/dev/null 2>&1 || die "$c is not installed on the instance"
done
cur=-; ver=-
if [ -f "$B" ]; then
  cur=$(sha256sum "$B" | cut -d' ' -f1)
  ver=$("$B" --version 2>/dev/null | head -n 1) || ver=-
fi
t=$(mktemp -d) || die "cannot create a temporary directory"
trap 'rm -rf "$t"; $S rm -f "$B.new" "$U.new" 2>/dev/null' EXIT
stty -echo 2>/dev/null
say ARCH "$(uname -m)"
say CURRENT "$cur"
say VERSION "\${ver:--}"
say SYSTEMD "\${sysd:-0}"
say READY ""
IFS=' ' read -r H N || die "no answer from ssm-proxy"
[ "$H" = skip ] && { say SKIPPED ""; exit 0; }
case "$H" in *[!0-9a-f]*|"") die "bad checksum line";; esac
case "$N" in *[!0-9]*|"") die "bad size line";; esac
[ "\${#H}" = 64 ] || die "bad checksum line"
say SEND ""
base64 -d 2>"$t/err" | gzip -dc >"$t/agent" 2>>"$t/err"
got=$(sha256sum "$t/agent" | cut -d' ' -f1)
size=$(wc -c <"$t/agent" | tr -d ' ')
if [ "$got" != "$H" ]; then
  die "the upload arrived corrupted ($size of $N bytes, SHA-256 $got, expected $H; $(head -c 200 "$t/err" | tr '\\n' ' ')); nothing was installed"
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
