#!/usr/bin/env bash
# Build the real control plane the Kubernetes tests start: kube-apiserver and etcd from their Go
# modules, and Istio's CRDs from istio.io/api, into a cache outside the repository:
#   /var/cache/wansteer/k8s/<version>/bin/{kube-apiserver,etcd}
#   /var/cache/wansteer/istio/api-<version>/crds.yaml
#   /var/cache/wansteer/istio/<version>/bin/pilot-discovery   (istiod, for test/istio/)
# Go's module and build caches live under /var/cache/wansteer/go, so a rerun (or a version bump
# that shares most dependencies) is quick. Idempotent: a present binary is not rebuilt.
# Called by scripts/setup.sh; WANSTEER_SKIP_K8S=1 skips it all, WANSTEER_SKIP_ISTIOD=1 only istiod
# (the tests that need what is skipped then skip, or fail under CI=true).
set -euo pipefail

# Pinned versions (scripts/k8s-versions.sh). etcd is the one kube-apiserver's own go.mod names
# (its test framework's), so client and server agree and it compiles against the dependencies
# already built.
# shellcheck source=k8s-versions.sh
. "$(dirname "$0")/k8s-versions.sh"
CACHE=${WANSTEER_CACHE:-/var/cache/wansteer}

say() { printf 'wansteer setup-k8s: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

command -v go >/dev/null 2>&1 || die "Go is needed to build kube-apiserver (found none)"
export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOFLAGS=-mod=mod GOTOOLCHAIN=local
export CGO_ENABLED=0

k8s_dir="$CACHE/k8s/$K8S_VERSION"
bin="$k8s_dir/bin"

# --- kube-apiserver and etcd -------------------------------------------------------------------
# k8s.io/kubernetes is not meant to be a dependency: its go.mod points each staging module
# (k8s.io/api, k8s.io/apiserver, ...) at ./staging and requires them at v0.0.0. A throwaway module
# that requires it and replaces each staging module by its published v0.<minor>.<patch> builds it.
if [ ! -x "$bin/kube-apiserver" ] || [ ! -x "$bin/etcd" ]; then
  started=$(date +%s)
  build="$k8s_dir/build"
  mkdir -p "$build/etcd" "$bin"
  say "building kube-apiserver and etcd $K8S_VERSION into $bin (a first build takes a while)"
  k8s_mod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
  [ -f "$k8s_mod" ] || die "cannot download k8s.io/kubernetes@$K8S_VERSION from the Go module proxy"
  staging_version="v0.${K8S_VERSION#v1.}"
  {
    printf 'module wansteer.local/k8s-build\n\ngo 1.26\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$K8S_VERSION"
    sed -n 's#^\t\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\t\1 => \1 '"$staging_version"'#p' "$k8s_mod"
    printf ')\n'
  } > "$build/go.mod"
  # etcd's server is in kube-apiserver's module graph already; its command is three lines.
  cat > "$build/etcd/main.go" <<'EOF'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  (
    cd "$build"
    go build -trimpath -ldflags='-s -w' -o "$bin/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
    go build -trimpath -ldflags='-s -w' -o "$bin/etcd.tmp" ./etcd
  ) || die "building kube-apiserver/etcd $K8S_VERSION failed (see the go output above)"
  mv "$bin/kube-apiserver.tmp" "$bin/kube-apiserver"
  mv "$bin/etcd.tmp" "$bin/etcd"
  say "built kube-apiserver and etcd in $(( $(date +%s) - started ))s"
fi

# --- Istio's CRDs (VirtualService) -------------------------------------------------------------
istio_dir="$CACHE/istio/api-$ISTIO_API_VERSION"
if [ ! -f "$istio_dir/crds.yaml" ]; then
  api_dir=$(go mod download -json "istio.io/api@$ISTIO_API_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  crds="$api_dir/kubernetes/customresourcedefinitions.gen.yaml"
  [ -f "$crds" ] || die "istio.io/api@$ISTIO_API_VERSION has no kubernetes/customresourcedefinitions.gen.yaml"
  mkdir -p "$istio_dir"
  cp "$crds" "$istio_dir/crds.yaml.tmp" && mv "$istio_dir/crds.yaml.tmp" "$istio_dir/crds.yaml"
fi

# --- istiod (pilot-discovery) ------------------------------------------------------------------
# For the test that gives the rendered EnvoyFilters to istiod (test/istio/). istio.io/istio needs
# no replacements: a throwaway module that requires it builds its command. Cold, after
# kube-apiserver (the caches share little: Istio pins other k8s.io versions), it cost 627 CPU-s
# (18 min wall on 2 cores under a load of 6-17; about 6 min on 2 idle ones) and 2.3 GB of RSS.
if [ "${WANSTEER_SKIP_ISTIOD:-0}" != 1 ] || [ "${1:-}" = --istiod ]; then
  istiod_bin="$CACHE/istio/$ISTIO_VERSION/bin"
  if [ ! -x "$istiod_bin/pilot-discovery" ]; then
    started=$(date +%s)
    build="$CACHE/istio/$ISTIO_VERSION/build"
    mkdir -p "$build" "$istiod_bin"
    say "building pilot-discovery ($ISTIO_VERSION) into $istiod_bin (a first build takes a while)"
    printf 'module wansteer.local/istio-build\n\ngo 1.26\n\nrequire istio.io/istio %s\n' "$ISTIO_VERSION" > "$build/go.mod"
    ( cd "$build" && go build -trimpath -ldflags='-s -w' -o "$istiod_bin/pilot-discovery.tmp" istio.io/istio/pilot/cmd/pilot-discovery ) \
      || die "building pilot-discovery $ISTIO_VERSION failed (see the go output above)"
    mv "$istiod_bin/pilot-discovery.tmp" "$istiod_bin/pilot-discovery"
    say "built pilot-discovery in $(( $(date +%s) - started ))s"
  fi
fi

say "kube-apiserver $K8S_VERSION, etcd, Istio CRDs $ISTIO_API_VERSION$([ -x "$CACHE/istio/$ISTIO_VERSION/bin/pilot-discovery" ] && echo ", istiod") ready under $CACHE"
