#!/usr/bin/env bash
# The main job: set up (scripts/setup.sh), then run the dual-WAN demonstration in network
# namespaces. Needs root. Cleans up after itself, also on Ctrl-C; safe to run twice in a row.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "wansteer demo: run as root (or: sudo scripts/demo.sh): it creates network namespaces and loads BPF" >&2; exit 2; }
WANSTEER_SKIP_K8S=1 scripts/setup.sh   # the demo needs no Kubernetes control plane
exec bin/wansteer.js demo "$@"
