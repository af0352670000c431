/**
 * The WanPolicy custom resource as the Kubernetes API holds it, and how it maps to the store's
 * WanPolicy: name ← metadata.name, spec ← spec, version ← metadata.resourceVersion.
 */
import type { WanPolicy, WanPolicySpec } from './model.js';

export const WANPOLICY_GROUP = 'wansteer.io';
export const WANPOLICY_VERSION = 'v1alpha1';
export const WANPOLICY_PLURAL = 'wanpolicies';
export const WANPOLICY_KIND = 'WanPolicy';
export const WANPOLICY_API_VERSION = `${WANPOLICY_GROUP}/${WANPOLICY_VERSION}`;

export interface WanPolicyObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace: string;
    resourceVersion?: string;
    creationTimestamp?: string;
    uid?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [key: string]: unknown;
  };
  /** Unchecked until the store validates it: whoever wrote the object may not have been us. */
  spec?: unknown;
}

export function wanPolicyObject(namespace: string, name: string, spec: WanPolicySpec, base?: WanPolicyObject): WanPolicyObject {
  // Keep what others put on the object (labels, annotations): a replace must not strip them.
  const metadata = { ...(base?.metadata ?? {}), name, namespace };
  delete metadata.resourceVersion;
  return { apiVersion: WANPOLICY_API_VERSION, kind: WANPOLICY_KIND, metadata, spec };
}

export function toWanPolicy(object: WanPolicyObject, spec: WanPolicySpec): WanPolicy {
  return { name: object.metadata.name, spec, version: object.metadata.resourceVersion ?? '' };
}
