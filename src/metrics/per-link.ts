/**
 * What the wansteer_link_* families share: labelled by link, emptied and refilled from their
 * source at each scrape, one series per link that has a value (a link without one, such as a
 * link with no probe, has no series). A counter takes the source's running total as it is.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

/** One [link name, value] per link, read at scrape time; undefined: no series for that link. */
export type LinkValues = () => Iterable<readonly [link: string, value: number | undefined]>;

const LABELS = ['link'] as const;

function refill(metric: { reset(): void }, values: LinkValues, put: (link: string, value: number) => void): void {
  metric.reset();
  for (const [link, value] of values()) if (value !== undefined) put(link, value);
}

export function linkGauge(registry: Registry, name: string, help: string, values: LinkValues): void {
  new Gauge({
    name,
    help,
    labelNames: LABELS,
    registers: [registry],
    collect() {
      refill(this, values, (link, value) => this.set({ link }, value));
    },
  });
}

export function linkCounter(registry: Registry, name: string, help: string, values: LinkValues): void {
  new Counter({
    name,
    help,
    labelNames: LABELS,
    registers: [registry],
    collect() {
      refill(this, values, (link, value) => this.inc({ link }, value));
    },
  });
}
