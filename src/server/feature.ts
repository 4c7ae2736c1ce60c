// A feature of `hoard serve`: one protocol or service over the one store
// (the blob/ref API, the git proxy, snapshots, and each cache front-end that
// follows). The composition root (src/cli/serve-features.ts) lists the
// features the server runs; buildServer (app.ts) creates them in that order,
// each from a FeatureContext that hands it every dependency explicitly —
// stores, auth, metrics registry, logger, its own frozen settings, and
// other features it builds on (`use`, typed, which must be listed earlier).
//
// Life cycle: create (all features, in order) → routes (each in its own
// encapsulated fastify context under its prefix) → listening (the server's
// URL is known; start background work) → ready() is asked by /readyz →
// close (reverse order, before the stores close).

import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { SettingsGroup, SettingsShape, ValuesOf } from '../core/settings.ts';
import type { RefStore } from '../store/ref-store.ts';
import type { AuthPolicy } from './auth.ts';
import type { ServerConfig } from './config.ts';
import type { ServerContext, ServerState } from './context.ts';
import type { EntryReferences } from './entry-references.ts';
import type { ServerMetrics } from './metrics.ts';
import type { TieredBlobStore } from './tiered-blob-store.ts';

export interface Feature {
  /** URL prefix of its routes (e.g. `/git`); none: at the root. */
  readonly prefix?: string;
  /** Registers its routes, in its own encapsulated context. */
  routes?(app: FastifyInstance): Promise<void> | void;
  /** The server listens at `url`: background work may start. */
  listening?(url: string): Promise<void> | void;
  /** Readiness: false keeps /readyz at 503. */
  ready?(): boolean;
  /** Stops background work and releases what it holds (called before the stores close). */
  close?(): Promise<void>;
}

/** What every feature is given. */
export interface FeatureContext {
  /** The server's own settings (listen address, data directory, limits). */
  readonly server: ServerConfig;
  readonly blobs: TieredBlobStore;
  readonly refs: RefStore;
  readonly auth: AuthPolicy;
  readonly metrics: ServerMetrics;
  /** The server's logger, bound to the feature's name. */
  readonly log: FastifyBaseLogger;
  readonly state: ServerState;
  /** The shared route context (auth checks of routes: context.ts's authorizeRequest). */
  readonly ctx: ServerContext;
  /** The features created so far, in order (all of them once the routes are registered): for reports. */
  features(): readonly { name: string; prefix?: string }[];
  /** The instance of a feature this one builds on (it must be listed earlier). */
  use<F extends Feature>(def: FeatureKey<F>): F;
}

export interface FeatureDefinition<S extends SettingsShape = SettingsShape, F extends Feature = Feature> {
  readonly name: string;
  /** Its settings group (a config-file section, flags, env, docs), if it has any. */
  readonly settings?: SettingsGroup<S>;
  /** Cache entry formats whose content names more blobs gc must keep (entry-references.ts). */
  readonly entryReferences?: readonly EntryReferences[];
  create(ctx: FeatureContext, settings: ValuesOf<S>): Promise<F> | F;
}

/** Any feature definition, as a key of `use()` and of FeatureUse (its settings type erased). */
export interface FeatureKey<F extends Feature = Feature> {
  readonly name: string;
  readonly entryReferences?: readonly EntryReferences[];
  create(ctx: FeatureContext, settings: never): Promise<F> | F;
}

export function defineFeature<S extends SettingsShape, F extends Feature>(
  def: FeatureDefinition<S, F>,
): FeatureDefinition<S, F> {
  return Object.freeze(def);
}

/** A feature the server is to run, bound to its settings' values. */
export interface FeatureUse {
  /** Identifies the feature for `use()`. */
  readonly def: FeatureKey;
  create(ctx: FeatureContext): Promise<Feature> | Feature;
}

/**
 * A feature with its settings: `values` are the resolved group (from the
 * settings layers) or, in tests and embedders, any subset of it over the
 * declared defaults.
 */
export function withSettings<S extends SettingsShape, F extends Feature>(
  def: FeatureDefinition<S, F>,
  values: Partial<ValuesOf<S>> = {},
): FeatureUse {
  const defaults: Partial<Record<keyof S, unknown>> = {};
  for (const k of Object.keys(def.settings?.settings ?? {}) as (keyof S)[])
    defaults[k] = def.settings?.settings[k].default;
  const settings = Object.freeze({ ...defaults, ...values }) as ValuesOf<S>;
  return { def, create: (ctx) => def.create(ctx, settings) };
}
