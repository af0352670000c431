/**
 * The fake Kubernetes API server serving WanPolicies (wansteer.io/v1alpha1): the shared loopback
 * list/watch/write server in test/helpers/fake-kube-api.ts, with each written spec checked
 * against the CRD's schema in deploy/crds (422 Invalid), as an API server with the CRD installed
 * would, and the writes another client (kubectl, another node's agent) makes directly.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { fromRoot } from '../../../src/config/paths.js';
import {
  WANPOLICY_API_VERSION,
  WANPOLICY_GROUP,
  WANPOLICY_KIND,
  WANPOLICY_PLURAL,
  WANPOLICY_VERSION,
  type WanPolicyObject,
} from '../../../src/policies/wan-policy-object.js';
import { FakeKubeApi } from '../../helpers/fake-kube-api.js';
import { crdSpecSchema, structuralErrors } from './structural-schema.js';

export class FakeWanPolicyApi extends FakeKubeApi<WanPolicyObject> {
  constructor() {
    const specSchema = crdSpecSchema(parse(readFileSync(fromRoot('deploy/crds/wanpolicy.yaml'), 'utf8')));
    super({
      group: WANPOLICY_GROUP,
      plural: WANPOLICY_PLURAL,
      kind: WANPOLICY_KIND,
      versions: [WANPOLICY_VERSION],
      invalid: (object) => {
        const errors = structuralErrors(specSchema, object.spec, 'spec');
        return errors.length > 0 ? `${WANPOLICY_KIND}.${WANPOLICY_GROUP} "${object.metadata.name}" is invalid: ${errors.join(', ')}` : undefined;
      },
    });
  }

  /** `kubectl apply` of this spec: the object's other metadata (labels) stays. */
  put(namespace: string, name: string, spec: unknown): WanPolicyObject {
    const previous = this.get(namespace, name);
    return this.upsert({ apiVersion: WANPOLICY_API_VERSION, kind: WANPOLICY_KIND, metadata: { ...(previous?.metadata ?? { name, namespace }) }, spec });
  }

  /** `kubectl label`: a metadata-only change, with its watch event. */
  label(namespace: string, name: string, labels: Record<string, string>): WanPolicyObject {
    const current = this.get(namespace, name)!;
    return this.upsert({ ...current, metadata: { ...current.metadata, labels } });
  }
}
