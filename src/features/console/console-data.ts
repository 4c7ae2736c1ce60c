// The data behind every console page, as the JSON of /v1/status…: one
// method per page, each gathered through the interfaces that exist — the
// tiers' own accounting (store/tier-usage.ts), the metrics registry, the git
// feature's mirrors and the snapshot service, the ref store, sync/history.ts
// for a sync ref's versions and the tree codec for folder listings. The page
// renders exactly this object, so a script reading /v1/status sees what a
// person sees.
//
// This class composes the pages' modules and the state they share (the
// disk census, the mirrors' folder sizes):
//   console-overview.ts  the overview and the sampler's readings
//   console-mirrors.ts   the git page
//   console-refs.ts      the refs pages (bounded: pages, histories, trees, two heavy reads at once)
//   console-blobs.ts     the blobs page
//   console-views.ts     the shapes they return; tree-folder.ts: a tree seen as folders

import { blobsView } from './console-blobs.ts';
import { mirrorReports } from './console-mirrors.ts';
import { ConsoleOverview, type ConsoleOverviewOptions } from './console-overview.ts';
import { ConsoleRefs } from './console-refs.ts';
import type { Reading } from './console-sampler.ts';
import type { BlobsView, MirrorReport, Overview, RefPage, RefView } from './console-views.ts';
import { DirSizes, DiskCensus } from './disk-census.ts';

/** What the console's data comes from: the overview's sources, the census being this class's own. */
export type ConsoleDataOptions = Omit<ConsoleOverviewOptions, 'census'>;

export class ConsoleData {
  readonly #o: ConsoleDataOptions;
  readonly #census: DiskCensus;
  readonly #dirSizes = new DirSizes({ maxAgeMs: 60_000, maxEntries: 200_000 });
  readonly #overview: ConsoleOverview;
  readonly #refs: ConsoleRefs;

  constructor(opts: ConsoleDataOptions) {
    this.#o = opts;
    const { ctx } = opts;
    this.#census = new DiskCensus(ctx.blobs.disk, { maxBlobs: 200_000, maxAgeMs: 60_000 });
    this.#overview = new ConsoleOverview({ ...opts, census: this.#census });
    this.#refs = new ConsoleRefs(ctx);
  }

  /** Cumulative counts per feature and the tiers' sizes, for the sampler (off the request path). */
  reading(): Promise<Reading> {
    return this.#overview.reading();
  }

  overview(): Promise<Overview> {
    return this.#overview.overview();
  }

  git(): Promise<{ mirrors: MirrorReport[] } | null> {
    return mirrorReports(this.#o.git, this.#o.snapshots, this.#dirSizes);
  }

  /** A page of refs under `prefix`; `visible` drops the ones the asker may not see (before paging). */
  refs(prefix: string, after: string, limit: number, visible?: (name: string) => boolean): Promise<RefPage> {
    return this.#refs.refs(prefix, after, limit, visible);
  }

  ref(name: string, version: string, path: string): Promise<RefView> {
    return this.#refs.ref(name, version, path);
  }

  blobs(lookup: string): Promise<BlobsView> {
    return blobsView(this.#o.ctx, this.#census, lookup);
  }
}
