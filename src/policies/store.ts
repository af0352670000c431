/**
 * PolicyStore: where WanPolicies live. FilePolicyStore (standalone: one YAML file, replaced
 * atomically) and ClusterPolicyStore (the WanPolicy custom resource, watched by an informer)
 * implement it; the REST API writes through it and the steering engine subscribes to it.
 *
 * Writes are compare-and-swap on `version` (the REST API's ETag / If-Match): a write whose
 * `ifMatch` is given and differs from the stored version fails with PolicyConflictError and
 * changes nothing. Writes validate the spec (schema and meaning, e.g. links that exist) before
 * anything is stored.
 */
import type { WanPolicy, WanPolicySpec } from './model.js';

export interface PolicyStore {
  /** Resolves once the first load or list is done; list() is complete from then on. */
  ready(): Promise<void>;
  list(): WanPolicy[];
  get(name: string): WanPolicy | undefined;
  /** Fails with PolicyExistsError when the name is taken. */
  create(name: string, spec: WanPolicySpec): Promise<WanPolicy>;
  /** Fails with PolicyNotFoundError, or PolicyConflictError when ifMatch is stale. */
  replace(name: string, spec: WanPolicySpec, ifMatch?: string): Promise<WanPolicy>;
  delete(name: string, ifMatch?: string): Promise<void>;
  /** Called with the full list after every change, whoever made it (this API, another node, an edit of the file). */
  subscribe(listener: (policies: readonly WanPolicy[]) => void): () => void;
  close(): Promise<void>;
}
