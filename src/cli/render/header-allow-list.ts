/**
 * The request headers the Lua filter reports: every header name any VirtualService route matches
 * on (`headers` or `withoutHeaders`). Taken from all rules, not only those a policy names today,
 * because policies change through the API while the rendered filter stays as it is.
 */
import { MESH_GATEWAY } from '../../routes/hosts.js';
import type { VirtualService } from '../../routes/model.js';
import type { ClassField, Placement } from './lua-source.js';

export function headerAllowList(virtualServices: readonly VirtualService[]): string[] {
  const names = new Set<string>();
  for (const vs of virtualServices) {
    for (const route of vs.http) {
      for (const block of route.match) {
        for (const name of Object.keys(block.headers ?? {})) names.add(name.toLowerCase());
        for (const name of Object.keys(block.withoutHeaders ?? {})) names.add(name.toLowerCase());
      }
    }
  }
  return [...names].sort();
}

/**
 * Which of the request's path, method and scheme any rule that classifies at `placement` reads
 * (sidecars: the mesh's VirtualServices; gateways: those bound to a gateway). The filter reports
 * a connection again only when what the rules read changes (report.lua, class_of).
 */
export function classFields(virtualServices: readonly VirtualService[], placement: Placement): ClassField[] {
  const fields = new Set<ClassField>();
  for (const vs of virtualServices) {
    const atMesh = vs.gateways.length === 0 || vs.gateways.includes(MESH_GATEWAY);
    const atGateway = vs.gateways.some((g) => g !== MESH_GATEWAY);
    if (placement === 'gateway' ? !atGateway : !atMesh) continue;
    for (const route of vs.http) {
      for (const block of route.match) {
        if (block.uri !== undefined || block.queryParams !== undefined) fields.add('path');
        if (block.method !== undefined) fields.add('method');
        if (block.scheme !== undefined) fields.add('scheme');
      }
    }
  }
  return (['path', 'method', 'scheme'] as const).filter((f) => fields.has(f));
}
