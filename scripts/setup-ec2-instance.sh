#!/usr/bin/env bash
# Prepare an EC2 instance (user-data, or while baking an AMI) for ssm-proxy:
#   1. install ssm-proxy-agent from a local file or a release URL, SHA-256 checked;
#   2. install ssm-proxy-agent.service into /etc/systemd/system, enable and start it;
#   3. check that amazon-ssm-agent runs and that the instance has an instance profile.
#
# Usage:
#   setup-ec2-instance.sh --file ./ssm-proxy-agent-linux-x64 [--sha256 HEX]
#   setup-ec2-instance.sh --url https://github.com/ssm-proxy/ssm-proxy/releases/download/vX.Y.Z
#                         [--sha256 HEX | --sums-url URL]
# Options:
#   --file PATH      the agent binary, already on this machine
#   --url BASE       release base URL: BASE/ssm-proxy-agent-linux-<arch> is downloaded and checked
#                    against BASE/SHA256SUMS unless --sha256 or --sums-url is given
#   --sha256 HEX     expected SHA-256 of the binary
#   --sums-url URL   a SHA256SUMS file listing the binary
#   --service PATH   the systemd unit (default: the one the binary carries, `ssm-proxy-agent
#                    unit`; older binaries: ssm-proxy-agent.service next to this script or at BASE)
#   --config PATH    an agent config to install as /etc/ssm-proxy/agent.yaml
#   --arch ARCH      override `uname -m` (x86_64/amd64 or aarch64/arm64)
#   --skip-checks    do not check amazon-ssm-agent and the instance profile
#   --dry-run        print the plan and change nothing (no root needed, nothing downloaded)
# Exit status: 0 when installed and every check passed; 1 on an error or a failed check;
# 2 on a usage error.
set -euo pipefail

PROG="setup-ec2-instance.sh"
BIN_DEST="/usr/local/bin/ssm-proxy-agent"
UNIT_DEST="/etc/systemd/system/ssm-proxy-agent.service"
CONFIG_DEST="/etc/ssm-proxy/agent.yaml"
IMDS="http://169.254.169.254"

file=""
url=""
sha256=""
sums_url=""
service=""
config=""
arch="$(uname -m)"
dry_run=0
skip_checks=0

die() {
  printf '%s: error: %s\n' "$PROG" "$1" >&2
  exit "${2:-1}"
}

usage() {
  die "$1 (see the comment at the top of this script for usage)" 2
}

need_value() {
  if [[ $# -lt 2 || -z "$2" ]]; then
    usage "$1 needs a value"
  fi
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --file) need_value "$@"; file="$2"; shift 2 ;;
    --url) need_value "$@"; url="${2%/}"; shift 2 ;;
    --sha256) need_value "$@"; sha256="$(printf '%s' "$2" | tr 'A-F' 'a-f')"; shift 2 ;;
    --sums-url) need_value "$@"; sums_url="$2"; shift 2 ;;
    --service) need_value "$@"; service="$2"; shift 2 ;;
    --config) need_value "$@"; config="$2"; shift 2 ;;
    --arch) need_value "$@"; arch="$2"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --skip-checks) skip_checks=1; shift ;;
    -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
    *) usage "unknown argument: $1" ;;
  esac
done

if [[ -n "$file" && -n "$url" ]]; then usage "give --file or --url, not both"; fi
if [[ -z "$file" && -z "$url" ]]; then usage "give --file PATH or --url BASE"; fi
if [[ -n "$sha256" && -n "$sums_url" ]]; then usage "give --sha256 or --sums-url, not both"; fi
if [[ -n "$sha256" && ! "$sha256" =~ ^[0-9a-f]{64}$ ]]; then
  usage "--sha256 must be 64 hex digits"
fi

case "$arch" in
  x86_64 | amd64) short="x64" ;;
  aarch64 | arm64) short="arm64" ;;
  *) die "unsupported architecture $arch: ssm-proxy-agent is built for x86_64 and aarch64" ;;
esac
asset="ssm-proxy-agent-linux-$short"

if [[ -n "$url" && -z "$sha256" && -z "$sums_url" ]]; then
  sums_url="$url/SHA256SUMS"
fi
# Without --service the unit comes from the binary itself (`ssm-proxy-agent unit`), so the two
# always match; a binary too old to print one falls back to the file next to this script or at
# the release URL (resolved once the binary is here).
if [[ -n "$file" && ! -f "$file" ]]; then die "--file $file: no such file"; fi
if [[ -n "$config" && ! -f "$config" ]]; then die "--config $config: no such file"; fi

plan() {
  printf 'plan: %s\n' "$*"
}

# Runs a command, or only prints it with --dry-run.
run() {
  if [[ "$dry_run" -eq 1 ]]; then
    printf 'would run:'
    printf ' %q' "$@"
    printf '\n'
  else
    "$@"
  fi
}

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  else
    shasum -a 256 "$1" | cut -d' ' -f1
  fi
}

download() {
  # $1 URL, $2 destination
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL --retry 3 --connect-timeout 10 -o "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then
    wget -q -O "$2" "$1"
  else
    die "neither curl nor wget is installed: install one, or pass --file"
  fi
}

plan "architecture $arch (asset $asset)"
if [[ -n "$file" ]]; then
  plan "agent binary from $file"
else
  plan "agent binary from $url/$asset"
fi
if [[ -n "$sha256" ]]; then
  plan "check SHA-256 $sha256"
elif [[ -n "$sums_url" ]]; then
  plan "check SHA-256 against $sums_url"
else
  plan "no SHA-256 given: the local file is installed unchecked"
fi
plan "install $BIN_DEST"
plan "install $UNIT_DEST from ${service:-the binary (ssm-proxy-agent unit)}"
if [[ -n "$config" ]]; then plan "install $CONFIG_DEST from $config"; fi
plan "systemctl daemon-reload; systemctl enable --now ssm-proxy-agent"
if [[ "$skip_checks" -eq 0 ]]; then
  plan "check amazon-ssm-agent is running and the instance has an instance profile"
fi

if [[ "$dry_run" -eq 0 && "$(id -u)" -ne 0 ]]; then
  die "run as root (user-data runs as root; otherwise use sudo)"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# 1. The binary, fetched and checked.
binary="$file"
if [[ -n "$url" ]]; then
  binary="$work/$asset"
  run download "$url/$asset" "$binary"
fi
if [[ -n "$sums_url" ]]; then
  run download "$sums_url" "$work/SHA256SUMS"
  if [[ "$dry_run" -eq 0 ]]; then
    sha256="$(awk -v a="$asset" '$2 == a || $2 == "*" a { print $1; exit }' "$work/SHA256SUMS")"
    if [[ -z "$sha256" ]]; then die "$sums_url does not list $asset"; fi
  fi
fi
if [[ -n "$sha256" && -f "$binary" ]]; then
  actual="$(sha256_of "$binary")"
  if [[ "$actual" != "$sha256" ]]; then
    die "SHA-256 mismatch for $binary: expected $sha256, got $actual (corrupt or wrong file)"
  fi
  printf 'ok: SHA-256 of %s matches\n' "$binary"
fi

# 2. Installed and started.
if [[ -z "$service" && "$dry_run" -eq 1 ]]; then
  service="$work/ssm-proxy-agent.service"
elif [[ -z "$service" ]]; then
  chmod 0755 "$binary" 2>/dev/null || true
  if "$binary" unit >"$work/ssm-proxy-agent.service" 2>/dev/null; then
    service="$work/ssm-proxy-agent.service"
  else
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    if [[ -f "$here/ssm-proxy-agent.service" ]]; then
      service="$here/ssm-proxy-agent.service"
    elif [[ -n "$url" ]]; then
      service="$url/ssm-proxy-agent.service"
    else
      die "$binary cannot print its unit (too old?): pass --service PATH"
    fi
  fi
fi
if [[ "$service" == http://* || "$service" == https://* ]]; then
  run download "$service" "$work/ssm-proxy-agent.service"
  service="$work/ssm-proxy-agent.service"
fi
run install -D -m 0755 "$binary" "$BIN_DEST"
run install -D -m 0644 "$service" "$UNIT_DEST"
if [[ -n "$config" ]]; then
  run install -D -m 0600 "$config" "$CONFIG_DEST"
fi
run systemctl daemon-reload
run systemctl enable --now ssm-proxy-agent
if [[ "$dry_run" -eq 0 ]]; then
  if systemctl is-active --quiet ssm-proxy-agent; then
    printf 'ok: ssm-proxy-agent is running (%s)\n' "$("$BIN_DEST" --version 2>/dev/null || echo "version unknown")"
  else
    die "ssm-proxy-agent did not start: see journalctl -u ssm-proxy-agent"
  fi
fi

# 3. What Session Manager itself needs.
if [[ "$skip_checks" -eq 1 || "$dry_run" -eq 1 ]]; then
  if [[ "$dry_run" -eq 1 ]]; then printf 'dry run: nothing was changed\n'; fi
  exit 0
fi
problems=0
if systemctl is-active --quiet amazon-ssm-agent ||
  systemctl is-active --quiet snap.amazon-ssm-agent.amazon-ssm-agent; then
  printf 'ok: amazon-ssm-agent is running\n'
else
  printf 'problem: amazon-ssm-agent is not running: install it (it ships with Amazon Linux and Ubuntu AMIs) and run systemctl enable --now amazon-ssm-agent\n' >&2
  problems=$((problems + 1))
fi
token="$(curl -fsS -m 5 -X PUT "$IMDS/latest/api/token" \
  -H "X-aws-ec2-metadata-token-ttl-seconds: 60" 2>/dev/null || true)"
if [[ -z "$token" ]]; then
  printf 'problem: no IMDSv2 token from %s: is this an EC2 instance with the metadata service enabled?\n' "$IMDS" >&2
  problems=$((problems + 1))
else
  info="$(curl -fsS -m 5 -H "X-aws-ec2-metadata-token: $token" \
    "$IMDS/latest/meta-data/iam/info" 2>/dev/null || true)"
  if [[ "$info" == *InstanceProfileArn* ]]; then
    printf 'ok: instance profile %s\n' "$(printf '%s' "$info" | sed -n 's/.*"InstanceProfileArn" *: *"\([^"]*\)".*/\1/p')"
  else
    printf 'problem: the instance has no instance profile: attach a role with AmazonSSMManagedInstanceCore, or Session Manager cannot reach it\n' >&2
    problems=$((problems + 1))
  fi
fi
if [[ "$problems" -gt 0 ]]; then
  die "ssm-proxy-agent is installed, but $problems check(s) failed (see above)"
fi
printf 'done: this instance is ready for ssm-proxy\n'
