/**
 * Reading deploy/: every YAML document, a small kustomize (resources, strategic-merge patches,
 * namespace) that refuses what it does not implement, and schema checks for each kind the
 * manifests use. The resolver follows kustomize's rules where they bite: a file resource must be
 * inside the kustomization's directory (a directory resource needs its own kustomization.yaml),
 * and two objects with the same kind, namespace and name are an error.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import * as client from '@kubernetes/client-node';
import { EnvoyFilter } from '@kubernetes-models/istio/networking.istio.io/v1alpha3';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1';
import { DaemonSet } from 'kubernetes-models/apps/v1';
import { ClusterRole, ClusterRoleBinding, Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { ConfigMap, Namespace, Service, ServiceAccount } from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';
import { fromRoot } from '../../../src/config/paths.js';

export type Json = Record<string, unknown>;
export interface KubeObject extends Json {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
}

export const DEPLOY_DIR = fromRoot('deploy');

/** Every .yaml/.yml file under deploy/, sorted. */
export function deployYamlFiles(dir = DEPLOY_DIR): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...deployYamlFiles(path));
    else if (/\.ya?ml$/.test(name)) out.push(path);
  }
  return out;
}

/** The documents of a (multi-document) YAML file; throws on any syntax error or warning. */
export function loadDocuments(path: string): Json[] {
  const docs = parseAllDocuments(readFileSync(path, 'utf8'), { prettyErrors: true });
  const list = Array.isArray(docs) ? docs : [docs];
  const problems = list.flatMap((d) => [...d.errors, ...d.warnings].map((e) => e.message));
  if (problems.length > 0) throw new Error(`${relative(DEPLOY_DIR, path)}: ${problems.join('; ')}`);
  return list.map((d) => d.toJS() as Json).filter((d) => d !== null && d !== undefined);
}

// ---- kustomize ------------------------------------------------------------------------------

const KUSTOMIZATION_FIELDS = new Set(['apiVersion', 'kind', 'resources', 'patches', 'namespace']);

export function idOf(o: KubeObject): string {
  return `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}

/** `kustomize build DIR`, for the features the manifests use. */
export function kustomizeBuild(dir: string): KubeObject[] {
  const file = join(dir, 'kustomization.yaml');
  if (!existsSync(file)) throw new Error(`${relative(DEPLOY_DIR, dir)}: no kustomization.yaml (kustomize builds only directories that have one)`);
  const k = loadDocuments(file)[0] as Json;
  if (k.kind !== 'Kustomization' || k.apiVersion !== 'kustomize.config.k8s.io/v1beta1') throw new Error(`${file}: not a Kustomization`);
  const unknown = Object.keys(k).filter((f) => !KUSTOMIZATION_FIELDS.has(f));
  if (unknown.length > 0) throw new Error(`${file}: the test's kustomize does not implement ${unknown.join(', ')}`);
  const objects: KubeObject[] = [];
  for (const entry of (k.resources ?? []) as string[]) {
    const path = resolve(dir, entry);
    if (existsSync(path) && statSync(path).isDirectory()) objects.push(...kustomizeBuild(path));
    else objects.push(...(loadDocuments(insideRoot(dir, path)) as KubeObject[]));
  }
  for (const patch of (k.patches ?? []) as { path?: string }[]) {
    if (!patch.path || Object.keys(patch).length !== 1) throw new Error(`${file}: only patches with a path alone are implemented`);
    for (const doc of loadDocuments(insideRoot(dir, resolve(dir, patch.path))) as KubeObject[]) {
      const target = objects.find((o) => o.kind === doc.kind && o.apiVersion === doc.apiVersion && o.metadata.name === doc.metadata.name && (o.metadata.namespace ?? '') === (doc.metadata.namespace ?? ''));
      if (!target) throw new Error(`${file}: patch ${patch.path} matches no ${idOf(doc)}`);
      objects[objects.indexOf(target)] = strategicMerge(target, doc) as KubeObject;
    }
  }
  if (typeof k.namespace === 'string') for (const o of objects) if (isNamespaced(o)) o.metadata.namespace = k.namespace;
  const seen = new Set<string>();
  for (const o of objects) {
    if (seen.has(idOf(o))) throw new Error(`${file}: ${idOf(o)} appears twice (kustomize refuses duplicate ids)`);
    seen.add(idOf(o));
  }
  return objects;
}

function insideRoot(root: string, path: string): string {
  const rel = relative(root, path);
  if (rel.startsWith('..')) throw new Error(`security; file '${path}' is not in or below '${root}' (kustomize's load restrictor)`);
  return path;
}

const CLUSTER_SCOPED = new Set(['Namespace', 'CustomResourceDefinition', 'ClusterRole', 'ClusterRoleBinding']);
export const isNamespaced = (o: KubeObject): boolean => !CLUSTER_SCOPED.has(o.kind);

/** The patchMergeKey of the lists the manifests patch; any other list is replaced, as in Kubernetes' strategic merge. */
const MERGE_KEYS: Record<string, string> = { containers: 'name', initContainers: 'name', env: 'name', volumes: 'name', volumeMounts: 'mountPath' };

export function strategicMerge(base: unknown, patch: unknown, key = ''): unknown {
  if (isObject(base) && isObject(patch)) {
    const out: Json = structuredClone(base);
    for (const [k, v] of Object.entries(patch)) {
      if (v === null) delete out[k];
      else out[k] = k in out ? strategicMerge(out[k], v, k) : structuredClone(v);
    }
    return out;
  }
  const mergeKey = MERGE_KEYS[key];
  if (Array.isArray(base) && Array.isArray(patch) && mergeKey) {
    // Items new to the list come first, in the patch's order: where kustomize puts them.
    const merged = structuredClone(base) as Json[];
    const added: Json[] = [];
    for (const item of patch as Json[]) {
      const i = merged.findIndex((b) => b[mergeKey] === item[mergeKey]);
      if (i === -1) added.push(structuredClone(item));
      else merged[i] = strategicMerge(merged[i], item) as Json;
    }
    return [...added, ...merged];
  }
  return structuredClone(patch);
}

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export interface EnvContainer extends Json {
  env?: { name: string; value?: string; valueFrom?: Json }[];
}

/** A container's environment as the kubelet makes it: $(VAR) expanded from earlier entries, fieldRefs from `downward`. */
export function environment(c: EnvContainer, downward: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    if (e.valueFrom) env[e.name] = downward[(e.valueFrom.fieldRef as Json).fieldPath as string] ?? '';
    else env[e.name] = (e.value ?? '').replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string) => env[name] ?? m);
  }
  return env;
}

// ---- schemas --------------------------------------------------------------------------------

interface Model {
  /** kubernetes-models: types, enums and required fields, as the API server's OpenAPI has them. */
  validate(object: Json): void;
  /** @kubernetes/client-node's model of the kind, for unknown fields (kubectl --validate=strict). */
  strict?: string;
}

const model = (Ctor: new (data: never) => { validate(): void }, strict?: string): Model => ({
  validate: (o) => new Ctor(o as never).validate(),
  strict,
});

const MODELS: Record<string, Model> = {
  'v1/Namespace': model(Namespace, 'V1Namespace'),
  'v1/ServiceAccount': model(ServiceAccount, 'V1ServiceAccount'),
  'v1/ConfigMap': model(ConfigMap, 'V1ConfigMap'),
  'v1/Service': model(Service, 'V1Service'),
  'apps/v1/DaemonSet': model(DaemonSet, 'V1DaemonSet'),
  'rbac.authorization.k8s.io/v1/ClusterRole': model(ClusterRole, 'V1ClusterRole'),
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': model(ClusterRoleBinding, 'V1ClusterRoleBinding'),
  'rbac.authorization.k8s.io/v1/Role': model(Role, 'V1Role'),
  'rbac.authorization.k8s.io/v1/RoleBinding': model(RoleBinding, 'V1RoleBinding'),
  'apiextensions.k8s.io/v1/CustomResourceDefinition': model(CustomResourceDefinition, 'V1CustomResourceDefinition'),
  'networking.istio.io/v1alpha3/EnvoyFilter': model(EnvoyFilter),
  'monitoring.coreos.com/v1/ServiceMonitor': { validate: validateServiceMonitor },
};

export const hasSchema = (o: KubeObject): boolean => `${o.apiVersion}/${o.kind}` in MODELS;

/** The problems with one object against its kind's schema; empty when it is valid. */
export function schemaProblems(o: KubeObject, opts: { partial?: boolean } = {}): string[] {
  const m = MODELS[`${o.apiVersion}/${o.kind}`];
  if (!m) return [`no schema known for ${o.apiVersion} ${o.kind}`];
  const problems: string[] = [];
  if (!opts.partial) {
    try {
      m.validate(o);
    } catch (err) {
      problems.push(err instanceof Error ? err.message : String(err));
    }
  }
  if (m.strict) problems.push(...unknownFields(o, m.strict, ''));
  return problems;
}

type Attribute = { name: string; baseName: string; type: string };
type ModelClass = { getAttributeTypeMap(): Attribute[] };

/** Fields the kind does not have, walked through client-node's generated models. */
export function unknownFields(value: unknown, type: string, path: string): string[] {
  const array = /^Array<(.+)>$/.exec(type);
  if (array) return Array.isArray(value) ? value.flatMap((v, i) => unknownFields(v, array[1]!, `${path}[${i}]`)) : [];
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) return isObject(value) ? Object.entries(value).flatMap(([k, v]) => unknownFields(v, map[1]!, `${path}.${k}`)) : [];
  const cls = (client as unknown as Record<string, ModelClass | undefined>)[type];
  if (!cls || typeof cls.getAttributeTypeMap !== 'function' || !isObject(value)) return [];
  const attrs = new Map(cls.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  return Object.entries(value).flatMap(([k, v]) =>
    attrs.has(k) ? unknownFields(v, attrs.get(k)!, `${path}.${k}`) : [`${path}.${k}: unknown field (not in ${type})`],
  );
}

/** Prometheus Operator's ServiceMonitor, the fields used here: no schema package for it. */
function validateServiceMonitor(o: Json): void {
  const spec = o.spec as Json | undefined;
  const problems: string[] = [];
  if (!isObject(spec)) throw new Error('ServiceMonitor: spec is required');
  const allowed = new Set(['selector', 'namespaceSelector', 'endpoints', 'jobLabel']);
  for (const k of Object.keys(spec)) if (!allowed.has(k)) problems.push(`spec.${k}: not checked by this test`);
  if (!isObject(spec.selector)) problems.push('spec.selector is required');
  const endpoints = spec.endpoints;
  if (!Array.isArray(endpoints) || endpoints.length === 0) problems.push('spec.endpoints must list at least one endpoint');
  for (const [i, e] of ((endpoints ?? []) as Json[]).entries()) {
    if (typeof e.port !== 'string') problems.push(`spec.endpoints[${i}].port must name a Service port`);
    if (e.path !== undefined && (typeof e.path !== 'string' || !e.path.startsWith('/'))) problems.push(`spec.endpoints[${i}].path must be an absolute path`);
    for (const d of ['interval', 'scrapeTimeout']) if (e[d] !== undefined && !/^([0-9]+(ms|s|m|h))+$/.test(String(e[d]))) problems.push(`spec.endpoints[${i}].${d} is not a duration`);
  }
  if (problems.length > 0) throw new Error(problems.join('; '));
}

export function relativeToDeploy(path: string): string {
  return relative(dirname(DEPLOY_DIR), path);
}
