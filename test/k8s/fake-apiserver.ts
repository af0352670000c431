/**
 * The fake Kubernetes API server serving VirtualServices (networking.istio.io): the shared
 * loopback list/watch server in test/helpers/fake-kube-api.ts, at the versions Istio's CRD serves
 * (v1, v1beta1, v1alpha3) unless a test narrows them to play an older Istio.
 */
import { FakeKubeApi, type StoredObject } from '../helpers/fake-kube-api.js';

export type { RecordedRequest, StoredObject } from '../helpers/fake-kube-api.js';

export class FakeApiServer extends FakeKubeApi {
  constructor(options: { servedVersions?: string[] } = {}) {
    super({ group: 'networking.istio.io', plural: 'virtualservices', kind: 'VirtualService', versions: options.servedVersions ?? ['v1', 'v1beta1', 'v1alpha3'] });
  }
}

export function virtualService(namespace: string, name: string, header = 'jason', apiVersion = 'networking.istio.io/v1'): StoredObject {
  return {
    apiVersion,
    kind: 'VirtualService',
    metadata: { name, namespace },
    spec: {
      hosts: [name],
      http: [
        { name: 'special', match: [{ headers: { 'end-user': { exact: header } } }], route: [{ destination: { host: name, subset: 'v2' } }] },
        { name: 'default', route: [{ destination: { host: name, subset: 'v1' } }] },
      ],
    },
  };
}
