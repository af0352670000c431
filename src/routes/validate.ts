/**
 * Turns an untyped object (a YAML document, an API watch event) into a VirtualService, or throws
 * a catalogue error that says which object, which field and why. Nothing here logs or counts:
 * the sources decide what to do with a bad object (skip it, log it, count it).
 */
import { WansteerError } from '../base/errors.js';
import { NotAVirtualServiceError, UnsupportedApiVersionError } from './errors.js';
import type { VirtualService } from './model.js';
import { parseHttpRoutes } from './validate-http.js';
import { fields, onlyKnownFields, optionalList, optionalString, requiredString, stringList, isFields } from './validate-fields.js';

export const ISTIO_NETWORKING_GROUP = 'networking.istio.io';
/** Served first; the older versions carry the same VirtualService schema. */
export const VIRTUAL_SERVICE_VERSIONS = ['v1', 'v1beta1', 'v1alpha3'] as const;
const API_VERSIONS = VIRTUAL_SERVICE_VERSIONS.map((v) => `${ISTIO_NETWORKING_GROUP}/${v}`);
const SPEC_FIELDS = ['hosts', 'gateways', 'http', 'tls', 'tcp', 'exportTo'];

export interface ValidateContext {
  /** Namespace for objects that carry none (files); the API always sets one. */
  readonly defaultNamespace: string;
  /** Where the object came from, for messages: `rules/reviews.yaml#2` or `cluster`. */
  readonly origin: string;
}

/** Whether a document declares some other kind (a DestinationRule next to a VirtualService): ignored, not invalid. */
export function isOtherKind(doc: unknown): boolean {
  return isFields(doc) && typeof doc.kind === 'string' && doc.kind !== 'VirtualService';
}

export function parseVirtualService(doc: unknown, context: ValidateContext): VirtualService {
  const where = describeObject(doc, context);
  try {
    return parse(doc, context);
  } catch (err) {
    if (err instanceof WansteerError) throw err.located(where);
    throw err;
  }
}

function parse(doc: unknown, context: ValidateContext): VirtualService {
  const obj = fields(doc, 'object');
  if (obj.kind !== 'VirtualService') throw new NotAVirtualServiceError(`kind must be VirtualService, got ${JSON.stringify(obj.kind)}`);
  const apiVersion = requiredString(obj, 'apiVersion', 'object');
  if (!API_VERSIONS.includes(apiVersion)) throw new UnsupportedApiVersionError(JSON.stringify(apiVersion));
  onlyKnownFields(obj, 'object', ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
  const metadata = fields(obj.metadata ?? {}, 'metadata');
  const spec = fields(obj.spec ?? {}, 'spec');
  onlyKnownFields(spec, 'spec', SPEC_FIELDS);
  // tls and tcp routes do not classify HTTP requests; only their shape is checked.
  optionalList(spec, 'tls', 'spec');
  optionalList(spec, 'tcp', 'spec');
  stringList(spec, 'exportTo', 'spec');
  const vs: { -readonly [K in keyof VirtualService]: VirtualService[K] } = {
    namespace: optionalString(metadata, 'namespace', 'metadata') || context.defaultNamespace,
    name: requiredString(metadata, 'name', 'metadata'),
    apiVersion,
    hosts: stringList(spec, 'hosts', 'spec'),
    gateways: stringList(spec, 'gateways', 'spec'),
    http: parseHttpRoutes(spec, 'spec'),
  };
  const created = optionalString(metadata, 'creationTimestamp', 'metadata');
  if (created !== undefined) vs.creationTimestamp = created;
  const rv = optionalString(metadata, 'resourceVersion', 'metadata');
  if (rv !== undefined) vs.resourceVersion = rv;
  return vs;
}

/** `rules/reviews.yaml#2 VirtualService default/reviews`, as far as the object lets us tell. */
function describeObject(doc: unknown, context: ValidateContext): string {
  const meta = isFields(doc) && isFields(doc.metadata) ? doc.metadata : {};
  const name = typeof meta.name === 'string' ? meta.name : '?';
  const ns = typeof meta.namespace === 'string' && meta.namespace ? meta.namespace : context.defaultNamespace;
  return `${context.origin} (${ns}/${name})`;
}
