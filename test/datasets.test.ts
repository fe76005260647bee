import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadDataset } from '../src/node/data-node.js';
import { type DatasetRows, defaultScenario, labelCounts, parseDatasetCsv, simulateScenario } from '../src/core/datasets.js';
import { DlgInputError } from '../src/core/errors.js';
import { bceLoss, victimGradient } from '../src/core/model.js';
import { expectClose } from './helpers.js';

function expectInputError(fn: () => unknown, field: string): DlgInputError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(DlgInputError);
    expect((err as DlgInputError).field).toBe(field);
    expect((err as DlgInputError).message).toContain('expected');
    return err as DlgInputError;
  }
  throw new Error(`expected a DlgInputError naming ${field}`);
}

/** Index of the table row equal to `row` (scaled), or -1. */
function findRow(data: DatasetRows, row: ArrayLike<number>, scale: number): number {
  const D = data.cols;
  outer: for (let r = 0; r < data.labels.length; r++) {
    for (let d = 0; d < D; d++) if (data.features[r * D + d] * scale !== row[d]) continue outer;
    return r;
  }
  return -1;
}

describe('shipped data sets', () => {
  it('iris: 150 rows × 4 cm measurements, 50 per class', () => {
    const iris = loadDataset('iris');
    expect(iris.labels.length).toBe(150);
    expect(iris.cols).toBe(4);
    expect(iris.classes).toBe(3);
    expect(iris.features.length).toBe(600);
    expect(Array.from(iris.features.slice(0, 4))).toEqual([5.1, 3.5, 1.4, 0.2]);
    const counts = [0, 0, 0];
    for (const l of iris.labels) counts[l]++;
    expect(counts).toEqual([50, 50, 50]);
    for (const v of iris.features) expect(v > 0 && v < 8).toBe(true);
  });

  it('digits: 1797 rows × 64 grey levels in 0..16, labels 0..9', () => {
    const digits = loadDataset('digits');
    expect(digits.labels.length).toBe(1797);
    expect(digits.cols).toBe(64);
    expect(digits.classes).toBe(10);
    let max = 0;
    for (const v of digits.features) {
      expect(Number.isInteger(v) && v >= 0 && v <= 16).toBe(true);
      max = Math.max(max, v);
    }
    expect(max).toBe(16);
    const counts = new Array(10).fill(0);
    for (const l of digits.labels) counts[l]++;
    for (const c of counts) expect(c).toBeGreaterThan(150);
  });

  it('parseDatasetCsv rejects damaged lines, naming the line', () => {
    expectInputError(() => parseDatasetCsv('iris', '150,4,setosa,versicolor,virginica\n1,2,3,4,0\n1,2,3,0\n'), 'iris.csv line 3');
    expectInputError(() => parseDatasetCsv('iris', '1,2,x,4,0\n'), 'iris.csv line 1 column 3');
    expectInputError(() => parseDatasetCsv('iris', '1,2,3,4,3\n'), 'iris.csv line 1 label');
    expectInputError(() => parseDatasetCsv('iris', ''), 'iris.csv');
  });

  it('datasets.ts stays browser-safe (no Node imports)', () => {
    const src = readFileSync(new URL('../src/core/datasets.ts', import.meta.url), 'utf8');
    expect(src).not.toMatch(/from '(node:|fs|zlib|path)/);
  });
});

describe('simulateScenario', () => {
  it('gaussian: any D and K, 0/1 labels, W ~ N(0, 1/D), b = 0', () => {
    const s = simulateScenario({ dataset: 'gaussian', B: 5, D: 200, K: 7, seed: 11 });
    expect([s.B, s.D, s.K]).toEqual([5, 200, 7]);
    expect(s.W.length).toBe(1400);
    expect(s.inputs!.length).toBe(1000);
    for (const v of s.y) expect(v === 0 || v === 1).toBe(true);
    expect(labelCounts(s).reduce((a, c) => a + c, 0)).toBeGreaterThan(0);
    let m = 0;
    let v = 0;
    for (const w of s.W) m += w / s.W.length;
    for (const w of s.W) v += (w - m) ** 2 / s.W.length;
    expect(Math.abs(m)).toBeLessThan(0.01);
    expect(v * s.D).toBeGreaterThan(0.85);
    expect(v * s.D).toBeLessThan(1.15);
    let xv = 0;
    for (const x of s.inputs!) xv += (x * x) / s.inputs!.length;
    expect(xv).toBeGreaterThan(0.85);
    expect(xv).toBeLessThan(1.15);
    expect(Array.from(s.b)).toEqual(new Array(7).fill(0));
  });

  it('gaussian defaults to D = K = 1; defaultScenario is B=2, D=1, K=1, seed 1', () => {
    const s = simulateScenario({ dataset: 'gaussian', B: 3, seed: 4 });
    expect([s.D, s.K]).toEqual([1, 1]);
    const d = defaultScenario();
    expect([d.B, d.D, d.K, d.reduction]).toEqual([2, 1, 1, 'mean']);
    expect(d).toEqual(simulateScenario({ dataset: 'gaussian', B: 2, D: 1, K: 1, seed: 1 }));
  });

  it('iris: D=4, K=3, one-hot targets, distinct rows of the table', () => {
    const iris = loadDataset('iris');
    const s = simulateScenario({ dataset: 'iris', B: 20, seed: 5, data: iris });
    expect([s.B, s.D, s.K]).toEqual([20, 4, 3]);
    for (let n = 0; n < s.B; n++) {
      const yRow = Array.from(s.y.slice(n * 3, n * 3 + 3));
      expect(yRow.filter((v) => v === 1).length).toBe(1);
      expect(yRow.filter((v) => v === 0).length).toBe(2);
      const r = findRow(iris, s.inputs!.slice(n * 4, n * 4 + 4), 1);
      expect(r).toBeGreaterThanOrEqual(0);
      expect(yRow[iris.labels[r]]).toBe(1);
    }
    // Rows are drawn without replacement: a batch of all 150 rows holds every class 50 times.
    const all = simulateScenario({ dataset: 'iris', B: 150, seed: 5, data: iris });
    expect(labelCounts(all)).toEqual([50, 50, 50]);
    expect(() => simulateScenario({ dataset: 'iris', B: 151, seed: 5, data: iris })).toThrow(DlgInputError);
  });

  it('digits: D=64, K=10, images scaled to [0,1] by 1/16, one-hot targets', () => {
    const digits = loadDataset('digits');
    const s = simulateScenario({ dataset: 'digits', B: 8, seed: 2, data: digits, reduction: 'sum' });
    expect([s.B, s.D, s.K, s.reduction]).toEqual([8, 64, 10, 'sum']);
    let max = 0;
    for (const v of s.inputs!) {
      expect(v >= 0 && v <= 1).toBe(true);
      expect(Number.isInteger(v * 16)).toBe(true);
      max = Math.max(max, v);
    }
    expect(max).toBe(1);
    for (let n = 0; n < s.B; n++) {
      const yRow = Array.from(s.y.slice(n * 10, n * 10 + 10));
      expect(yRow.reduce((a, c) => a + c, 0)).toBe(1);
      const r = findRow(digits, s.inputs!.slice(n * 64, n * 64 + 64), 1 / 16);
      expect(r).toBeGreaterThanOrEqual(0);
      expect(yRow[digits.labels[r]]).toBe(1);
    }
  });

  it('the same seed gives the same bytes; another seed does not', () => {
    const iris = loadDataset('iris');
    for (const opts of [
      { dataset: 'gaussian' as const, B: 4, D: 3, K: 2, seed: 9 },
      { dataset: 'iris' as const, B: 6, seed: 9, data: iris },
      { dataset: 'digits' as const, B: 3, seed: 9, data: loadDataset('digits') },
    ]) {
      const a = simulateScenario(opts);
      const b = simulateScenario(opts);
      expect(Buffer.from(a.W.buffer)).toEqual(Buffer.from(b.W.buffer));
      expect(Buffer.from(a.inputs!.buffer)).toEqual(Buffer.from(b.inputs!.buffer));
      expect(Buffer.from(a.y.buffer)).toEqual(Buffer.from(b.y.buffer));
      expect(Buffer.from(a.gradient.W.buffer)).toEqual(Buffer.from(b.gradient.W.buffer));
      const c = simulateScenario({ ...opts, seed: 10 });
      expect(Buffer.from(c.W.buffer)).not.toEqual(Buffer.from(a.W.buffer));
    }
  });

  it('biasScale draws b after W and the batch, leaving them unchanged', () => {
    const a = simulateScenario({ dataset: 'gaussian', B: 3, D: 2, K: 4, seed: 3 });
    const b = simulateScenario({ dataset: 'gaussian', B: 3, D: 2, K: 4, seed: 3, biasScale: 0.5 });
    expect(b.W).toEqual(a.W);
    expect(b.inputs).toEqual(a.inputs);
    expect(b.y).toEqual(a.y);
    expect(Array.from(b.b).every((v) => v !== 0)).toBe(true);
    expect(Array.from(b.b).every((v) => Math.abs(v) < 0.5 * 5)).toBe(true);
  });

  it('the shared gradient is the victim gradient and matches finite differences of the BCE loss', () => {
    const iris = loadDataset('iris');
    for (const s of [
      simulateScenario({ dataset: 'gaussian', B: 3, D: 5, K: 2, seed: 21, biasScale: 0.3 }),
      simulateScenario({ dataset: 'iris', B: 4, seed: 21, data: iris, reduction: 'sum' }),
    ]) {
      const g = victimGradient(s, s.inputs!);
      expect(s.gradient.W).toEqual(g.W);
      expect(s.gradient.b).toEqual(g.b);
      const h = 1e-6;
      const fdW = new Float64Array(s.D * s.K);
      for (let i = 0; i < fdW.length; i++) {
        const Wp = s.W.slice();
        Wp[i] += h;
        const Wm = s.W.slice();
        Wm[i] -= h;
        fdW[i] = (bceLoss({ ...s, W: Wp }, s.inputs!) - bceLoss({ ...s, W: Wm }, s.inputs!)) / (2 * h);
      }
      const fdb = new Float64Array(s.K);
      for (let k = 0; k < s.K; k++) {
        const bp = s.b.slice();
        bp[k] += h;
        const bm = s.b.slice();
        bm[k] -= h;
        fdb[k] = (bceLoss({ ...s, b: bp }, s.inputs!) - bceLoss({ ...s, b: bm }, s.inputs!)) / (2 * h);
      }
      expectClose(s.gradient.W, fdW, { abs: 1e-8, rel: 1e-6 }, 'gradient.W vs finite differences');
      expectClose(s.gradient.b, fdb, { abs: 1e-8, rel: 1e-6 }, 'gradient.b vs finite differences');
    }
  });

  it('bad options name the field', () => {
    const iris = loadDataset('iris');
    expectInputError(() => simulateScenario({ dataset: 'iris', B: 2, D: 5, seed: 1, data: iris }), 'D');
    expectInputError(() => simulateScenario({ dataset: 'digits', B: 2, K: 3, seed: 1, data: loadDataset('digits') }), 'K');
    expectInputError(() => simulateScenario({ dataset: 'iris', B: 151, seed: 1, data: iris }), 'B');
    expectInputError(() => simulateScenario({ dataset: 'iris', B: 2, seed: 1 }), 'data');
    expectInputError(() => simulateScenario({ dataset: 'digits', B: 2, seed: 1, data: iris }), 'data');
    expectInputError(() => simulateScenario({ dataset: 'mnist' as never, B: 2, seed: 1 }), 'dataset');
    for (const B of [0, -1, 1.5, NaN]) expectInputError(() => simulateScenario({ dataset: 'gaussian', B, seed: 1 }), 'B');
    for (const D of [0, -2, 2.5]) expectInputError(() => simulateScenario({ dataset: 'gaussian', B: 1, D, seed: 1 }), 'D');
    for (const K of [0, -2, 2.5]) expectInputError(() => simulateScenario({ dataset: 'gaussian', B: 1, K, seed: 1 }), 'K');
    for (const seed of [-1, 0.5, 2 ** 32]) expectInputError(() => simulateScenario({ dataset: 'gaussian', B: 1, seed }), 'seed');
    expectInputError(() => simulateScenario({ dataset: 'gaussian', B: 1, seed: 1, biasScale: -1 }), 'biasScale');
    expectInputError(() => simulateScenario({ dataset: 'gaussian', B: 1, seed: 1, reduction: 'max' as never }), 'reduction');
  });
});
