# The control plane the Kubernetes tests run against, pinned; read by scripts/setup-k8s.sh and by
# test/helpers/kube-control-plane.ts (plain NAME=value lines only).
# kube-apiserver (and etcd, at the version its go.mod names) from the Go module proxy:
K8S_VERSION=v1.37.2
# Istio's CRDs (VirtualService, EnvoyFilter) from istio.io/api:
ISTIO_API_VERSION=v1.32.0
