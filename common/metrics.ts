// A small Prometheus text-format registry: counters, gauges (set or computed at scrape time)
// and fixed-bucket histograms. Enough for /metrics on every role without a dependency.
type Labels = Record<string, string>;

function labelKey(labels: Labels | undefined): string {
  if (!labels) return '';
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return '';
  return '{' + keys.map((k) => `${k}="${String(labels[k]).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',') + '}';
}

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  render(): string[];
}

export class Counter {
  private readonly values = new Map<string, number>();
  constructor(readonly name: string) {}
  inc(labels?: Labels, by = 1): void {
    const k = labelKey(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  get(labels?: Labels): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }
  render(): string[] {
    if (this.values.size === 0) return [`${this.name} 0`];
    return [...this.values].map(([k, v]) => `${this.name}${k} ${v}`);
  }
}

export class Gauge {
  private readonly values = new Map<string, number>();
  constructor(readonly name: string, private readonly collect?: () => Array<[Labels | undefined, number]>) {}
  set(value: number, labels?: Labels): void {
    this.values.set(labelKey(labels), value);
  }
  render(): string[] {
    if (this.collect) return this.collect().map(([l, v]) => `${this.name}${labelKey(l)} ${v}`);
    if (this.values.size === 0) return [`${this.name} 0`];
    return [...this.values].map(([k, v]) => `${this.name}${k} ${v}`);
  }
}

export class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;
  constructor(readonly name: string, private readonly buckets: number[]) {
    this.counts = buckets.map(() => 0);
  }
  observe(value: number): void {
    this.sum += value;
    this.count += 1;
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) this.counts[i]! += 1;
  }
  render(): string[] {
    const lines = this.buckets.map((b, i) => `${this.name}_bucket{le="${b}"} ${this.counts[i]}`);
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.count}`, `${this.name}_sum ${this.sum}`, `${this.name}_count ${this.count}`);
    return lines;
  }
}

export class Registry {
  private readonly families: Family[] = [];
  constructor(private readonly prefix = 'ktv_') {
    const started = Date.now();
    this.gauge('process_uptime_seconds', 'Seconds since the process started', () => [[undefined, (Date.now() - started) / 1000]]);
    this.gauge('process_resident_memory_bytes', 'Resident set size', () => [[undefined, process.memoryUsage().rss]]);
    this.gauge('process_heap_used_bytes', 'V8 heap in use', () => [[undefined, process.memoryUsage().heapUsed]]);
  }
  private add<T extends { render(): string[] }>(name: string, help: string, type: Family['type'], metric: T): T {
    this.families.push({ name: this.prefix + name, help, type, render: () => metric.render() });
    return metric;
  }
  counter(name: string, help: string): Counter {
    return this.add(name, help, 'counter', new Counter(this.prefix + name));
  }
  gauge(name: string, help: string, collect?: () => Array<[Labels | undefined, number]>): Gauge {
    return this.add(name, help, 'gauge', new Gauge(this.prefix + name, collect));
  }
  histogram(name: string, help: string, buckets: number[]): Histogram {
    return this.add(name, help, 'histogram', new Histogram(this.prefix + name, buckets));
  }
  render(): string {
    const out: string[] = [];
    for (const f of this.families) out.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`, ...f.render());
    return out.join('\n') + '\n';
  }
}
