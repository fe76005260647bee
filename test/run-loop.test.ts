import { afterEach, describe, expect, it, vi } from 'vitest';
import { type EngineHandle, type EngineOptions, type EngineStatus, createCpuEngine } from '../src/attack/engine-cpu.js';
import { DlgInputError } from '../src/core/errors.js';
import { type Layer, gradientNormSq, victimGradient } from '../src/core/model.js';
import { Rng } from '../src/core/rng.js';
import { type ReadbackSchedule, type RunSnapshot, runLoop, summariseStatus, validateSchedule } from '../src/attack/run-loop.js';

/** A (B, D, K) problem and P starting points: the truth plus noise of size `noise`. */
function problem(B: number, D: number, K: number, P: number, noise: number, seed = 1) {
  const rng = new Rng(seed);
  const W = Float64Array.from({ length: D * K }, () => rng.normal() / Math.sqrt(D));
  const b = Float64Array.from({ length: K }, () => 0.1 * rng.normal());
  const y = Float64Array.from({ length: B * K }, () => rng.int(2));
  const xTrue = Float64Array.from({ length: B * D }, () => rng.normal());
  const layer: Layer = { B, D, K, W, b, y, reduction: 'mean' };
  const target = victimGradient(layer, xTrue);
  const x0 = Float64Array.from({ length: P * B * D }, (_, i) => xTrue[i % (B * D)] + noise * rng.normal());
  return { layer, target, x0, P, xTrue };
}

/** Wraps an engine, recording every run and read-back. */
function counted(e: EngineHandle) {
  const log = { runs: [] as number[], status: 0, best: 0, inputs: 0 };
  const h: EngineHandle = {
    totalRestarts: e.totalRestarts,
    kernel: e.kernel,
    why: e.why,
    setInputs: (x) => {
      log.inputs++;
      e.setInputs(x);
    },
    run: (n) => {
      log.runs.push(n);
      e.run(n);
    },
    readStatus: () => {
      log.status++;
      return e.readStatus();
    },
    readBest: () => {
      log.best++;
      return e.readBest();
    },
    destroy: () => e.destroy(),
  };
  return { h, log };
}

function cpu(opts: Partial<EngineOptions> & { B?: number; D?: number; K?: number; P?: number; noise?: number } = {}) {
  const pr = problem(opts.B ?? 2, opts.D ?? 5, opts.K ?? 3, opts.P ?? 6, opts.noise ?? 1);
  const engine = createCpuEngine({
    layer: pr.layer, target: pr.target, P: pr.P, optimizer: opts.optimizer ?? 'adam', lr: opts.lr ?? 0.05,
    tolAbs: opts.tolAbs ?? 1e-10 * gradientNormSq(pr.target),
  });
  return { ...pr, engine, ...counted(engine) };
}

async function collect(loop: AsyncIterable<RunSnapshot>): Promise<RunSnapshot[]> {
  const out: RunSnapshot[] = [];
  for await (const s of loop) out.push(s);
  return out;
}

afterEach(() => vi.restoreAllMocks());

describe('run loop schedules', () => {
  it("'every': chunks of `every`, a shorter last one, one status read per point and nothing else", async () => {
    const { h, log, x0, engine } = cpu();
    const loop = runLoop(h, { inputs: x0, schedule: { kind: 'every', every: 40, iterations: 130 }, stopWhenFinished: false });
    expect(log.runs).toEqual([]); // lazy: nothing runs before iteration
    const snaps = await collect(loop);
    expect(log).toEqual({ runs: [40, 40, 40, 10], status: 4, best: 0, inputs: 1 });
    expect(snaps.map((s) => s.iteration)).toEqual([40, 80, 120, 130]);
    expect(snaps.map((s) => s.chunk)).toEqual([40, 40, 40, 10]);
    expect(snaps.map((s) => s.stop)).toEqual([undefined, undefined, undefined, 'iterations']);
    expect(loop.stoppedBy).toBe('iterations');
    expect(loop.iteration).toBe(130);
    expect(loop.last).toBe(snaps[3]);
    for (const s of snaps) {
      expect(s.bestPoints).toBeUndefined();
      const c = s.counts;
      expect(c.running + c.converged + c.stalled + c.nonFinite).toBe(6);
      // best: the first restart with the lowest best loss
      const bl = Array.from(s.status.bestLoss);
      expect(s.best.loss).toBe(Math.min(...bl));
      expect(s.best.index).toBe(bl.indexOf(s.best.loss));
      expect(s.elapsedMs).toBeGreaterThanOrEqual(0);
      expect(s.chunkMs).toBeGreaterThanOrEqual(0);
    }
    // The CPU engine is deterministic: the same chunks run directly give the same status.
    const ref = cpu();
    ref.engine.setInputs(ref.x0);
    for (const n of [40, 40, 40, 10]) ref.engine.run(n);
    const st = await ref.engine.readStatus();
    expect(snaps[3].status).toEqual(st);
    expect(await engine.readBest()).toEqual(await ref.engine.readBest());
  });

  it("'points': runs to each listed point in turn", async () => {
    const { h, log, x0 } = cpu();
    h.setInputs(x0); // set by the caller: no `inputs`
    const snaps = await collect(runLoop(h, { schedule: { kind: 'points', points: [1, 2, 5, 10, 17] }, stopWhenFinished: false }));
    expect(log.runs).toEqual([1, 1, 3, 5, 7]);
    expect(log.inputs).toBe(1);
    expect(log.status).toBe(5);
    expect(snaps.map((s) => s.iteration)).toEqual([1, 2, 5, 10, 17]);
    expect(snaps[4].stop).toBe('iterations');
  });

  it("'adaptive': doubles chunks under targetMs/2, halves them above 2·targetMs", async () => {
    let now = 0;
    let msPerIteration = 1;
    vi.spyOn(performance, 'now').mockImplementation(() => now);
    const { h, log, x0 } = cpu();
    const timed: EngineHandle = { ...h, run: (n) => { now += n * msPerIteration; h.run(n); } };
    const loop = runLoop(timed, {
      inputs: x0, schedule: { kind: 'adaptive', iterations: 1000, initial: 16, targetMs: 80 }, stopWhenFinished: false,
      stopWhen: (s) => {
        if (s.iteration >= 200) msPerIteration = 20; // the chunks get slow
        return false;
      },
    });
    const snaps = await collect(loop);
    // 16 (16 ms < 40: ×2), 32 (×2), 64 (64 ms: kept), 64, 64 → 240; then 20 ms/iteration: 64 takes
    // 1280 ms > 160 → 32 → 16 → 8 (160 ms: kept) → 8 …
    expect(log.runs.slice(0, 10)).toEqual([16, 32, 64, 64, 64, 64, 32, 16, 8, 8]);
    expect(log.runs.reduce((a, b) => a + b, 0)).toBe(1000);
    expect(snaps.at(-1)!.iteration).toBe(1000);
    expect(snaps.at(-1)!.stop).toBe('iterations');
    expect(snaps[0].chunkMs).toBe(16);
    // capped by max, and never below 1
    now = 0;
    msPerIteration = 0;
    const capped = cpu();
    const fast: EngineHandle = { ...capped.h, run: (n) => capped.h.run(n) };
    await collect(runLoop(fast, { inputs: capped.x0, schedule: { kind: 'adaptive', iterations: 100, initial: 3, max: 24 }, stopWhenFinished: false }));
    expect(capped.log.runs).toEqual([3, 6, 12, 24, 24, 24, 7]);
    now = 0;
    msPerIteration = 1000;
    const slow = cpu();
    const slowH: EngineHandle = { ...slow.h, run: (n) => { now += n * msPerIteration; slow.h.run(n); } };
    await collect(runLoop(slowH, { inputs: slow.x0, schedule: { kind: 'adaptive', iterations: 6, initial: 2 }, stopWhenFinished: false }));
    expect(slow.log.runs).toEqual([2, 1, 1, 1, 1]);
  });

  it('validates schedules, naming the field', () => {
    const bad: [ReadbackSchedule, RegExp][] = [
      [{ kind: 'every', every: 0, iterations: 10 }, /^schedule\.every:/],
      [{ kind: 'every', every: 5, iterations: 2.5 }, /^schedule\.iterations:/],
      [{ kind: 'points', points: [] }, /^schedule\.points:/],
      [{ kind: 'points', points: [1, 5, 5] }, /^schedule\.points:/],
      [{ kind: 'points', points: [0, 5] }, /^schedule\.points:/],
      [{ kind: 'adaptive', iterations: 10, initial: 0 }, /^schedule\.initial:/],
      [{ kind: 'adaptive', iterations: 10, targetMs: -1 }, /^schedule\.targetMs:/],
      [{ kind: 'nope' } as unknown as ReadbackSchedule, /^schedule\.kind:/],
    ];
    for (const [s, re] of bad) {
      expect(() => validateSchedule(s)).toThrow(DlgInputError);
      expect(() => validateSchedule(s)).toThrow(re);
      const { h } = cpu();
      expect(() => runLoop(h, { schedule: s })).toThrow(re); // before anything runs
    }
  });
});

describe('run loop stops', () => {
  it('an aborted signal runs nothing more (checked before every chunk)', async () => {
    const pre = cpu();
    const ac = new AbortController();
    ac.abort();
    const loop = runLoop(pre.h, { inputs: pre.x0, schedule: { kind: 'every', every: 10, iterations: 100 }, signal: ac.signal });
    expect(await collect(loop)).toEqual([]);
    expect(loop.stoppedBy).toBe('aborted');
    expect(pre.log.runs).toEqual([]);
    expect(pre.log.status).toBe(0);

    const mid = cpu();
    const ac2 = new AbortController();
    const loop2 = runLoop(mid.h, { inputs: mid.x0, schedule: { kind: 'every', every: 10, iterations: 100 }, signal: ac2.signal, stopWhenFinished: false });
    const snaps: RunSnapshot[] = [];
    for await (const s of loop2) {
      snaps.push(s);
      if (s.iteration === 20) ac2.abort();
    }
    expect(snaps.map((s) => s.iteration)).toEqual([10, 20]);
    expect(mid.log.runs).toEqual([10, 10]);
    expect(loop2.stoppedBy).toBe('aborted');
    expect(loop2.iteration).toBe(20);

    // Anything with an `aborted` flag will do (the page's stop button).
    const flag = { stop: false };
    const f = cpu();
    const loop3 = runLoop(f.h, { inputs: f.x0, schedule: { kind: 'points', points: [1, 2, 3, 4] }, signal: { get aborted() { return flag.stop; } }, stopWhenFinished: false });
    for await (const s of loop3) if (s.iteration === 3) flag.stop = true;
    expect(f.log.runs).toEqual([1, 1, 1]);
    expect(loop3.stoppedBy).toBe('aborted');
  });

  it('stopAfter, all finished, and a stop predicate end the loop at that snapshot', async () => {
    // lm from near the truth: the restarts converge within a few steps.
    const lm = () => cpu({ B: 2, D: 4, K: 3, P: 8, noise: 0.05, optimizer: 'lm', lr: 1 });
    const a = lm();
    const all = await collect(runLoop(a.h, { inputs: a.x0, schedule: { kind: 'every', every: 1, iterations: 500 } }));
    const last = all.at(-1)!;
    expect(last.stop).toBe('all-finished');
    expect(last.counts.running).toBe(0);
    expect(last.counts.converged).toBeGreaterThan(0);
    expect(last.iteration).toBeLessThan(500);
    expect(all.slice(0, -1).every((s) => s.counts.running > 0 && s.stop === undefined)).toBe(true);
    expect(a.log.status).toBe(all.length);

    // Restart 0 starts at the truth (converged at its first evaluation), the others far off (adam).
    const b = cpu({ B: 2, D: 4, K: 3, P: 8, noise: 1 });
    b.x0.set(b.xTrue, 0);
    const loopB = runLoop(b.h, { inputs: b.x0, schedule: { kind: 'every', every: 3, iterations: 500 }, stopAfter: 1 });
    const sa = await collect(loopB);
    expect(sa.map((s) => s.iteration)).toEqual([3]);
    expect(sa[0].counts.converged).toBe(1);
    expect(sa[0].counts.running).toBe(7);
    expect(sa[0].stop).toBe('stop-after');
    expect(loopB.stoppedBy).toBe('stop-after');
    expect(b.log.runs).toEqual([3]);

    // Without the all-finished stop the loop runs its budget.
    const c = lm();
    const noStop = await collect(runLoop(c.h, { inputs: c.x0, schedule: { kind: 'every', every: 50, iterations: 200 }, stopWhenFinished: false }));
    expect(noStop.map((s) => s.iteration)).toEqual([50, 100, 150, 200]);
    expect(noStop.at(-1)!.counts.running).toBe(0);

    const d = cpu();
    const loopD = runLoop(d.h, { inputs: d.x0, schedule: { kind: 'every', every: 10, iterations: 100 }, stopWhen: (s) => s.iteration >= 30, stopWhenFinished: false });
    const pd = await collect(loopD);
    expect(pd.map((s) => s.iteration)).toEqual([10, 20, 30]);
    expect(pd[2].stop).toBe('predicate');
    expect(loopD.stoppedBy).toBe('predicate');
  });

  it('a caller that breaks out stops the loop (stoppedBy "break")', async () => {
    const { h, log, x0 } = cpu();
    const loop = runLoop(h, { inputs: x0, schedule: { kind: 'every', every: 5, iterations: 100 }, stopWhenFinished: false });
    for await (const s of loop) if (s.iteration === 15) break;
    expect(loop.stoppedBy).toBe('break');
    expect(log.runs).toEqual([5, 5, 5]);
  });
});

describe('run loop snapshots', () => {
  it('best points only on request, one read per snapshot; elapsed from startTime', async () => {
    const { h, log, x0, engine } = cpu();
    const t0 = performance.now() - 1000;
    const snaps = await collect(runLoop(h, { inputs: x0, schedule: { kind: 'every', every: 25, iterations: 50 }, bestPoints: true, startTime: t0, stopWhenFinished: false }));
    expect(log.best).toBe(2);
    expect(log.status).toBe(2);
    expect(snaps.every((s) => s.bestPoints instanceof Float32Array && s.bestPoints.length === 6 * 2 * 5)).toBe(true);
    expect(snaps[1].bestPoints).toEqual(await engine.readBest());
    expect(snaps[0].bestPoints).not.toEqual(snaps[1].bestPoints);
    expect(snaps[0].elapsedMs).toBeGreaterThanOrEqual(1000);
    expect(snaps[0].status).not.toBe(snaps[1].status); // fresh arrays per read-back
  });

  it('summariseStatus counts each status and takes the first lowest best loss', () => {
    const st: EngineStatus = {
      loss: new Float32Array(6),
      bestLoss: Float32Array.from([3, 1, Infinity, 1, 2, 5]),
      status: Uint32Array.from([0, 1, 2, 3, 0, 1]),
      iterations: new Uint32Array(6),
    };
    expect(summariseStatus(st)).toEqual({ counts: { running: 2, converged: 2, stalled: 1, nonFinite: 1 }, best: { index: 1, loss: 1 } });
    const none: EngineStatus = { ...st, bestLoss: new Float32Array(6).fill(Infinity) };
    expect(summariseStatus(none).best).toEqual({ index: 0, loss: Infinity });
  });
});
