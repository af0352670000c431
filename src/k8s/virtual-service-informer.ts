/**
 * Keeps the RuleSet in step with the cluster's VirtualServices: one ListWatch per configured
 * namespace (or one for all), each object validated on the way in. An invalid object is logged
 * with its reason, counted, and left out of the rules; it never stops the others.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { WansteerError } from '../base/errors.js';
import { silentLogger, type Logger } from '../base/logger.js';
import type { RuleSet } from '../routes/rule-set.js';
import { ISTIO_NETWORKING_GROUP, parseVirtualService, VIRTUAL_SERVICE_VERSIONS } from '../routes/validate.js';
import { keyOf, ListWatch, type KubeObject, type ListWatchOptions, type ListWatchStatus, type ResourceClient } from './list-watch.js';
import { KubeResourceClient, type KubeResourceClientOptions } from './resource-client.js';

/** The RuleSet source name under which cluster objects are kept. */
export const CLUSTER_SOURCE = 'cluster';

export interface VirtualServiceInformerOptions extends ListWatchOptions {
  readonly ruleSet: RuleSet;
  /** Namespaces to watch; empty or absent means all namespaces. */
  readonly namespaces?: readonly string[];
  readonly logger?: Logger;
}

export interface InformerStatus {
  /** True when every namespace has completed its first list. */
  readonly ready: boolean;
  readonly watches: readonly (ListWatchStatus & { readonly resource: string })[];
  /** Objects skipped for failing validation, by error code, since start. */
  readonly invalidObjects: Readonly<Record<string, number>>;
}

export class VirtualServiceInformer {
  private readonly watches: { resource: string; listWatch: ListWatch<KubeObject> }[];
  private readonly invalid = new Map<string, number>();
  private readonly logger: Logger;

  /** `clientFor` builds the client for one namespace (undefined: all); tests and other kinds can swap it. */
  constructor(
    clientFor: (namespace: string | undefined) => ResourceClient<KubeObject>,
    private readonly options: VirtualServiceInformerOptions,
  ) {
    this.logger = options.logger ?? silentLogger;
    const scopes = options.namespaces && options.namespaces.length > 0 ? options.namespaces : [undefined];
    this.watches = scopes.map((namespace) => {
      const client = clientFor(namespace);
      return { resource: client.description, listWatch: new ListWatch(client, this.handler(), options) };
    });
  }

  static fromKubeConfig(
    kubeConfig: KubeConfig,
    options: VirtualServiceInformerOptions & { readonly client?: KubeResourceClientOptions },
  ): VirtualServiceInformer {
    const clientFor = (namespace: string | undefined): ResourceClient<KubeObject> =>
      new KubeResourceClient<KubeObject>(
        kubeConfig,
        { group: ISTIO_NETWORKING_GROUP, versions: VIRTUAL_SERVICE_VERSIONS, plural: 'virtualservices', namespace },
        options.client,
      );
    return new VirtualServiceInformer(clientFor, options);
  }

  start(): void {
    for (const w of this.watches) w.listWatch.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.watches.map((w) => w.listWatch.stop()));
  }

  /** Resolves once every namespace has been listed once. */
  async whenReady(): Promise<void> {
    await Promise.all(this.watches.map((w) => w.listWatch.whenSynced()));
  }

  /** Every object as last listed or watched, valid or not (for the node's cluster snapshot). */
  objects(): KubeObject[] {
    return this.watches.flatMap((w) => w.listWatch.objects());
  }

  /** Why a list or watch fails now (the first namespace's that does), if one does. */
  problem(): { readonly failure: string; readonly message: string } | undefined {
    for (const w of this.watches) {
      const problem = w.listWatch.problem();
      if (problem) return problem;
    }
    return undefined;
  }

  status(): InformerStatus {
    const watches = this.watches.map((w) => ({ resource: w.resource, ...w.listWatch.status() }));
    return { ready: watches.every((w) => w.synced), watches, invalidObjects: Object.fromEntries(this.invalid) };
  }

  private handler() {
    const { ruleSet } = this.options;
    const upsert = (obj: KubeObject): void => {
      const key = keyOf(obj);
      try {
        const vs = parseVirtualService(obj, { origin: 'cluster', defaultNamespace: obj.metadata?.namespace ?? 'default' });
        ruleSet.upsert(CLUSTER_SOURCE, vs);
      } catch (err) {
        if (!(err instanceof WansteerError)) throw err;
        // The object as it stands now is not a valid rule: drop any older valid version too.
        ruleSet.remove(CLUSTER_SOURCE, key);
        this.invalid.set(err.code, (this.invalid.get(err.code) ?? 0) + 1);
        this.logger.warn({ code: err.code, object: key }, err.message);
      }
    };
    return {
      onAdd: upsert,
      onUpdate: upsert,
      onDelete: (obj: KubeObject) => ruleSet.remove(CLUSTER_SOURCE, keyOf(obj)),
    };
  }
}
