/**
 * Small dense float64 linear algebra for the diagnostics: symmetric eigendecomposition
 * (Householder tridiagonalisation + implicit QL, after EISPACK tred2/tql2 as in JAMA),
 * singular values through the eigenvalues of the smaller Gram matrix, and numerical rank.
 * Matrices are flat row-major Float64Arrays. Browser-safe.
 * Kept over ml-matrix (a dependency): at the study's sizes the values-only eigen solver is 5–10×
 * faster than ml-matrix's EVD and the SVD about 2× (bench/linalg.ts, bench/RESULTS.md).
 */
import { DlgInputError } from '../core/errors.js';

export interface SymmetricEigen {
  /** Eigenvalues in ascending order. */
  values: Float64Array;
  /** When requested: eigenvector j (unit length) is vectors.subarray(j·n, (j+1)·n). */
  vectors?: Float64Array;
}

/**
 * Eigen-decomposition of the symmetric n×n matrix `a` (only the lower triangle is read).
 * O(n³); values-only skips the accumulation of the orthogonal transform (about 3× faster).
 */
export function symmetricEigen(a: ArrayLike<number>, n: number, opts: { vectors?: boolean; onProgress?: (fraction: number) => void } = {}): SymmetricEigen {
  if (!Number.isInteger(n) || n < 1) throw new DlgInputError('n', 'an integer ≥ 1', String(n));
  if (a.length !== n * n) throw new DlgInputError('matrix', `${n}×${n} = ${n * n} entries`, `${a.length}`);
  const want = opts.vectors ?? false;
  // V starts as the lower triangle mirrored; tred2 uses it as workspace. V is stored column-major
  // (V[r][c] at c·n + r) so the O(n³) loops of tred2/tql2 run along contiguous memory.
  const V = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      const v = a[i * n + j];
      if (!Number.isFinite(v)) throw new DlgInputError(`matrix[${i}][${j}]`, 'a finite number', String(v));
      V[i * n + j] = v;
      V[j * n + i] = v;
    }
  }
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  tred2(V, d, e, n, want, opts.onProgress);
  tql2(V, d, e, n, want);
  opts.onProgress?.(1);
  // Ascending, carrying each eigenvector along.
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => d[i] - d[j]);
  const values = Float64Array.from(order, (i) => d[i]);
  if (!want) return { values };
  const vectors = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const src = order[j];
    vectors.set(V.subarray(src * n, (src + 1) * n), j * n);
  }
  return { values, vectors };
}

/** Householder reduction to tridiagonal form (d: diagonal, e: sub-diagonal in e[1..n-1]). */
function tred2(V: Float64Array, d: Float64Array, e: Float64Array, n: number, want: boolean, onProgress?: (fraction: number) => void): void {
  // Step i costs ~i²: the done fraction after it is 1 − (i/n)³ (tql2, O(n²) values-only, is the rest).
  const every = Math.max(1, Math.floor(n / 200));
  for (let j = 0; j < n; j++) d[j] = V[j * n + (n - 1)];
  for (let i = n - 1; i > 0; i--) {
    if (onProgress && i % every === 0) onProgress(0.99 * (1 - (i / n) ** 3));
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]);
    if (scale === 0) {
      e[i] = d[i - 1];
      for (let j = 0; j < i; j++) {
        d[j] = V[j * n + (i - 1)];
        V[j * n + i] = 0;
        V[i * n + j] = 0;
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k] /= scale;
        h += d[k] * d[k];
      }
      let f = d[i - 1];
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      for (let j = 0; j < i; j++) {
        f = d[j];
        V[i * n + j] = f;
        g = e[j] + V[j * n + j] * f;
        for (let k = j + 1; k <= i - 1; k++) {
          g += V[j * n + k] * d[k];
          e[k] += V[j * n + k] * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j] /= h;
        f += e[j] * d[j];
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j] -= hh * d[j];
      for (let j = 0; j < i; j++) {
        f = d[j];
        g = e[j];
        for (let k = j; k <= i - 1; k++) V[j * n + k] -= f * e[k] + g * d[k];
        d[j] = V[j * n + (i - 1)];
        V[j * n + i] = 0;
      }
    }
    d[i] = h;
  }
  if (!want) {
    // The tridiagonal's diagonal sits on V's diagonal; the transform itself is not needed.
    for (let j = 0; j < n; j++) d[j] = V[j * n + j];
    e[0] = 0;
    return;
  }
  for (let i = 0; i < n - 1; i++) {
    V[i * n + (n - 1)] = V[i * n + i];
    V[i * n + i] = 1;
    const h = d[i + 1];
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = V[(i + 1) * n + k] / h;
      for (let j = 0; j <= i; j++) {
        let g = 0;
        for (let k = 0; k <= i; k++) g += V[(i + 1) * n + k] * V[j * n + k];
        for (let k = 0; k <= i; k++) V[j * n + k] -= g * d[k];
      }
    }
    for (let k = 0; k <= i; k++) V[(i + 1) * n + k] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = V[j * n + (n - 1)];
    V[j * n + (n - 1)] = 0;
  }
  V[(n - 1) * n + (n - 1)] = 1;
  e[0] = 0;
}

/** Implicit QL iterations on the tridiagonal (d, e); accumulates rotations into V when wanted. */
function tql2(V: Float64Array, d: Float64Array, e: Float64Array, n: number, want: boolean): void {
  for (let i = 1; i < n; i++) e[i - 1] = e[i];
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]) + Math.abs(e[l]));
    let m = l;
    while (m < n) {
      if (Math.abs(e[m]) <= eps * tst1) break;
      m++;
    }
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > 200) throw new Error('symmetricEigen: QL iteration did not converge');
        let g = d[l];
        let p = (d[l + 1] - g) / (2 * e[l]);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const dl1 = d[l + 1];
        let h = g - d[l];
        for (let i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        p = d[m];
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1];
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = Math.hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          if (want) {
            for (let k = 0; k < n; k++) {
              h = V[(i + 1) * n + k];
              V[(i + 1) * n + k] = s * V[i * n + k] + c * h;
              V[i * n + k] = c * V[i * n + k] - s * h;
            }
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]) > eps * tst1);
    }
    d[l] += f;
    e[l] = 0;
  }
}

/** AᵀA (cols×cols) for the rows×cols matrix A. */
export function gramCols(a: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const g = new Float64Array(cols * cols);
  for (let r = 0; r < rows; r++) {
    const off = r * cols;
    for (let i = 0; i < cols; i++) {
      const ai = a[off + i];
      if (ai === 0) continue;
      const gi = i * cols;
      for (let j = 0; j <= i; j++) g[gi + j] += ai * a[off + j];
    }
  }
  mirrorLower(g, cols);
  return g;
}

/** AAᵀ (rows×rows) for the rows×cols matrix A. */
export function gramRows(a: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const g = new Float64Array(rows * rows);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j <= i; j++) {
      let acc = 0;
      for (let c = 0; c < cols; c++) acc += a[i * cols + c] * a[j * cols + c];
      g[i * rows + j] = acc;
    }
  }
  mirrorLower(g, rows);
  return g;
}

function mirrorLower(g: Float64Array, n: number): void {
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) g[j * n + i] = g[i * n + j];
}

export interface SingularValues {
  /** min(rows, cols) singular values, descending. */
  values: Float64Array;
  /**
   * When requested: right singular vector i (length cols, unit) at rightVectors.subarray(i·cols, …).
   * Through AAᵀ (rows < cols) a vector is only defined for σᵢ > 0; those with σᵢ = 0 are left as zeros.
   */
  rightVectors?: Float64Array;
}

/**
 * Singular values of the rows×cols matrix A from the eigenvalues of its smaller Gram matrix
 * (σᵢ = √λᵢ). Squaring costs precision: σ below about √ε·σ_max ≈ 1.5e-8·σ_max cannot be told
 * from 0, which `rankThreshold` respects.
 */
export function singularValues(a: ArrayLike<number>, rows: number, cols: number, opts: { rightVectors?: boolean } = {}): SingularValues {
  if (a.length !== rows * cols) throw new DlgInputError('matrix', `${rows}×${cols} = ${rows * cols} entries`, `${a.length}`);
  const want = opts.rightVectors ?? false;
  const m = Math.min(rows, cols);
  const values = new Float64Array(m);
  if (cols <= rows) {
    const eig = symmetricEigen(gramCols(a, rows, cols), cols, { vectors: want });
    for (let i = 0; i < m; i++) values[i] = Math.sqrt(Math.max(eig.values[m - 1 - i], 0));
    if (!want) return { values };
    const rightVectors = new Float64Array(m * cols);
    for (let i = 0; i < m; i++) rightVectors.set(eig.vectors!.subarray((m - 1 - i) * cols, (m - i) * cols), i * cols);
    return { values, rightVectors };
  }
  const eig = symmetricEigen(gramRows(a, rows, cols), rows, { vectors: want });
  for (let i = 0; i < m; i++) values[i] = Math.sqrt(Math.max(eig.values[m - 1 - i], 0));
  if (!want) return { values };
  // vᵢ = Aᵀuᵢ/σᵢ, renormalised.
  const rightVectors = new Float64Array(m * cols);
  for (let i = 0; i < m; i++) {
    if (values[i] === 0) continue;
    const u = eig.vectors!.subarray((m - 1 - i) * rows, (m - i) * rows);
    const v = rightVectors.subarray(i * cols, (i + 1) * cols);
    for (let r = 0; r < rows; r++) {
      const ur = u[r];
      for (let c = 0; c < cols; c++) v[c] += a[r * cols + c] * ur;
    }
    normalise(v);
  }
  return { values, rightVectors };
}

export function normalise(v: Float64Array): void {
  let nn = 0;
  for (const x of v) nn += x * x;
  const s = nn > 0 ? 1 / Math.sqrt(nn) : 0;
  for (let i = 0; i < v.length; i++) v[i] *= s;
}

/**
 * The relative threshold below which a singular value counts as zero:
 * 10·σ_max·√(max(rows, cols)·ε). Singular values come from a Gram matrix, whose
 * eigenvalues carry an absolute error of about max(rows, cols)·ε·σ_max²; the factor 10 is margin.
 */
export function rankThreshold(sigmaMax: number, rows: number, cols: number): number {
  return 10 * sigmaMax * Math.sqrt(Math.max(rows, cols) * 2 ** -52);
}

/** Numerical rank: how many singular values (descending) exceed the threshold. */
export function numericalRank(values: ArrayLike<number>, threshold: number): number {
  let r = 0;
  while (r < values.length && values[r] > threshold) r++;
  return r;
}
