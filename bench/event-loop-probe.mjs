// Loaded into the agent by bench/cluster.ts (node --import): answers the bench's 'probe' message
// over IPC with the longest event-loop delay since the previous one (perf_hooks, 5 ms
// resolution) and the process's memory, then starts a new window. Unlike the agent's own
// wansteer_event_loop_delay_max_seconds it needs no /metrics scrape, whose serialisation would
// fall into the window it measures.
import { monitorEventLoopDelay } from 'node:perf_hooks';

// The IPC channel must not keep the agent alive once it has shut down.
process.channel?.unref();

const histogram = monitorEventLoopDelay({ resolution: 5 });
histogram.enable();
process.on('message', (message) => {
  if (message !== 'probe') return;
  const { rss, heapUsed } = process.memoryUsage();
  process.send?.({ loopMaxMs: histogram.count > 0 ? histogram.max / 1e6 : 0, rssMB: rss / 2 ** 20, heapMB: heapUsed / 2 ** 20 });
  histogram.reset();
});
