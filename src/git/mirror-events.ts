// What a mirror announces to the manager's typed subscribers
// (mirror-manager.ts: onFetched, onDefaultBranchMoved). A subscriber that
// throws is logged, never lets the mirror's own work fail.

import type { Subscribers } from '../core/subscribers.ts';
import type { GitLogger } from './git-logger.ts';
import type { RepoId } from './upstreams.ts';

export interface FetchedEvent {
  key: string;
  dir: string;
  /** HEAD's target commit before and after (only computed when someone subscribed). */
  before?: string | null;
  after?: string | null;
  /** The mirror was just created (its first fetch; emitted once its maintenance is done). */
  created?: boolean;
}

export interface DefaultBranchMovedEvent {
  key: string;
  path: string;
  dir: string;
  ref: string;
  from: string | null;
  to: string;
}

/** The subscribers a mirror announces to, and where a failing one is logged. */
export interface MirrorAnnouncer {
  readonly fetched: Subscribers<FetchedEvent>;
  readonly defaultBranchMoved: Subscribers<DefaultBranchMovedEvent>;
  readonly log: GitLogger;
}

export function emitFetched(to: MirrorAnnouncer, event: FetchedEvent): void {
  to.fetched.emit(event, (err) => subscriberFailed(to, event.key, 'fetched', err));
}

export function emitMoved(
  to: MirrorAnnouncer,
  mirror: { id: RepoId; dir: string },
  ref: string,
  from: string | null,
  head: string,
): void {
  const event = { key: mirror.id.key, path: mirror.id.path, dir: mirror.dir, ref, from, to: head };
  to.defaultBranchMoved.emit(event, (err) => subscriberFailed(to, mirror.id.key, 'defaultBranchMoved', err));
}

function subscriberFailed(to: MirrorAnnouncer, key: string, event: string, err: unknown): void {
  to.log.error({ repo: key, err }, `git: a ${event} subscriber failed`);
}
