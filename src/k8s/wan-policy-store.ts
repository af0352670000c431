/**
 * Fills the ClusterPolicyStore's ports with client-node: the informer is the shared ListWatch
 * over a KubeResourceClient for wanpolicies.wansteer.io in one namespace, and the writer calls
 * CustomObjectsApi (create; replace with metadata.resourceVersion as the precondition; delete
 * with preconditions) and turns API statuses into the store's failure kinds.
 *
 *   const store = createClusterPolicyStore(kubeConfig, { namespace: 'wansteer-system', links: ['fibre', 'lte'] });
 *   await store.ready();
 */
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import {
  ClusterPolicyStore,
  ClusterWriteError,
  type ClusterPolicyStoreOptions,
  type ClusterWriteFailure,
  type WanPolicyWriter,
} from '../policies/cluster-store.js';
import { WANPOLICY_GROUP, WANPOLICY_PLURAL, WANPOLICY_VERSION, type WanPolicyObject } from '../policies/wan-policy-object.js';
import { apiMessageOf, httpStatusOf } from './errors.js';
import { ListWatch, type ListWatchOptions } from './list-watch.js';
import { KubeRefusalRecorder } from './refusal-events.js';
import { KubeResourceClient, type KubeResourceClientOptions } from './resource-client.js';

export interface ClusterPolicyStoreConfig extends ListWatchOptions {
  readonly namespace: string;
  readonly links: Iterable<string>;
  readonly internetLinks?: Iterable<string>;
  readonly client?: KubeResourceClientOptions;
  /** Set: each WanPolicy this node leaves out gets a Kubernetes Event naming the node (refusal-events.ts). */
  readonly nodeName?: string;
  /** Least time between two derivations of the accepted policies in a stream of events (ClusterPolicyStore). */
  readonly minGapMs?: number;
}

export function createClusterPolicyStore(kubeConfig: KubeConfig, config: ClusterPolicyStoreConfig): ClusterPolicyStore {
  const { namespace, links, internetLinks, logger } = config;
  const resource = new KubeResourceClient<WanPolicyObject>(
    kubeConfig,
    { group: WANPOLICY_GROUP, versions: [WANPOLICY_VERSION], plural: WANPOLICY_PLURAL, namespace },
    config.client,
  );
  const options: ClusterPolicyStoreOptions = {
    namespace,
    links,
    ...(internetLinks ? { internetLinks } : {}),
    logger,
    writer: new KubeWanPolicyWriter(kubeConfig),
    informer: (events) => new ListWatch<WanPolicyObject>(resource, events, config),
    ...(config.nodeName ? { recorder: new KubeRefusalRecorder(kubeConfig, { nodeName: config.nodeName, ...(logger ? { logger } : {}) }) } : {}),
    ...(config.minGapMs !== undefined ? { minGapMs: config.minGapMs } : {}),
  };
  return new ClusterPolicyStore(options);
}

export class KubeWanPolicyWriter implements WanPolicyWriter {
  private readonly api: CustomObjectsApi;

  constructor(kubeConfig: KubeConfig) {
    this.api = kubeConfig.makeApiClient(CustomObjectsApi);
  }

  async create(object: WanPolicyObject): Promise<WanPolicyObject> {
    const { namespace } = object.metadata;
    return (await this.call('create', () =>
      this.api.createNamespacedCustomObject({ group: WANPOLICY_GROUP, version: WANPOLICY_VERSION, plural: WANPOLICY_PLURAL, namespace, body: object }),
    )) as WanPolicyObject;
  }

  async replace(object: WanPolicyObject): Promise<WanPolicyObject> {
    const { namespace, name } = object.metadata;
    return (await this.call('replace', () =>
      this.api.replaceNamespacedCustomObject({ group: WANPOLICY_GROUP, version: WANPOLICY_VERSION, plural: WANPOLICY_PLURAL, namespace, name, body: object }),
    )) as WanPolicyObject;
  }

  async delete(namespace: string, name: string, resourceVersion: string | undefined): Promise<void> {
    const body = resourceVersion === undefined ? undefined : { preconditions: { resourceVersion } };
    await this.call('delete', () =>
      this.api.deleteNamespacedCustomObject({ group: WANPOLICY_GROUP, version: WANPOLICY_VERSION, plural: WANPOLICY_PLURAL, namespace, name, body }),
    );
  }

  private async call(verb: 'create' | 'replace' | 'delete', request: () => Promise<unknown>): Promise<unknown> {
    try {
      return await request();
    } catch (err) {
      throw toWriteError(verb, err);
    }
  }
}

/** An API failure as the store understands it. 409 means AlreadyExists on create, a stale resourceVersion otherwise. */
export function toWriteError(verb: 'create' | 'replace' | 'delete', err: unknown): ClusterWriteError {
  const status = httpStatusOf(err);
  const detail = apiMessageOf(err);
  const failure = ((): ClusterWriteFailure => {
    if (status === 409) return verb === 'create' ? 'exists' : 'conflict';
    // On create, 404 means the namespace or the CRD is missing: the store is not usable.
    if (status === 404) return verb === 'create' ? 'unavailable' : 'not-found';
    if (status === 400 || status === 422) return 'invalid';
    if (status === 401 || status === 403) return 'forbidden';
    return 'unavailable';
  })();
  return new ClusterWriteError(failure, status === undefined ? `${verb} failed: ${detail}` : `${verb} answered ${status}: ${detail}`);
}
