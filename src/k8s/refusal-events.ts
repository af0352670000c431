/**
 * Kubernetes Events for the WanPolicies a node leaves out, so `kubectl describe wanpolicy x`
 * and `kubectl get events` say what the agent's log says: "left out on edge-1:
 * WS_POLICY_DUPLICATE_MATCH: …". An Event, not a status condition: every node judges the object
 * on its own (its links differ), and N nodes writing one status would fight over it; an Event
 * per node and object version is theirs alone.
 *
 * The Event's name is derived from the object, its version, the node and the reason, so an agent
 * restarted on the same node finds its Event there (409) instead of adding another. Recording
 * never blocks or fails the store: a failure is logged, once per reason.
 */
import { createHash } from 'node:crypto';
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { RefusalRecorder, RefusedPolicy } from '../policies/cluster-store.js';
import type { WanPolicyObject } from '../policies/wan-policy-object.js';
import { silentLogger, type Logger } from '../base/logger.js';
import { apiMessageOf, httpStatusOf } from './errors.js';

export const EVENT_REASON = 'Refused';
export const REPORTING_CONTROLLER = 'wansteer.io/agent';

export class KubeRefusalRecorder implements RefusalRecorder {
  private readonly api: CustomObjectsApi;
  private readonly logger: Logger;
  private readonly failuresLogged = new Set<number | string>();

  constructor(kubeConfig: KubeConfig, private readonly options: { readonly nodeName: string; readonly logger?: Logger; readonly now?: () => Date }) {
    this.api = kubeConfig.makeApiClient(CustomObjectsApi);
    this.logger = options.logger ?? silentLogger;
  }

  refused(object: WanPolicyObject, refusal: RefusedPolicy): void {
    const body = refusalEvent(object, refusal, this.options.nodeName, this.options.now?.() ?? new Date());
    const namespace = object.metadata.namespace;
    this.api
      .createNamespacedCustomObject({ group: 'events.k8s.io', version: 'v1', namespace, plural: 'events', body })
      .catch((err: unknown) => {
        const status = httpStatusOf(err);
        if (status === 409) return; // recorded before (this node, this version, this reason)
        const key = status ?? 'no answer';
        if (this.failuresLogged.has(key)) return;
        this.failuresLogged.add(key);
        this.logger.warn({ policy: object.metadata.name, status }, `could not record an Event for the refused WanPolicy: ${apiMessageOf(err)}`);
      });
  }
}

/** The events.k8s.io/v1 Event saying that `node` leaves `object` out, and why. */
export function refusalEvent(object: WanPolicyObject, refusal: RefusedPolicy, node: string, at: Date): Record<string, unknown> {
  const { name, namespace, uid, resourceVersion } = object.metadata;
  const id = createHash('sha256').update(`${node}\0${resourceVersion ?? ''}\0${refusal.code}`).digest('hex').slice(0, 12);
  return {
    apiVersion: 'events.k8s.io/v1',
    kind: 'Event',
    metadata: { name: `${name}.${id}`, namespace, labels: { 'app.kubernetes.io/name': 'wansteer-agent' } },
    // MicroTime: RFC 3339 with exactly six fractional digits.
    eventTime: at.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z'),
    reportingController: REPORTING_CONTROLLER,
    reportingInstance: `wansteer-agent-${node}`.slice(0, 128),
    action: 'Validate',
    reason: EVENT_REASON,
    type: 'Warning',
    regarding: { apiVersion: object.apiVersion, kind: object.kind, name, namespace, ...(uid ? { uid } : {}), ...(resourceVersion ? { resourceVersion } : {}) },
    note: `left out on node ${node}: ${refusal.code}: ${refusal.message}`.slice(0, 1024),
  };
}
