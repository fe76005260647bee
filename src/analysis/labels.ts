/**
 * Label inference from the shared bias gradient (sigmoid BCE, hard labels; docs/math.md):
 * e_nk ∈ (−1/N, 0) when y_nk = 1 and ∈ (0, 1/N) when y_nk = 0, so with v = N·g_k the number of
 * ones in column k satisfies c₁ ∈ (−v, B − v) ∩ ℤ. At B = 1 this is exact (y_k = 1 ⇔ g_k < 0).
 * For B > 1 the counts may be ambiguous, and the row order never matters to the attack, so the
 * candidate labellings are the multisets of B label rows whose column counts are candidates.
 * Browser-safe.
 */
import { DlgInputError } from '../core/errors.js';
import { type Reduction, normaliser } from '../core/model.js';

/** Slack on the open interval for rounding in the shared gradient (it may come from f32 PyTorch). */
const COUNT_SLACK = 1e-6;

/** How much enumeration work is allowed before declaring the labellings too many to list. */
const ENUMERATION_BUDGET = 2_000_000;

export interface ColumnInference {
  column: number;
  /** v = N·g_k: minus the sum of the column's residuals in units of 1/N. */
  v: number;
  /** Possible numbers of ones in this column, ascending. */
  candidates: number[];
  determined: boolean;
  /** With `nearest` (a defended gradient): no count fitted ∇b exactly, and the nearest one was taken. */
  nearest?: boolean;
}

export interface LabelInference {
  B: number;
  K: number;
  /** True at B = 1, where the sign of ∇b gives the labels exactly. */
  exact: boolean;
  columns: ColumnInference[];
  /** Every column's count is determined (at B = 1 this means the labels are). */
  countsDetermined: boolean;
  /**
   * Candidate labellings up to row order (each B×K, flat row-major, rows sorted descending by
   * their bit pattern), or empty when there are more than `maxLabelings`.
   */
  labelings: Float64Array[];
  /** Number of candidate labellings when known (≤ maxLabelings), else null. */
  count: number | null;
  /** True when the candidates exceed maxLabelings (or the enumeration budget): nothing is attacked. */
  tooMany: boolean;
  maxLabelings: number;
  /** One line for people. */
  summary: string;
  /** Set when rows were constrained to be one-hot (exactly one 1 per row). */
  oneHot?: boolean;
}

/** True when every row of the B×K labels is one-hot (K > 1, entries 0/1, one 1 per row). */
export function isOneHot(y: ArrayLike<number>, B: number, K: number): boolean {
  if (K < 2) return false;
  for (let n = 0; n < B; n++) {
    let ones = 0;
    for (let k = 0; k < K; k++) {
      const v = y[n * K + k];
      if (v !== 0 && v !== 1) return false;
      ones += v;
    }
    if (ones !== 1) return false;
  }
  return true;
}

/** Candidate counts of ones per column from ∇b. */
export function inferColumnCounts(gb: ArrayLike<number>, B: number, K: number, reduction: Reduction, opts: { nearest?: boolean } = {}): ColumnInference[] {
  if (gb.length !== K) throw new DlgInputError('gradient.bias', `length ${K}`, `length ${gb.length}`);
  const N = normaliser(B, K, reduction);
  const cols: ColumnInference[] = [];
  for (let k = 0; k < K; k++) {
    const g = gb[k];
    if (!Number.isFinite(g)) throw new DlgInputError(`gradient.bias[${k}]`, 'a finite number', String(g));
    const v = N * g;
    const slack = COUNT_SLACK * Math.max(1, Math.abs(v));
    const candidates: number[] = [];
    for (let c = 0; c <= B; c++) if (c > -v - slack && c < B - v + slack) candidates.push(c);
    if (candidates.length === 0 && opts.nearest) {
      // A defended (noisy, pruned, clipped) ∇b need not fit any count: take the count nearest to (−v, B − v).
      const c = v > 0 ? 0 : B;
      cols.push({ column: k, v, candidates: [c], determined: true, nearest: true });
      continue;
    }
    if (candidates.length === 0) {
      throw new DlgInputError(
        `gradient.bias[${k}]`,
        `a value with |N·g| < B for a sigmoid-BCE layer with hard labels (N = ${N})`,
        `N·g = ${v}`,
      );
    }
    cols.push({ column: k, v, candidates, determined: candidates.length === 1 });
  }
  return cols;
}

/** Labels at B = 1: y_k = 1 exactly when g_k < 0. */
export function inferSingleLabels(gb: ArrayLike<number>): Float64Array {
  return Float64Array.from(gb, (g) => (g < 0 ? 1 : 0));
}

/**
 * Enumerates multisets of B rows (K-bit patterns) whose column counts lie in the candidate
 * sets, stopping once more than `max` are found or the work budget is spent.
 */
function enumerate(cols: ColumnInference[], B: number, K: number, max: number, oneHot = false): { list: number[][]; overflow: boolean } {
  const lo = cols.map((c) => c.candidates[0]);
  const hi = cols.map((c) => c.candidates[c.candidates.length - 1]);
  const allowed = cols.map((c) => new Set(c.candidates));
  if (K > 30) return { list: [], overflow: true };
  // Row patterns in descending code order: every K-bit pattern, or only the K one-hot ones.
  const codes = oneHot ? Array.from({ length: K }, (_, k) => 2 ** (K - 1 - k)) : Array.from({ length: 2 ** K }, (_, i) => 2 ** K - 1 - i);
  const list: number[][] = [];
  const rows: number[] = [];
  const sums = new Int32Array(K);
  let work = 0;
  let overflow = false;
  // Rows in non-increasing code order, so each multiset is produced once.
  const rec = (from: number): void => {
    if (overflow) return;
    const r = rows.length;
    if (r === B) {
      for (let k = 0; k < K; k++) if (!allowed[k].has(sums[k])) return;
      list.push([...rows]);
      if (list.length > max) overflow = true;
      return;
    }
    const left = B - r - 1; // rows still to choose after this one
    for (let i = from; i < codes.length; i++) {
      const code = codes[i];
      work += K;
      if (work > ENUMERATION_BUDGET) {
        overflow = true;
        return;
      }
      let ok = true;
      for (let k = 0; k < K && ok; k++) {
        const s = sums[k] + ((code >> k) & 1);
        if (s > hi[k] || s + left < lo[k]) ok = false;
      }
      if (!ok) continue;
      for (let k = 0; k < K; k++) sums[k] += (code >> k) & 1;
      rows.push(code);
      rec(i);
      rows.pop();
      for (let k = 0; k < K; k++) sums[k] -= (code >> k) & 1;
      if (overflow) return;
    }
  };
  rec(0);
  return { list, overflow };
}

/** Full inference: per-column counts and, when few enough, the candidate labellings. */
export function inferLabels(
  gb: ArrayLike<number>,
  B: number,
  K: number,
  reduction: Reduction,
  maxLabelings = 16,
  opts: { oneHot?: boolean; nearest?: boolean } = {},
): LabelInference {
  const columns = inferColumnCounts(gb, B, K, reduction, { nearest: opts.nearest });
  const countsDetermined = columns.every((c) => c.determined);
  const oneHot = (opts.oneHot ?? false) && K > 1;
  const base = { B, K, exact: B === 1, columns, countsDetermined, maxLabelings, ...(oneHot ? { oneHot } : {}) };
  if (B === 1) {
    const y = inferSingleLabels(gb);
    return { ...base, labelings: [y], count: 1, tooMany: false, summary: 'B = 1: the sign of ∇b gives every label exactly' };
  }
  const { list, overflow } = enumerate(columns, B, K, maxLabelings, oneHot);
  const ambiguous = columns.filter((c) => !c.determined).map((c) => c.column);
  const counts =
    `${K - ambiguous.length} of ${K} column counts determined by ∇b` +
    (ambiguous.length ? ` (ambiguous: columns ${ambiguous.join(', ')})` : '') +
    (oneHot ? '; rows one-hot' : '');
  if (overflow) {
    return {
      ...base,
      labelings: [],
      count: null,
      tooMany: true,
      summary: `${counts}; more than ${maxLabelings} candidate labellings (up to row order): too many to attack each`,
    };
  }
  const labelings = list.map((codes) => {
    const y = new Float64Array(B * K);
    codes.forEach((code, n) => {
      for (let k = 0; k < K; k++) y[n * K + k] = (code >> k) & 1;
    });
    return y;
  });
  const which = list.length === 1 ? 'the labels are determined up to row order' : `${list.length} candidate labellings (up to row order) remain`;
  return { ...base, labelings, count: list.length, tooMany: false, summary: `${counts}; ${which}` };
}

/** True when two B×K labellings are equal up to a permutation of rows. */
export function sameLabelingUpToOrder(a: ArrayLike<number>, b: ArrayLike<number>, B: number, K: number): boolean {
  const key = (y: ArrayLike<number>) =>
    Array.from({ length: B }, (_, n) => Array.from({ length: K }, (_, k) => y[n * K + k]).join(',')).sort().join(';');
  return key(a) === key(b);
}
