/**
 * A ResourceClient for a custom resource, built on @kubernetes/client-node: lists through the
 * generated CustomObjectsApi, watches through client-node's Watch (chunked JSON lines). It speaks
 * to one namespace or to all, and finds which of several API versions the server serves (Istio
 * clusters serve v1 since 1.22; older ones only v1beta1 or v1alpha3).
 */
import { CustomObjectsApi, KubeConfig, Watch } from '@kubernetes/client-node';
import { httpStatusOf, NoServedVersionError } from './errors.js';
import type { KubeObject, ListPage, ResourceClient, WatchEventType, WatchHandle } from './list-watch.js';

export interface CustomResourceRef {
  readonly group: string;
  /** Preferred first. */
  readonly versions: readonly string[];
  readonly plural: string;
  /** Undefined: all namespaces. */
  readonly namespace?: string | undefined;
}

export interface KubeResourceClientOptions {
  /** Server-side watch timeout; the server ends the watch and we resume. Default 5–10 minutes, randomised. */
  readonly watchTimeoutSeconds?: () => number;
}

export class KubeResourceClient<T extends KubeObject> implements ResourceClient<T> {
  readonly description: string;
  private readonly api: CustomObjectsApi;
  private readonly watcher: Watch;
  /** The version that answered the last list; the watch uses the same one. */
  private version: string | undefined;

  constructor(
    kubeConfig: KubeConfig,
    private readonly ref: CustomResourceRef,
    private readonly options: KubeResourceClientOptions = {},
  ) {
    this.api = kubeConfig.makeApiClient(CustomObjectsApi);
    this.watcher = new Watch(kubeConfig);
    this.description = `${ref.plural}.${ref.group}${ref.namespace ? ` in ${ref.namespace}` : ''}`;
  }

  get servedVersion(): string | undefined {
    return this.version;
  }

  async list(options: { limit: number; continueToken?: string | undefined }): Promise<ListPage<T>> {
    // A continued list must stay on the version that started it; a fresh one rediscovers.
    const candidates = options.continueToken && this.version ? [this.version] : this.ref.versions;
    for (const version of candidates) {
      try {
        const body = (await this.listVersion(version, options)) as {
          items?: T[];
          metadata?: { resourceVersion?: string; continue?: string };
        };
        this.version = version;
        return { items: body.items ?? [], resourceVersion: body.metadata?.resourceVersion ?? '', continueToken: body.metadata?.continue };
      } catch (err) {
        if (httpStatusOf(err) !== 404) throw err;
      }
    }
    this.version = undefined;
    throw new NoServedVersionError(this.description, this.ref.versions.join(', '));
  }

  async watch(
    resourceVersion: string,
    onEvent: (type: WatchEventType, object: unknown) => void,
    onDone: (err: unknown) => void,
  ): Promise<WatchHandle> {
    const version = this.version ?? this.ref.versions[0]!;
    const { group, plural, namespace } = this.ref;
    const path = namespace
      ? `/apis/${group}/${version}/namespaces/${namespace}/${plural}`
      : `/apis/${group}/${version}/${plural}`;
    const timeoutSeconds = this.options.watchTimeoutSeconds?.() ?? 300 + Math.floor(Math.random() * 300);
    const controller = await this.watcher.watch(
      path,
      { resourceVersion, allowWatchBookmarks: true, timeoutSeconds },
      (type: string, object: unknown) => onEvent(type as WatchEventType, object),
      (err: unknown) => onDone(err ?? undefined),
    );
    return { abort: () => controller.abort() };
  }

  private listVersion(version: string, options: { limit: number; continueToken?: string | undefined }): Promise<unknown> {
    const { group, plural, namespace } = this.ref;
    const common = { group, version, plural, limit: options.limit, _continue: options.continueToken };
    return namespace
      ? this.api.listNamespacedCustomObject({ ...common, namespace })
      : this.api.listClusterCustomObject(common);
  }
}
