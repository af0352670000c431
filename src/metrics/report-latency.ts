/**
 * wansteer_report_to_datapath_seconds: from a session report's arrival to its flow entry
 * written. The engine records into its own LatencyRecorder (a batch is one call, with a count:
 * no per-report work on the hot path); this histogram exports those buckets at scrape time.
 * prom-client's Histogram takes one observation at a time, so get() is overridden to build
 * the exposition from the recorder; the name, help, type and registration stay prom-client's.
 */
import { Histogram, type MetricType, type Registry } from 'prom-client';
import type { LatencyRecorder } from '../steering/stats.js';

const NAME = 'wansteer_report_to_datapath_seconds';
// prom-client declares MetricType as an enum it does not export at run time: the string it stands for.
const HISTOGRAM = 'histogram' as unknown as MetricType;
const HELP = 'Seconds from a session report\'s arrival to its flow entry being written to the datapath.';

class RecordedHistogram extends Histogram {
  constructor(
    registry: Registry,
    private readonly recorder: LatencyRecorder,
  ) {
    super({
      name: NAME,
      help: HELP,
      buckets: [...recorder.bounds],
      registers: [registry],
    });
  }

  override async get(): ReturnType<Histogram['get']> {
    return this.snapshot();
  }

  /** What Registry#metrics reads when present (prom-client's own histogram has it too). */
  async getForPromString(): ReturnType<Histogram['get']> {
    return this.snapshot();
  }

  private snapshot(): Awaited<ReturnType<Histogram['get']>> {
    const r = this.recorder;
    const values: Awaited<ReturnType<Histogram['get']>>['values'] = [];
    let acc = 0;
    r.bounds.forEach((le, i) => {
      acc += r.counts[i]!;
      values.push({ labels: { le }, value: acc, metricName: `${NAME}_bucket` });
    });
    values.push({ labels: { le: '+Inf' }, value: r.count, metricName: `${NAME}_bucket` });
    values.push({ labels: {}, value: r.sum, metricName: `${NAME}_sum` });
    values.push({ labels: {}, value: r.count, metricName: `${NAME}_count` });
    return { name: NAME, help: HELP, type: HISTOGRAM, values, aggregator: 'sum', collect: () => {} };
  }
}

export function registerReportLatency(registry: Registry, recorder: LatencyRecorder): void {
  new RecordedHistogram(registry, recorder);
}
