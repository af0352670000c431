/** Tests that need the real control plane (scripts/setup-k8s.sh): skipped with the reason locally, failed under CI=true. */
import { KUBE_APISERVER } from './kube-control-plane.js';
import { requireTool, type RequiredTool } from './tools.js';

export const controlPlane: RequiredTool = requireTool('kube-apiserver and etcd (scripts/setup-k8s.sh)', KUBE_APISERVER);
