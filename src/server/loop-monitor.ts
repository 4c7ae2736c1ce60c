// How long the server's own work held the event loop, independent of machine
// load. `hoard_process_nodejs_eventloop_lag_max_seconds` (prom-client's
// monitorEventLoopDelay) measures wall-clock delay, which also counts time
// the OS did not run the process at all: on a busy host it reads 100+ ms
// while the server did nothing wrong. This monitor ticks every HOLD_TICK_MS
// and takes the main thread's CPU time between two ticks (capped by the wall
// time): a task that keeps the loop for 300 ms reads ~300 ms, a process that
// waited 300 ms for a CPU reads ~0. One timer per process (unref'd), shared by
// every server in it (tests run several); each reader keeps its own maximum.

/** Tick of the hold monitor (also its resolution). */
const HOLD_TICK_MS = 10;

export interface LoopHoldReader {
  /** Longest hold (ms) since the last call; resets it. */
  takeMaxMs(): number;
}

const readers = new Set<{ max: number }>();
let timer: NodeJS.Timeout | undefined;
let lastWall = 0;
let lastCpu = 0;

function cpuMs(): number {
  const u = process.threadCpuUsage();
  return (u.user + u.system) / 1000;
}

function tick(): void {
  const wall = performance.now();
  const cpu = cpuMs();
  const hold = Math.min(wall - lastWall, cpu - lastCpu);
  lastWall = wall;
  lastCpu = cpu;
  for (const r of readers) if (hold > r.max) r.max = hold;
}

/** A new reader of the process-wide hold monitor (started on first use). */
export function loopHoldReader(): LoopHoldReader {
  const r = { max: 0 };
  readers.add(r);
  if (!timer) {
    lastWall = performance.now();
    lastCpu = cpuMs();
    timer = setInterval(tick, HOLD_TICK_MS);
    timer.unref();
  }
  return {
    takeMaxMs() {
      const m = r.max;
      r.max = 0;
      return m;
    },
  };
}
