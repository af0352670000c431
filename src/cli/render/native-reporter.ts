/**
 * The session reporter as an Envoy dynamic module (envoy-filters/native/wansteer_module.c): the
 * same reports as the Lua filter, sent in batches from Envoy's main thread, at a fraction of the
 * Lua filter's cost per request (docs/envoy-native-spike.md). Envoy loads `libwansteer.so` from
 * ENVOY_DYNAMIC_MODULES_SEARCH_PATH, for an HTTP filter (and, optionally, a network filter); the
 * HTTP filter's configuration is `key=value` lines.
 */
import type { FilterConfig, Placement } from './lua-source.js';
import { sessionReportFilter, type KubeObject, type Scope } from './envoy-filter-base.js';

export const DYNAMIC_MODULE_FILTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter';
/** The module's name: Envoy loads lib<name>.so. */
export const NATIVE_MODULE = 'wansteer';
export const NATIVE_FILTER_NAME = 'session_report';
export const DYNAMIC_MODULE_NETWORK_FILTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.dynamic_modules.v3.DynamicModuleNetworkFilter';
/** The module's network filter: keeps each connection's own remote address for the HTTP filter. */
export const NATIVE_NETWORK_FILTER_NAME = 'direct_remote';

/** The agent's batch intake (docs/api.md): the module sends `{"sessions":[...]}`. */
export const BATCH_INTAKE_PATH = '/v1/sessions:batch';

/** One `key=value` line per setting, in a fixed order; values never hold a newline. */
export function nativeConfigText(config: FilterConfig): string {
  const lines: [string, string | number | undefined][] = [
    ['placement', config.placement],
    ['cluster', config.cluster],
    ['cluster_v6', config.cluster_v6],
    ['authority', config.authority],
    ['path', config.path],
    ['timeout_ms', config.timeout_ms],
    ['headers', config.headers.join(',')],
    // Absent: every one of path, method and scheme counts; present and empty: none does.
    ['class_fields', config.class_fields?.join(',')],
    ['remember_connections', config.remember_connections],
    ['refresh_s', config.refresh_s],
  ];
  return lines
    .filter((line): line is [string, string | number] => line[1] !== undefined)
    .map(([key, value]) => {
      if (/[\r\n]/.test(String(value))) throw new Error(`native reporter config: ${key} holds a line break`);
      return `${key}=${value}\n`;
    })
    .join('');
}

export interface NativeOptions {
  /**
   * Also insert the module's network filter before the HTTP connection manager (the render's
   * default). An HTTP filter of a dynamic module sees only Envoy's derived remote address, which a
   * client's X-Forwarded-For replaces where use_remote_address is false (Istio's sidecars): such a
   * request then has no port and is not reported (never reported wrongly). The network filter
   * hands the HTTP filter the connection's own remote address (Lua's downstreamDirectRemoteAddress)
   * instead. It needs `envoy.filters.network.dynamic_modules` in the proxy: Envoy 1.39.1 has it,
   * and so does Istio's proxy from release-1.31 (istio/proxy bazel/extension_config/
   * extensions_build_config.bzl); a listener with an unknown filter is rejected whole.
   */
  readonly directRemote?: boolean;
}

/** The EnvoyFilter that puts the module's filter before the router (as sessionReporter does the Lua one). */
export function nativeSessionReporter(placement: Placement, scope: Scope, config: FilterConfig, options: NativeOptions = {}): KubeObject {
  return sessionReportFilter(placement, scope, {
    name: 'wansteer.session_report',
    typed_config: {
      '@type': DYNAMIC_MODULE_FILTER_TYPE,
      dynamic_module_config: { name: NATIVE_MODULE },
      filter_name: NATIVE_FILTER_NAME,
      filter_config: { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: nativeConfigText(config) },
    },
  }, options.directRemote ? DIRECT_REMOTE_FILTER : undefined);
}

const DIRECT_REMOTE_FILTER = {
  name: 'wansteer.direct_remote',
  typed_config: {
    '@type': DYNAMIC_MODULE_NETWORK_FILTER_TYPE,
    dynamic_module_config: { name: NATIVE_MODULE },
    filter_name: NATIVE_NETWORK_FILTER_NAME,
  },
};
