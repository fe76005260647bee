/**
 * The one run loop over an attack engine (the EngineHandle contract of engine-cpu.ts): advance the
 * restarts in chunks, read the status back at the read-back points a schedule names, and yield a
 * snapshot at each. `attack()`, the study's `runConfiguration` and the explorer page all drive their
 * engines through it. Browser-safe.
 *
 *   const loop = runLoop(engine, { schedule: { kind: 'every', every: 100, iterations: 2000 }, signal });
 *   for await (const snap of loop) console.log(snap.iteration, snap.best.loss, snap.counts.converged);
 *   loop.stoppedBy; // 'iterations' | 'all-finished' | 'stop-after' | 'predicate' | 'aborted' | 'break'
 *
 * The loop reads back nothing beyond what it is asked for: one `readStatus()` per read-back point,
 * and one `readBest()` there only when `bestPoints` asks for it. The caller owns the engine (sets its
 * inputs, unless `inputs` is given, reads the final best points, destroys it).
 */
import type { EngineHandle, EngineStatus } from './engine-cpu.js';
import { DlgInputError, describe } from '../core/errors.js';

/**
 * Where the status is read back (iterations done so far, cumulative):
 * - 'every': every `every` iterations, and at `iterations` (the last chunk may be shorter);
 * - 'points': an explicit, strictly increasing list of positive iteration counts (the last is the budget);
 * - 'adaptive': chunks sized to take about `targetMs` each (run + read-back), starting at `initial`
 *   iterations, doubled while a chunk takes under targetMs/2 (up to `max`), halved above 2·targetMs
 *   (down to 1), until `iterations`.
 */
export type ReadbackSchedule =
  | { kind: 'every'; every: number; iterations: number }
  | { kind: 'points'; points: readonly number[] }
  | { kind: 'adaptive'; iterations: number; initial?: number; targetMs?: number; max?: number };

/** Why a run loop ended. 'break': the caller left the for-await loop early. */
export type RunStop = 'iterations' | 'all-finished' | 'stop-after' | 'predicate' | 'aborted' | 'break';

export interface RunCounts {
  /** Status 0: still stepping. */
  running: number;
  /** Status 1: met the tolerance, frozen. */
  converged: number;
  /** Status 3: stalled and frozen (lm: λ beyond its cap). Restarts still running are not counted here. */
  stalled: number;
  /** Status 2: non-finite, rolled back to the best point and frozen. */
  nonFinite: number;
}

export interface RunSnapshot {
  /** Iterations done so far (the read-back point). */
  iteration: number;
  /** Iterations run in the chunk that ended here. */
  chunk: number;
  /** The engine's status as read back here (fresh arrays, the caller may keep them). */
  status: EngineStatus;
  counts: RunCounts;
  /** The restart with the lowest best loss (first on ties; 0 when none is finite) and that loss (+∞ when none). */
  best: { index: number; loss: number };
  /** Milliseconds since `startTime` (default: when the loop started). */
  elapsedMs: number;
  /** Milliseconds this chunk took: run plus its read-backs. */
  chunkMs: number;
  /** Every restart's best point (P·B·D, working space), present only when `bestPoints` asked for it. */
  bestPoints?: Float32Array;
  /** Set on the last snapshot when a stop condition ended the loop here (or the schedule ran out). */
  stop?: Exclude<RunStop, 'aborted' | 'break'>;
}

export interface RunLoopOptions {
  schedule: ReadbackSchedule;
  /** Passed to `engine.setInputs` before the first chunk (omit when the caller has set them). */
  inputs?: ArrayLike<number>;
  /** Checked before every chunk (the first included): once aborted, the loop runs nothing more. An AbortSignal, or anything with an `aborted` flag. */
  signal?: { readonly aborted: boolean };
  /** Stop once this many restarts have converged (0 or omitted = off). */
  stopAfter?: number;
  /** Stop once no restart is running (default true). */
  stopWhenFinished?: boolean;
  /** A further stop predicate, asked after every snapshot (after the finished and stopAfter checks). */
  stopWhen?: (s: RunSnapshot) => boolean;
  /** Read every restart's best point at every read-back (default false). */
  bestPoints?: boolean;
  /** performance.now() that `elapsedMs` counts from (default: the loop's start). */
  startTime?: number;
}

export interface RunLoop extends AsyncIterable<RunSnapshot> {
  /** Why the loop ended (undefined while it runs). */
  readonly stoppedBy: RunStop | undefined;
  /** Iterations run so far. */
  readonly iteration: number;
  /** The last snapshot yielded, if any. */
  readonly last: RunSnapshot | undefined;
}

function positiveInt(field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new DlgInputError(field, 'a positive integer', describe(v));
  return v;
}

/** Validates a schedule; DlgInputError names the field. */
export function validateSchedule(s: ReadbackSchedule): ReadbackSchedule {
  if (s.kind === 'every') {
    positiveInt('schedule.every', s.every);
    positiveInt('schedule.iterations', s.iterations);
  } else if (s.kind === 'points') {
    if (!Array.isArray(s.points) || s.points.length === 0) throw new DlgInputError('schedule.points', 'a non-empty list of iteration counts', describe(s.points));
    let prev = 0;
    for (const p of s.points) {
      if (typeof p !== 'number' || !Number.isInteger(p) || p <= prev) {
        throw new DlgInputError('schedule.points', 'strictly increasing positive integers', describe(s.points));
      }
      prev = p;
    }
  } else if (s.kind === 'adaptive') {
    positiveInt('schedule.iterations', s.iterations);
    if (s.initial !== undefined) positiveInt('schedule.initial', s.initial);
    if (s.max !== undefined) positiveInt('schedule.max', s.max);
    if (s.targetMs !== undefined && !(typeof s.targetMs === 'number' && s.targetMs > 0 && Number.isFinite(s.targetMs))) {
      throw new DlgInputError('schedule.targetMs', 'a finite number > 0', describe(s.targetMs));
    }
  } else {
    throw new DlgInputError('schedule.kind', "one of 'every', 'points', 'adaptive'", describe((s as { kind?: unknown }).kind));
  }
  return s;
}

/** Counts, best restart and loss of a status (one pass). */
export function summariseStatus(st: EngineStatus): { counts: RunCounts; best: { index: number; loss: number } } {
  const counts: RunCounts = { running: 0, converged: 0, stalled: 0, nonFinite: 0 };
  let index = 0;
  let loss = Infinity;
  const n = st.status.length;
  for (let p = 0; p < n; p++) {
    const bl = st.bestLoss[p];
    if (bl < loss) {
      loss = bl;
      index = p;
    }
    const s = st.status[p];
    if (s === 0) counts.running++;
    else if (s === 1) counts.converged++;
    else if (s === 2) counts.nonFinite++;
    else counts.stalled++;
  }
  return { counts, best: { index, loss } };
}

/** Drives `engine` through `opts.schedule`, yielding a snapshot at every read-back point (see the module comment). */
export function runLoop(engine: EngineHandle, opts: RunLoopOptions): RunLoop {
  const schedule = validateSchedule(opts.schedule);
  const stopAfter = opts.stopAfter ?? 0;
  const stopWhenFinished = opts.stopWhenFinished ?? true;
  let stoppedBy: RunStop | undefined;
  let done = 0;
  let last: RunSnapshot | undefined;

  async function* iterate(): AsyncGenerator<RunSnapshot> {
    const t0 = opts.startTime ?? performance.now();
    if (opts.inputs !== undefined) engine.setInputs(opts.inputs);
    const adaptive = schedule.kind === 'adaptive' ? schedule : undefined;
    const budget = schedule.kind === 'points' ? schedule.points[schedule.points.length - 1] : schedule.iterations;
    let chunk = schedule.kind === 'every' ? schedule.every : (adaptive?.initial ?? 1);
    const target = adaptive?.targetMs ?? 80;
    const max = adaptive?.max ?? 1 << 14;
    let pointIndex = 0;
    try {
      for (;;) {
        if (done >= budget) {
          stoppedBy = 'iterations';
          return;
        }
        const next = schedule.kind === 'points' ? schedule.points[pointIndex++] : done + Math.min(chunk, budget - done);
        if (opts.signal?.aborted) {
          stoppedBy = 'aborted';
          return;
        }
        const n = next - done;
        const tc = performance.now();
        engine.run(n);
        const status = await engine.readStatus();
        const bestPoints = opts.bestPoints ? await engine.readBest() : undefined;
        const now = performance.now();
        done = next;
        const chunkMs = now - tc;
        if (adaptive) {
          if (chunkMs < target / 2 && chunk < max) chunk *= 2;
          else if (chunkMs > target * 2 && chunk > 1) chunk = Math.max(1, chunk >> 1);
        }
        const { counts, best } = summariseStatus(status);
        const snap: RunSnapshot = { iteration: done, chunk: n, status, counts, best, elapsedMs: now - t0, chunkMs, ...(bestPoints ? { bestPoints } : {}) };
        const lastPoint = done >= budget;
        if (stopWhenFinished && counts.running === 0) snap.stop = 'all-finished';
        else if (stopAfter > 0 && counts.converged >= stopAfter) snap.stop = 'stop-after';
        else if (opts.stopWhen?.(snap)) snap.stop = 'predicate';
        else if (lastPoint) snap.stop = 'iterations';
        last = snap;
        if (snap.stop) {
          stoppedBy = snap.stop;
          yield snap;
          return;
        }
        yield snap;
      }
    } finally {
      // Left early by the caller (break, return or a throw in its loop body).
      if (stoppedBy === undefined) stoppedBy = 'break';
    }
  }

  return {
    [Symbol.asyncIterator]: iterate,
    get stoppedBy() {
      return stoppedBy;
    },
    get iteration() {
      return done;
    },
    get last() {
      return last;
    },
  };
}
