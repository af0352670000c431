/**
 * wansteer_connection_resets_total{link}: connections reset because the internet link they were
 * bound to died (they cannot move: their address is that link's), so their applications
 * reconnect over another link.
 */
import { Counter, type Registry } from 'prom-client';

export interface ConnectionResetSource {
  readonly connectionResets: ReadonlyMap<string, number>;
}

export function registerConnectionResets(registry: Registry, engine: ConnectionResetSource): void {
  new Counter({
    name: 'wansteer_connection_resets_total',
    help: 'Connections reset because the internet link they were bound to went down (applications reconnect over another link).',
    labelNames: ['link'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [link, n] of engine.connectionResets) this.inc({ link }, n);
    },
  });
}
