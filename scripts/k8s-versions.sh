# The control plane the Kubernetes tests run against, pinned; read by scripts/setup-k8s.sh and by
# test/helpers/kube-control-plane.ts (plain NAME=value lines only).
# kube-apiserver (and etcd, at the version its go.mod names) from the Go module proxy:
K8S_VERSION=v1.37.2
# Istio's CRDs (VirtualService, EnvoyFilter) from istio.io/api:
ISTIO_API_VERSION=v1.32.0
# istiod (pilot-discovery) from istio.io/istio, which the module proxy serves only as commits:
# this one is of the 1.31 line (it requires istio.io/api v1.31.0-rc). WANSTEER_SKIP_ISTIOD=1 skips
# its build.
ISTIO_VERSION=v0.0.0-20260827124520-eed52ebb66ad
