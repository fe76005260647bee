/**
 * Defences (src/core/defence.ts) against float64 references, their record in the scenario file, the
 * predicted error under noise (src/analysis/leakage.ts) against Monte-Carlo, and bad input (library and CLI).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { simulateScenario } from '../src/core/datasets.js';
import {
  type Defence, applyDefence, applyDefences, defendScenario, gradientRms, parseDefenceList, parseDefenceSpec, parseDefenceSpecs, pruneKeepCount, roundFp16,
} from '../src/core/defence.js';
import { DlgInputError } from '../src/core/errors.js';
import { predictNoiseLeakage } from '../src/analysis/leakage.js';
import { lmRefine } from '../src/analysis/lm.js';
import type { Gradient } from '../src/core/model.js';
import { victimGradient } from '../src/core/model.js';
import { analyseScenario } from '../src/analysis/reduce.js';
import { Rng, ln } from '../src/core/rng.js';
import { type Scenario, parseScenario, scenarioToJson } from '../src/core/scenario.js';

const dir = mkdtempSync(join(tmpdir(), 'dlg-defence-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const s = simulateScenario({ dataset: 'gaussian', B: 2, D: 5, K: 3, seed: 7, biasScale: 0.3 });
const flat = (g: Gradient) => [...g.W, ...g.b];

function inputError(fn: () => unknown, field: string | RegExp): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(DlgInputError);
    const f = (err as DlgInputError).field;
    if (typeof field === 'string') expect(f).toBe(field);
    else expect(f).toMatch(field);
    return;
  }
  throw new Error('expected a DlgInputError');
}

/** binary16 encoder (round to nearest, ties to even) to bits, and its decoder: an independent reference. */
function toFp16Bits(x: number): number {
  const f32 = new Float32Array(1);
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === 0) return sign;
  // Work on the exact double: find e with 2^e ≤ a < 2^(e+1) by repeated halving/doubling.
  let e = 0;
  let m = a;
  while (m >= 2) { m /= 2; e++; }
  while (m < 1) { m *= 2; e--; }
  void f32;
  if (e < -14) {
    // subnormal: units of 2^-24
    const q = a * 2 ** 24;
    let r = Math.floor(q);
    const frac = q - r;
    if (frac > 0.5 || (frac === 0.5 && r % 2 === 1)) r++;
    return sign | r; // r may reach 1024 = the smallest normal, which the bit pattern encodes correctly
  }
  const q = m * 1024; // 1024..2047.99
  let r = Math.floor(q);
  const frac = q - r;
  if (frac > 0.5 || (frac === 0.5 && r % 2 === 1)) r++;
  if (r === 2048) { r = 1024; e++; }
  if (e > 15) return sign | 0x7c00;
  return sign | ((e + 15) << 10) | (r - 1024);
}
function fromFp16Bits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0) return sign * man * 2 ** -24;
  if (exp === 31) return man ? NaN : sign * Infinity;
  return sign * (1 + man / 1024) * 2 ** (exp - 15);
}

describe('transforms against float64 references', () => {
  it('gaussian noise: v + σ·N(0,1) from Rng(seed), absolute and relative (recorded)', () => {
    const rng = new Rng(11);
    const v = flat(s.gradient);
    const ref = v.map((t) => t + 0.01 * rng.normal());
    const { gradient, record } = applyDefence(s.gradient, { name: 'noise', distribution: 'gaussian', scale: 0.01, relative: false, seed: 11 });
    expect(flat(gradient)).toEqual(ref);
    expect(record).toMatchObject({ absoluteScale: 0.01, relative: false });
    const rel = applyDefence(s.gradient, { name: 'noise', distribution: 'gaussian', scale: 0.5, relative: true, seed: 11 });
    const rms = Math.sqrt(v.reduce((a, t) => a + t * t, 0) / v.length);
    expect((rel.record as { absoluteScale: number }).absoluteScale).toBeCloseTo(0.5 * rms, 15);
    expect(gradientRms(s.gradient)).toBeCloseTo(rms, 15);
  });

  it('laplace noise: inverse-CDF draws, and its scale over many entries', () => {
    const g: Gradient = { W: new Float64Array(20000), b: new Float64Array(1) };
    const out = flat(applyDefence(g, { name: 'noise', distribution: 'laplace', scale: 0.2, relative: false, seed: 3 }).gradient);
    const rng = new Rng(3);
    const ref = out.map(() => {
      for (;;) {
        const u = rng.uniform() - 0.5;
        if (u === -0.5) continue;
        return -0.2 * Math.sign(u) * ln(1 - 2 * Math.abs(u));
      }
    });
    expect(out).toEqual(ref);
    const meanAbs = out.reduce((a, t) => a + Math.abs(t), 0) / out.length; // E|L| = b
    expect(meanAbs).toBeGreaterThan(0.19);
    expect(meanAbs).toBeLessThan(0.21);
  });

  it('prune keeps exactly ⌈(1 − p)·n⌉ entries, the largest |v|, ties to the lower index', () => {
    const n = s.D * s.K + s.K;
    for (const p of [0, 0.05, 0.2, 0.3, 1 / 3, 0.5, 0.7, 0.9, 0.99]) {
      const out = flat(applyDefence(s.gradient, { name: 'prune', p }).gradient);
      const keep = Math.ceil(Number(((1 - p) * n).toFixed(9)));
      expect(pruneKeepCount(p, n)).toBe(keep);
      expect(out.filter((t) => t !== 0).length).toBe(keep);
      const v = flat(s.gradient);
      const kept = v.map((t, i) => (out[i] !== 0 ? Math.abs(t) : Infinity));
      const dropped = v.map((t, i) => (out[i] === 0 ? Math.abs(t) : -Infinity));
      expect(Math.min(...kept)).toBeGreaterThanOrEqual(Math.max(...dropped));
      out.forEach((t, i) => expect(t === 0 || t === v[i]).toBe(true));
    }
    const ties: Gradient = { W: Float64Array.from([1, -1, 1, 0.5]), b: Float64Array.from([1]) };
    expect(flat(applyDefence(ties, { name: 'prune', p: 0.5 }).gradient)).toEqual([1, -1, 1, 0, 0]);
  });

  it('quantize:fp16 matches a binary16 round-trip encoder (normals, subnormals, ties, overflow)', () => {
    const rng = new Rng(5);
    const xs: number[] = [0, 1, -1, 65504, 65519.99, 2 ** -24, 2 ** -25, 3 * 2 ** -25, 2 ** -14, 2 ** -14 * (1 - 2 ** -11), 1 + 2 ** -11, 1 + 3 * 2 ** -11, 0.1, -0.3];
    for (let i = 0; i < 5000; i++) xs.push((rng.uniform() - 0.5) * 2 ** (Math.floor(rng.uniform() * 50) - 30));
    for (const x of xs) expect(roundFp16(x), `x = ${x}`).toBe(fromFp16Bits(toFp16Bits(x)));
    expect(roundFp16(65520)).toBe(Infinity);
    const out = applyDefence(s.gradient, { name: 'quantize', mode: 'fp16' }).gradient;
    expect(flat(out)).toEqual(flat(s.gradient).map((t) => fromFp16Bits(toFp16Bits(t))));
    inputError(() => applyDefence({ W: Float64Array.from([1e6]), b: Float64Array.from([0]) }, { name: 'quantize', mode: 'fp16' }), 'defence');
  });

  it('quantize:bits:k is uniform per tensor: 2^k levels on [min, max], nearest level', () => {
    for (const bits of [1, 2, 4, 8]) {
      const out = applyDefence(s.gradient, { name: 'quantize', mode: 'bits', bits }).gradient;
      for (const [name, src, q] of [['W', s.gradient.W, out.W], ['b', s.gradient.b, out.b]] as const) {
        const lo = Math.min(...src);
        const hi = Math.max(...src);
        const step = (hi - lo) / (2 ** bits - 1);
        src.forEach((t, i) => {
          expect(Math.abs(q[i] - t), `${name}[${i}]`).toBeLessThanOrEqual(step / 2 + 1e-15);
          const level = (q[i] - lo) / step;
          expect(Math.abs(level - Math.round(level))).toBeLessThan(1e-9);
        });
      }
    }
  });

  it('clip scales the whole gradient to norm ≤ c, and leaves a smaller one alone', () => {
    const v = flat(s.gradient);
    const norm = Math.hypot(...v);
    const out = flat(applyDefence(s.gradient, { name: 'clip', c: norm / 4 }).gradient);
    expect(Math.hypot(...out)).toBeCloseTo(norm / 4, 14);
    out.forEach((t, i) => expect(t).toBeCloseTo(v[i] / 4, 15));
    expect(flat(applyDefence(s.gradient, { name: 'clip', c: norm * 2 }).gradient)).toEqual(v);
  });

  it('dpsgd clips per-example gradients computed directly, sums, adds N(0, σ²c²), divides by B', () => {
    const { B, D, K } = s;
    const x = s.inputs!;
    // Per-example gradients of example n's own mean BCE, directly: x_n (σ(z_n) − y_n)ᵀ/K.
    const per: number[][] = [];
    for (let n = 0; n < B; n++) {
      const e: number[] = [];
      for (let k = 0; k < K; k++) {
        let z = s.b[k];
        for (let d = 0; d < D; d++) z += x[n * D + d] * s.W[d * K + k];
        e.push((1 / (1 + Math.exp(-z)) - s.y[n * K + k]) / K);
      }
      const gW: number[] = [];
      for (let d = 0; d < D; d++) for (let k = 0; k < K; k++) gW.push(x[n * D + d] * e[k]);
      per.push([...gW, ...e]);
    }
    const c = Math.min(...per.map((g) => Math.hypot(...g))) * 0.7; // clips both
    const sigma = 0.3;
    const rng = new Rng(9);
    const ref = per[0].map((_, i) => (per.reduce((a, g) => a + (g[i] * c) / Math.hypot(...g), 0) + sigma * c * rng.normal()) / B);
    const out = flat(applyDefence(s.gradient, { name: 'dpsgd', c, sigma, seed: 9 }, { layer: s, inputs: x }).gradient);
    out.forEach((t, i) => expect(t).toBeCloseTo(ref[i], 14));
    // No clipping, no noise: the batch gradient.
    const id = flat(applyDefence(s.gradient, { name: 'dpsgd', c: 1e9, sigma: 0, seed: 1 }, { layer: s, inputs: x }).gradient);
    id.forEach((t, i) => expect(t).toBeCloseTo(flat(victimGradient(s, x))[i], 15));
  });

  it('strength 0 is the identity; the same seed gives the same bytes, another seed other bytes', () => {
    for (const spec of ['noise:gaussian:0', 'noise:laplace:rel:0', 'prune:0']) {
      expect(flat(defendScenario(s, parseDefenceSpecs([spec], 1)).gradient)).toEqual(flat(s.gradient));
    }
    const specs = ['noise:gaussian:rel:0.1', 'noise:laplace:1e-3', 'prune:0.3', 'quantize:bits:6', 'clip:0.05'];
    const bytes = (seed: number) => JSON.stringify(scenarioToJson(defendScenario(s, parseDefenceSpecs(specs, seed))));
    expect(bytes(4)).toBe(bytes(4));
    expect(bytes(4)).not.toBe(bytes(5));
    const dp = (seed: number) => JSON.stringify(scenarioToJson(defendScenario(s, parseDefenceSpecs(['dpsgd:0.1:1', 'quantize:fp16'], seed))));
    expect(dp(2)).toBe(dp(2));
  });
});

describe('the defence field of a scenario', () => {
  it('round-trips, and a file without its gradient recomputes the defended one from the seeds', () => {
    const d = defendScenario(s, parseDefenceSpecs(['dpsgd:0.1:0.5', 'noise:gaussian:rel:0.01', 'prune:0.2'], 3));
    const json = scenarioToJson(d);
    expect(json.defence).toEqual(d.defence);
    expect(json.defence![1]).toMatchObject({ name: 'noise', relative: true, scale: 0.01, seed: 4 });
    const back = parseScenario(JSON.parse(JSON.stringify(json)));
    expect(back.defence).toEqual(d.defence);
    expect(flat(back.gradient)).toEqual(flat(d.gradient));
    const { gradient: _g, ...noGradient } = json;
    void _g;
    expect(flat(parseScenario(JSON.parse(JSON.stringify(noGradient))).gradient)).toEqual(flat(d.gradient));
  });

  it('a malformed defence field is a DlgInputError naming it', () => {
    const base = scenarioToJson(s);
    const bad = (defence: unknown) => () => parseScenario({ ...base, defence });
    inputError(bad({ name: 'prune' }), 'defence');
    inputError(bad([{ name: 'blur', p: 1 }]), 'defence[0].name');
    inputError(bad([7]), 'defence[0]');
    inputError(bad([{ name: 'prune', p: 1 }]), 'defence[0].p');
    inputError(bad([{ name: 'prune', p: '0.2' }]), 'defence[0].p');
    inputError(bad([{ name: 'noise', distribution: 'gaussian', scale: -1, relative: false, seed: 1 }]), 'defence[0].scale');
    inputError(bad([{ name: 'noise', distribution: 'cauchy', scale: 1, relative: false, seed: 1 }]), 'defence[0].distribution');
    inputError(bad([{ name: 'noise', distribution: 'gaussian', scale: 1, seed: 1 }]), 'defence[0].relative');
    inputError(bad([{ name: 'noise', distribution: 'gaussian', scale: 1, relative: true, seed: -1 }]), 'defence[0].seed');
    inputError(bad([{ name: 'quantize', mode: 'bits', bits: 33 }]), 'defence[0].bits');
    inputError(bad([{ name: 'clip', c: 0 }]), 'defence[0].c');
    inputError(bad([{ name: 'prune', p: 0.1, q: 2 }]), 'defence[0].q');
    inputError(bad([{ name: 'prune', p: 0.1 }, { name: 'dpsgd', c: 1, sigma: 1, seed: 1 }]), 'defence[1].name');
  });

  it('bad command-line defences name --defence', () => {
    for (const spec of ['blur:1', 'prune:1', 'prune:-0.1', 'noise:gaussian:-1', 'noise:gaussian:rel:-1', 'noise:laplace', 'quantize:bits:0', 'quantize:bits:33', 'quantize:bits:2.5', 'clip:0', 'dpsgd:1:-1', 'noise:gaussian:1:2']) {
      inputError(() => parseDefenceSpec(spec, 0), /^--defence/);
    }
    inputError(() => parseDefenceSpecs(['prune:0.1', 'dpsgd:1:1'], 0), '--defence');
    const { inputs: _x, ...noInputs } = s;
    void _x;
    inputError(() => defendScenario(noInputs as Scenario, parseDefenceSpecs(['dpsgd:1:1'], 0)), '--defence');
    inputError(() => applyDefences(s.gradient, [{ name: 'dpsgd', c: 1, sigma: 0, seed: 0 }]), 'defence[0]');
  });
});

describe('predicted error under small noise', () => {
  /** The attack's least-squares point, Monte-Carlo: reduce from the noisy gradient, LM from the projected truth, lift. */
  function monteCarlo(sc: Scenario, sigma: number, trials: number): number {
    let acc = 0;
    for (let t = 0; t < trials; t++) {
      const d = defendScenario(sc, [{ name: 'noise', distribution: 'gaussian', scale: sigma, relative: false, seed: 100 + t } as Defence]);
      const { reduction } = analyseScenario(d);
      let x: Float64Array;
      if (reduction) {
        const c = reduction.project(sc.inputs!);
        lmRefine(reduction.scenario, reduction.scenario.gradient, c, 50, 0);
        x = reduction.lift(c);
      } else {
        x = Float64Array.from(sc.inputs!);
        lmRefine(d, d.gradient, x, 50, 0);
      }
      for (let i = 0; i < x.length; i++) acc += (x[i] - sc.inputs![i]) ** 2;
    }
    return acc / trials;
  }

  it('subspace regime: E‖δx‖²/σ² from the reduced Jacobian, tilt and coupling matches Monte-Carlo, and is ≥ the full J bound', () => {
    const sc = simulateScenario({ dataset: 'gaussian', B: 2, D: 6, K: 3, seed: 4 });
    const p = predictNoiseLeakage(sc);
    expect(p.jacobian).toBe('reduced');
    expect(p.errorSqPerVariance).toBeGreaterThanOrEqual(p.full.errorSqPerVariance * (1 - 1e-9));
    const sigma = 1e-7;
    const mc = monteCarlo(sc, sigma, 300) / sigma ** 2;
    expect(mc / p.errorSqPerVariance).toBeGreaterThan(0.8);
    expect(mc / p.errorSqPerVariance).toBeLessThan(1.25);
    const terms = p.terms!;
    expect(terms.inSubspace + terms.tilt + terms.coupling).toBeCloseTo(p.errorSqPerVariance, 6);
  });

  it('direct regime: E‖δx‖²/σ² = Σ 1/σᵢ²(J) matches Monte-Carlo', () => {
    const sc = simulateScenario({ dataset: 'gaussian', B: 2, D: 2, K: 3, seed: 2 });
    const p = predictNoiseLeakage(sc);
    expect(p.jacobian).toBe('full');
    const sigma = 1e-7;
    const mc = monteCarlo(sc, sigma, 300) / sigma ** 2;
    expect(mc / p.errorSqPerVariance).toBeGreaterThan(0.8);
    expect(mc / p.errorSqPerVariance).toBeLessThan(1.25);
  });
});

describe('CLI', () => {
  function dlg(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(process.execPath, ['dist/node/cli.js', ...args], { env: { ...process.env, XDG_RUNTIME_DIR: '/tmp' } }, (err, stdout, stderr) => {
        const code = err ? (err as { code?: unknown }).code : 0;
        resolve({ code: typeof code === 'number' ? code : -1, stdout, stderr });
      });
    });
  }
  it('dlg defend writes a self-describing, reproducible scenario; bad input exits 2 and writes nothing', async () => {
    const src = join(dir, 's.json');
    writeFileSync(src, JSON.stringify(scenarioToJson(s)));
    const a = join(dir, 'a.json');
    const b = join(dir, 'b.json');
    for (const out of [a, b]) expect((await dlg(['defend', src, '--defence', 'noise:gaussian:rel:1e-2', '--defence', 'prune:0.3', '--seed', '1', '--out', out])).code).toBe(0);
    expect(readFileSync(a, 'utf8')).toBe(readFileSync(b, 'utf8'));
    expect(JSON.parse(readFileSync(a, 'utf8')).defence.map((d: Defence) => d.name)).toEqual(['noise', 'prune']);
    const bad = join(dir, 'bad.json');
    for (const args of [['--defence', 'blur:1'], ['--defence', 'prune:1'], ['--defence', 'noise:gaussian:-1'], ['--defence', 'quantize:bits:40'], ['--defence', 'prune:0.1', '--defence', 'dpsgd:1:1']]) {
      const r = await dlg(['defend', src, ...args, '--out', bad]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/--defence/);
    }
    const { inputs: _x, ...noInputs } = scenarioToJson(s);
    void _x;
    writeFileSync(join(dir, 'n.json'), JSON.stringify(noInputs));
    expect((await dlg(['defend', join(dir, 'n.json'), '--defence', 'dpsgd:1:1', '--out', bad])).code).toBe(2);
    writeFileSync(join(dir, 'm.json'), JSON.stringify({ ...scenarioToJson(s), defence: [{ name: 'prune', p: 2 }] }));
    const m = await dlg(['defend', join(dir, 'm.json'), '--defence', 'prune:0.1', '--out', bad]);
    expect(m.code).toBe(2);
    expect(m.stderr).toMatch(/defence\[0\]\.p/);
    expect((await dlg(['defend', src, '--defence', 'prune:0.1', '--out', src])).code).toBe(2);
    expect(() => readFileSync(bad)).toThrow();
  });
});

void parseDefenceList;

describe('defence sweep', () => {
  it('runs strength × B × optimizer, writes rows with the prediction for Gaussian noise, and resumes', async () => {
    const { defenceStudy, parseDefenceAxis } = await import('../src/node/defence-study.js');
    const out = join(dir, 'sweep');
    const config = {
      dataset: ['digits' as const],
      batch: [1],
      optimizer: ['lm' as const],
      defences: [parseDefenceAxis('noise:gaussian:rel:0,1e-4'), parseDefenceAxis('prune:0,0.9')],
      scenarios: 1,
      restarts: { firstOrder: 2, lm: 2 },
      iterations: { firstOrder: 10, lm: 20 },
      seed: 1,
    };
    const r = await defenceStudy(null, config, { out, plots: false });
    expect(r.ran.length).toBe(4);
    const byDef = new Map(r.results.map((row) => [row.defence, row]));
    expect(byDef.get('noise:gaussian:rel:0')!.successRate).toBe(1);
    const n4 = byDef.get('noise:gaussian:rel:0.0001')!;
    expect(n4.relErr.median / n4.predictedRelErr!).toBeGreaterThan(0.5);
    expect(n4.relErr.median / n4.predictedRelErr!).toBeLessThan(2);
    expect(byDef.get('prune:0.9')!.successRate).toBe(0);
    expect(readFileSync(join(out, 'results.csv'), 'utf8').split('\n')[0]).toMatch(/^key,dataset,B/);
    const again = await defenceStudy(null, config, { out, resume: true, plots: false });
    expect(again.skipped.length).toBe(4);
    expect(again.ran.length).toBe(0);
    expect(() => parseDefenceAxis('prune:0,1.5')).toThrow(DlgInputError);
  });
});
