// The npm registry cache's Prometheus metrics, on the server's registry
// (never prom-client's global one: several servers live in one test process).

import { Counter, type Registry } from 'prom-client';

export interface NpmMetrics {
  /** kind: document|tarball; result: hit|miss|revalidated|stale|error. */
  requests: Counter<'kind' | 'result'>;
  upstreamBytes: Counter<'kind'>;
  staleServes: Counter;
  integrityFailures: Counter;
  /** Upstream documents that named another integrity for a version already seen (the original was kept). */
  integrityChanges: Counter;
}

export function npmMetrics(registry: Registry): NpmMetrics {
  const counter = <L extends string = never>(name: string, help: string, labelNames: L[] = []) =>
    (registry.getSingleMetric(name) as Counter<L> | undefined) ??
    new Counter({ name, help, labelNames, registers: [registry] });
  return {
    requests: counter('hoard_npm_requests_total', 'npm documents and tarballs served, by result', [
      'kind',
      'result',
    ]),
    upstreamBytes: counter('hoard_npm_upstream_bytes_total', 'Bytes received from npm upstreams', ['kind']),
    staleServes: counter(
      'hoard_npm_stale_serves_total',
      'Package documents served past their freshness bound because the upstream failed or was slow',
    ),
    integrityFailures: counter(
      'hoard_npm_integrity_failures_total',
      'Upstream tarballs refused because their bytes did not match the integrity their document names',
    ),
    integrityChanges: counter(
      'hoard_npm_integrity_changes_total',
      'Upstream documents naming a changed integrity for a known version (the original was served)',
    ),
  };
}
