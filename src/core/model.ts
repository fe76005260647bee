/**
 * Float64 CPU reference for the victim layer z = x·W + b with sigmoid + BCE.
 * It is the oracle every WGSL kernel is tested against, and the `--backend cpu` path.
 *
 * Layout (row-major, flat): x[n*D+d] (B×D), W[d*K+k] (D×K), b[k], y[n*K+k] (B×K),
 * gradients G[d*K+k] (D×K) and g[k]. P fake batches stack as x[p*B*D + n*D + d].
 */

export type Reduction = 'mean' | 'sum';
export type MatchLoss = 'l2' | 'cosine';

/** What the attacker knows: the layer, the labels and the shared gradient. */
export interface Layer {
  B: number;
  D: number;
  K: number;
  W: ArrayLike<number>;
  b: ArrayLike<number>;
  y: ArrayLike<number>;
  reduction: Reduction;
}

export interface Gradient {
  W: Float64Array; // D×K
  b: Float64Array; // K
}

export function sigmoid(z: number): number {
  if (z >= 0) return 1 / (1 + Math.exp(-z));
  const e = Math.exp(z);
  return e / (1 + e);
}

/** log(1 + e^z) without overflow. */
export function softplus(z: number): number {
  return Math.max(z, 0) + Math.log1p(Math.exp(-Math.abs(z)));
}

/** N in e_n = (σ(z_n) − y_n)/N: B·K for `mean`, 1 for `sum`. */
export function normaliser(B: number, K: number, reduction: Reduction): number {
  return reduction === 'mean' ? B * K : 1;
}

/** z = x·W + b for one batch starting at offset `off` of x. */
export function forward(layer: Layer, x: ArrayLike<number>, off = 0): Float64Array {
  const { B, D, K, W, b } = layer;
  const z = new Float64Array(B * K);
  for (let n = 0; n < B; n++) {
    for (let k = 0; k < K; k++) {
      let acc = b[k];
      for (let d = 0; d < D; d++) acc += x[off + n * D + d] * W[d * K + k];
      z[n * K + k] = acc;
    }
  }
  return z;
}

/** Stable BCE on logits: softplus(z) − y·z, reduced by mean over B·K or by sum. */
export function bceLoss(layer: Layer, x: ArrayLike<number>, off = 0): number {
  const z = forward(layer, x, off);
  let acc = 0;
  for (let i = 0; i < z.length; i++) acc += softplus(z[i]) - layer.y[i] * z[i];
  return acc / normaliser(layer.B, layer.K, layer.reduction);
}

/** e_n = (σ(z_n) − y_n)/N and s_n = σ(1−σ)/N for one batch. */
export function residuals(layer: Layer, x: ArrayLike<number>, off = 0): { e: Float64Array; s: Float64Array } {
  const z = forward(layer, x, off);
  const N = normaliser(layer.B, layer.K, layer.reduction);
  const e = new Float64Array(z.length);
  const s = new Float64Array(z.length);
  for (let i = 0; i < z.length; i++) {
    const p = sigmoid(z[i]);
    e[i] = (p - layer.y[i]) / N;
    s[i] = (p * (1 - p)) / N;
  }
  return { e, s };
}

/** Σ_n x_n e_nᵀ and Σ_n e_n for given residuals e (B×K). */
function outerSums(layer: Layer, x: ArrayLike<number>, off: number, e: ArrayLike<number>): Gradient {
  const { B, D, K } = layer;
  const gW = new Float64Array(D * K);
  const gb = new Float64Array(K);
  for (let n = 0; n < B; n++) {
    for (let k = 0; k < K; k++) {
      const enk = e[n * K + k];
      gb[k] += enk;
      for (let d = 0; d < D; d++) gW[d * K + k] += x[off + n * D + d] * enk;
    }
  }
  return { W: gW, b: gb };
}

/** The gradient the victim shares: ∇W = Σ_n x_n e_nᵀ, ∇b = Σ_n e_n. */
export function victimGradient(layer: Layer, x: ArrayLike<number>, off = 0): Gradient {
  return outerSums(layer, x, off, residuals(layer, x, off).e);
}

export interface ObjectiveValue {
  loss: number;
  grad: Float64Array; // B×D, ∇ₓ′ of the matching loss
}

/**
 * Back-propagates an adjoint (M, m) = ∂L/∂(∇W′, ∇b′) to the fake inputs:
 * ∇_{x′_n} L = M e_n + W (s_n ⊙ (Mᵀx′_n + m)).
 */
function adjointToInputs(
  layer: Layer,
  x: ArrayLike<number>,
  off: number,
  e: Float64Array,
  s: Float64Array,
  M: Float64Array,
  m: Float64Array,
): Float64Array {
  const { B, D, K, W } = layer;
  const grad = new Float64Array(B * D);
  const t = new Float64Array(K);
  for (let n = 0; n < B; n++) {
    for (let k = 0; k < K; k++) {
      let acc = m[k];
      for (let d = 0; d < D; d++) acc += M[d * K + k] * x[off + n * D + d];
      t[k] = s[n * K + k] * acc;
    }
    for (let d = 0; d < D; d++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc += M[d * K + k] * e[n * K + k] + W[d * K + k] * t[k];
      grad[n * D + d] = acc;
    }
  }
  return grad;
}

/**
 * DLG's L_r = ‖∇W(x′) − G‖² + ‖∇b(x′) − g‖² and its closed-form gradient
 * ∇_{x′_n} L_r = 2·ΔW·e_n + 2·W·(s_n ⊙ (ΔWᵀx′_n + Δb)).
 */
export function matchL2(layer: Layer, target: Gradient, x: ArrayLike<number>, off = 0): ObjectiveValue {
  const { D, K } = layer;
  const { e, s } = residuals(layer, x, off);
  const { W: dW, b: db } = outerSums(layer, x, off, e);
  let loss = 0;
  for (let i = 0; i < D * K; i++) {
    dW[i] -= target.W[i];
    loss += dW[i] * dW[i];
  }
  for (let k = 0; k < K; k++) {
    db[k] -= target.b[k];
    loss += db[k] * db[k];
  }
  for (let i = 0; i < D * K; i++) dW[i] *= 2;
  for (let k = 0; k < K; k++) db[k] *= 2;
  return { loss, grad: adjointToInputs(layer, x, off, e, s, dW, db) };
}

/**
 * Cosine matching (Geiping et al. 2020): L = 1 − ⟨v, t⟩ / (‖v‖‖t‖), with v = (∇W′, ∇b′), t = (G, g).
 * When ‖v‖ = 0 the loss is 1 and the gradient is taken as 0.
 */
export function matchCosine(layer: Layer, target: Gradient, x: ArrayLike<number>, off = 0): ObjectiveValue {
  const { D, K } = layer;
  const { e, s } = residuals(layer, x, off);
  const v = outerSums(layer, x, off, e);
  let vt = 0;
  let vv = 0;
  let tt = 0;
  for (let i = 0; i < D * K; i++) {
    vt += v.W[i] * target.W[i];
    vv += v.W[i] * v.W[i];
    tt += target.W[i] * target.W[i];
  }
  for (let k = 0; k < K; k++) {
    vt += v.b[k] * target.b[k];
    vv += v.b[k] * v.b[k];
    tt += target.b[k] * target.b[k];
  }
  const nv = Math.sqrt(vv);
  const nt = Math.sqrt(tt);
  if (nv === 0 || nt === 0) return { loss: 1, grad: new Float64Array(layer.B * D) };
  const loss = 1 - vt / (nv * nt);
  // ∂L/∂v = −t/(‖v‖‖t‖) + ⟨v,t⟩ v/(‖v‖³‖t‖)
  const a = -1 / (nv * nt);
  const c = vt / (nv * nv * nv * nt);
  const M = new Float64Array(D * K);
  const m = new Float64Array(K);
  for (let i = 0; i < D * K; i++) M[i] = a * target.W[i] + c * v.W[i];
  for (let k = 0; k < K; k++) m[k] = a * target.b[k] + c * v.b[k];
  return { loss, grad: adjointToInputs(layer, x, off, e, s, M, m) };
}

export function matchLoss(kind: MatchLoss, layer: Layer, target: Gradient, x: ArrayLike<number>, off = 0): ObjectiveValue {
  return kind === 'cosine' ? matchCosine(layer, target, x, off) : matchL2(layer, target, x, off);
}

/** L_r and ∇ₓ′L_r for P stacked fake batches (x of length P·B·D). */
export function matchL2Batched(
  layer: Layer,
  target: Gradient,
  x: ArrayLike<number>,
  P: number,
): { loss: Float64Array; grad: Float64Array } {
  const BD = layer.B * layer.D;
  const loss = new Float64Array(P);
  const grad = new Float64Array(P * BD);
  for (let p = 0; p < P; p++) {
    const r = matchL2(layer, target, x, p * BD);
    loss[p] = r.loss;
    grad.set(r.grad, p * BD);
  }
  return { loss, grad };
}

/** ‖G‖² + ‖g‖²: the scale that relative tolerances refer to. */
export function gradientNormSq(target: Gradient): number {
  let acc = 0;
  for (const v of target.W) acc += v * v;
  for (const v of target.b) acc += v * v;
  return acc;
}

/**
 * The Jacobian of g(x) = (vec ∇W, ∇b) at x, row-major (D·K+K)×(B·D):
 * row d·K+k is ∇W[d,k], row D·K+k is ∇b[k]; column n·D+d′ is x_n[d′].
 * ∂∇W[d,k]/∂x_n[d′] = δ_{dd′}·e_nk + x_n[d]·s_nk·W[d′,k];  ∂∇b[k]/∂x_n[d′] = s_nk·W[d′,k].
 */
export function jacobian(layer: Layer, x: ArrayLike<number>): Float64Array {
  const { B, D, K, W } = layer;
  const cols = B * D;
  const rows = D * K + K;
  const J = new Float64Array(rows * cols);
  const { e, s } = residuals(layer, x);
  for (let n = 0; n < B; n++) {
    for (let k = 0; k < K; k++) {
      const enk = e[n * K + k];
      const snk = s[n * K + k];
      for (let dp = 0; dp < D; dp++) {
        const c = n * D + dp;
        const sw = snk * W[dp * K + k];
        J[(D * K + k) * cols + c] = sw;
        for (let d = 0; d < D; d++) J[(d * K + k) * cols + c] = x[n * D + d] * sw + (d === dp ? enk : 0);
      }
    }
  }
  return J;
}
