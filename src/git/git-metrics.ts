// The git proxy's Prometheus metrics, registered on the registry it is given
// (the server's ServerMetrics.registry, served at /metrics), never on
// prom-client's global one: several servers live in one test process, and a
// metric on the global registry would be shared by all and shown by none.
// A metric already on the registry (two managers on one server's registry)
// is reused, since prom-client refuses to register one name twice.

import { Counter, Histogram, type Registry } from 'prom-client';

export interface GitMetrics {
  fetches: Counter<'result'>;
  fetchDuration: Histogram<'kind'>;
  clones: Counter<'result'>;
  staleServes: Counter;
  requests: Counter<'service'>;
  maintenance: Counter<'result'>;
  unknownObjectFetchesLimited: Counter;
}

function counter<L extends string = never>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: L[] = [],
): Counter<L> {
  return (
    (registry.getSingleMetric(name) as Counter<L> | undefined) ??
    new Counter({ name, help, labelNames, registers: [registry] })
  );
}

export function gitMetrics(registry: Registry): GitMetrics {
  const duration = 'hoard_git_fetch_duration_seconds';
  return {
    fetches: counter(
      registry,
      'hoard_git_fetches_total',
      'Upstream fetches into git mirrors, by result (ok, error, timeout)',
      ['result'],
    ),
    fetchDuration:
      (registry.getSingleMetric(duration) as Histogram<'kind'> | undefined) ??
      new Histogram({
        name: duration,
        help: 'Duration of upstream clones and fetches of git mirrors',
        labelNames: ['kind'],
        buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
        registers: [registry],
      }),
    clones: counter(registry, 'hoard_git_clones_total', 'Upstream mirror clones, by result', ['result']),
    staleServes: counter(
      registry,
      'hoard_git_stale_serves_total',
      'Ref advertisements served from a mirror older than the staleness bound (upstream down or slow)',
    ),
    requests: counter(registry, 'hoard_git_requests_total', 'git smart-HTTP requests, by service', [
      'service',
    ]),
    unknownObjectFetchesLimited: counter(
      registry,
      'hoard_git_unknown_object_fetches_limited_total',
      'Requests for objects a mirror lacks that did not fetch upstream because the per-mirror budget was used up',
    ),
    maintenance: counter(
      registry,
      'hoard_git_maintenance_total',
      'Mirror maintenance runs (geometric repack, commit-graph), by result',
      ['result'],
    ),
  };
}
