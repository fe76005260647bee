/**
 * Host linear algebra for `dlg diagnose` and the study: the hand-written symmetric eigen solver and
 * Gram-based SVD (src/analysis/linalg.ts) against ml-matrix (EVD with assumeSymmetric, SVD), same run, on the
 * matrices the diagnosis really decomposes at the study's sizes. JSON lines; medians of --reps runs.
 *   node scripts/run-ts.mjs bench/linalg.ts [--reps 5]
 */
import { EigenvalueDecomposition, Matrix, SingularValueDecomposition } from 'ml-matrix';
import { simulateScenario } from '../src/core/datasets.js';
import { jacobianAtTruth, jacobianGram } from '../src/analysis/diagnose.js';
import { singularValues, symmetricEigen } from '../src/analysis/linalg.js';
import { benchArgs, emit, machine, median } from './common.js';

const args = benchArgs();
const reps = Number(args.reps ?? 5);

function time(f: () => unknown): number {
  const t: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    f();
    t.push(performance.now() - t0);
  }
  return median(t);
}

function toMatrix(a: Float64Array, rows: number, cols: number): Matrix {
  const m = new Matrix(rows, cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) m.set(r, c, a[r * cols + c]);
  return m;
}

for (const [B, D, K] of [
  [8, 16, 10],
  [16, 64, 10],
] as const) {
  const s = simulateScenario({ dataset: 'gaussian', B, D, K, seed: 1 });
  // diagnose(): eigenvalues of the smaller Gram matrix of J.
  const { gram, n } = jacobianGram(s, s.inputs!);
  const G = toMatrix(gram, n, n);
  const mine = time(() => symmetricEigen(gram, n));
  const ml = time(() => new EigenvalueDecomposition(G, { assumeSymmetric: true }).realEigenvalues);
  const a = symmetricEigen(gram, n).values;
  const b = Float64Array.from(new EigenvalueDecomposition(G, { assumeSymmetric: true }).realEigenvalues).sort();
  let diff = 0;
  for (let i = 0; i < n; i++) diff = Math.max(diff, Math.abs(a[i] - b[i]));
  emit('linalg.eigenvalues', { B, D, K, n, handWrittenMs: mine, mlMatrixMs: ml, ratio: ml / mine, maxAbsDiff: diff / Math.abs(a[n - 1]), machine: machine() });
  // flattestDirections(): singular values and right vectors of J.
  const rows = D * K + K;
  const cols = B * D;
  const J = jacobianAtTruth(s);
  const JM = toMatrix(J, rows, cols);
  const mineSvd = time(() => singularValues(J, rows, cols, { rightVectors: true }));
  const mlSvd = time(() => new SingularValueDecomposition(JM, { computeLeftSingularVectors: false, autoTranspose: true }).rightSingularVectors);
  emit('linalg.svd', { B, D, K, rows, cols, handWrittenMs: mineSvd, mlMatrixMs: mlSvd, ratio: mlSvd / mineSvd, machine: machine() });
}
