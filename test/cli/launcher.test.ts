// bin/hoard.js started by an older Node runs the pinned Node 24 as a child.
// That child must never outlive the launcher: `kill -9` of the launcher (what
// a CI job's timeout does) makes the child stop; SIGINT/SIGTERM/SIGHUP are
// forwarded, and the launcher's exit mirrors the child's (code or signal).
// Real processes: the system /usr/bin/node (v20) running the real CLI.

import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitUntil } from '../support/wait.ts';

const HOARD = fileURLToPath(new URL('../../bin/hoard.js', import.meta.url));
const SYSTEM_NODE = '/usr/bin/node';
/** A process is gone when /proc has no entry or only a zombie left for its reaper. */
function gone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

interface Started {
  launcher: ChildProcess;
  child: number;
  stdout: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

describe('bin/hoard.js under an older Node', {
  skip: !existsSync(SYSTEM_NODE) || !existsSync('/proc/self'),
}, () => {
  let work: string;
  let n = 0;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'hoard-launcher-'));
  });
  after(() => rm(work, { recursive: true, force: true }));

  /** `hoard serve` on port 0 through the system node; resolves once it serves. */
  async function startServe(): Promise<Started> {
    const launcher = spawn(
      SYSTEM_NODE,
      [HOARD, 'serve', '--listen', '127.0.0.1:0', '--data', join(work, `data${++n}`), '--drain-delay', '0s'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    launcher.stdout!.on('data', (b) => {
      out += b;
    });
    launcher.stderr!.on('data', (b) => {
      err += b;
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      launcher.on('exit', (code, signal) => resolve({ code, signal })),
    );
    await waitUntil(() => /hoard: serving http/.test(err), `serve did not start: ${err}`, 30_000);
    const kids = childrenOf(launcher.pid!);
    assert.equal(kids.length, 1, `launcher children: ${kids}`);
    const cmdline = readFileSync(`/proc/${kids[0]}/cmdline`, 'utf8');
    assert.match(cmdline, /node_modules\/node\/bin\/node/);
    return { launcher, child: kids[0], stdout: () => out, exited };
  }

  it('kill -9 of the launcher: the pinned child notices and exits', async () => {
    const s = await startServe();
    s.launcher.kill('SIGKILL');
    await s.exited;
    await waitUntil(() => gone(s.child), `child ${s.child} still running`, 20_000);
  });

  it('SIGTERM is forwarded: the child drains, and the launcher exits with its code', async () => {
    const s = await startServe();
    s.launcher.kill('SIGTERM');
    const r = await s.exited;
    assert.deepEqual(r, { code: 0, signal: null });
    assert.match(s.stdout(), /"signal":"SIGTERM"/);
    await waitUntil(() => gone(s.child), 'the child to exit', 5_000);
  });

  it('a child killed by a signal takes the launcher with it (SIGHUP forwarded, SIGKILL mirrored)', async () => {
    const hup = await startServe();
    hup.launcher.kill('SIGHUP'); // serve has no SIGHUP handler: the child dies of it
    assert.deepEqual(await hup.exited, { code: null, signal: 'SIGHUP' });
    await waitUntil(() => gone(hup.child), 'the child to exit', 5_000);

    const killed = await startServe();
    process.kill(killed.child, 'SIGKILL');
    assert.deepEqual(await killed.exited, { code: null, signal: 'SIGKILL' });
  });

  it('exit codes mirror the child', async () => {
    const code = (args: string[]) =>
      new Promise<number | null>((resolve) =>
        execFile(SYSTEM_NODE, [HOARD, ...args], (err) =>
          resolve(err ? ((err as { code?: number }).code ?? null) : 0),
        ),
      );
    assert.equal(await code(['--version']), 0);
    assert.equal(await code(['frobnicate']), 1);
    const store = join(work, 'store');
    const src = join(work, 'src');
    await mkdir(src, { recursive: true });
    assert.equal(await code(['push', src, store, '--ref', 'a']), 0);
    assert.equal(await code(['pull', store, join(work, 'dest'), '--ref', 'no-such-ref']), 2);
  });

  it('the parent-pid check alone stops a child whose launcher is not its parent', async () => {
    // Run the pinned Node directly, claiming a launcher that is not our parent:
    // no IPC channel, so only the periodic ppid check can notice.
    const child = spawn(
      process.execPath,
      [HOARD, 'serve', '--listen', '127.0.0.1:0', '--data', join(work, 'data-ppid')],
      { stdio: ['ignore', 'ignore', 'ignore'], env: { ...process.env, HOARD_LAUNCHER_PID: '1' } },
    );
    const r = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal })),
    );
    assert.ok(r.signal === 'SIGTERM' || r.code === 0, JSON.stringify(r));
  });
});
