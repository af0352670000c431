/**
 * The request headers the Lua filter reports: every header name any VirtualService route matches
 * on (`headers` or `withoutHeaders`). Taken from all rules, not only those a policy names today,
 * because policies change through the API while the rendered filter stays as it is.
 */
import type { VirtualService } from '../../routes/model.js';

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
