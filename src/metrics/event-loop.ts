/**
 * wansteer_event_loop_delay_max_seconds: the longest the agent's event loop was held up since the
 * previous scrape (perf_hooks' monitorEventLoopDelay, 10 ms resolution). Everything the agent
 * does — session reports, probes, /healthz, list/watch events — waits behind a long synchronous
 * step, so this is where a burst of cluster events that costs too much shows (bench/cluster.ts).
 * Reset at each scrape: with several scrapers each sees the longest since anyone last looked.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Gauge, type Registry } from 'prom-client';

export function registerEventLoop(registry: Registry): void {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  new Gauge({
    name: 'wansteer_event_loop_delay_max_seconds',
    help: 'The longest event-loop delay since the previous scrape, in seconds.',
    registers: [registry],
    collect() {
      // Before the first full interval the histogram is empty and max is 0.
      this.set(histogram.count > 0 ? histogram.max / 1e9 : 0);
      histogram.reset();
    },
  });
}
