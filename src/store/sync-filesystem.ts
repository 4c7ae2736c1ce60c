// syncfs(2) for a folder's file system: every dirty page and inode of that
// file system written and the device cache flushed, in one call.
//
// Why: a batch of many small blobs made durable one fsync at a time costs a
// synchronous data write, an inode-block write and a device flush per blob
// (on this project's machines ~0.8 ms of thread-pool time and ~0.2 ms of
// kernel CPU each: 7–14 s of a 50,000-file push that takes 6 s without
// them). One syncfs after the temp files of a batch are written settles the
// same durability with the writes merged, before any of them is linked.
//
// Node has no syncfs binding and hoard loads no native add-on, so the call is
// coreutils' `sync -f <path>` (opens the path, syncfs on it, exits non-zero
// when syncfs fails). Where it cannot run (no coreutils, an old one without
// -f, another OS), the promise rejects and the caller falls back to fsync per
// file. Error reporting: syncfs reports a writeback error of the file system
// that no one has seen yet (errseq); an error that happened in background
// writeback *and* was already consumed by another process's syncfs before
// ours started is missed, where a per-file fsync would have reported it. That
// is a failing device seen by someone else first; the per-file fallback is one
// option away (FsBlobStoreOptions.syncFilesystem off, the default for servers).

import { execFile } from 'node:child_process';

/** Runs a syncfs(2) of the file system holding `path`; rejects when it failed or could not run. */
export type SyncFilesystem = (path: string) => Promise<void>;

export const syncFilesystem: SyncFilesystem = (path) =>
  new Promise((resolve, reject) => {
    execFile('sync', ['-f', '--', path], { timeout: 10 * 60_000, windowsHide: true }, (err, _out, stderr) => {
      if (err) reject(new Error(`sync -f ${path} failed: ${String(stderr).trim() || err.message}`));
      else resolve();
    });
  });
