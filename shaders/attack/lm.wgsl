// DLG attack with Levenberg–Marquardt: ONE INVOCATION PER RESTART. One iteration is exactly the one
// src/analysis/lm.ts documents (and src/attack/engine-cpu.ts runs in float64), in f32:
//   evaluate (reused from an accepted trial) → best → converged? → non-finite? →
//   A = JᵀJ from the structured formula (O(n²K), J never formed) → Moré scaling →
//   Cholesky of A + λ·D → δ → trial → gain ratio ρ → Nielsen's λ/ν update → stalled (status 3)?
// n = CB·CD unknowns. The vectors (x, gradient, δ, …) live in private arrays; the lower triangle of
// A + λ·D (packed, row i at i(i+1)/2) is factored in place in a storage-buffer scratch interleaved by
// restart (scr[p·chunk + restart − first]), which the host sizes for one dispatch's restarts (chunk) and
// reuses from dispatch to dispatch. (A private-array variant for n ≤ 64 ran 1.15–1.38× this one on
// lavapipe, same run, which does not earn a second kernel: docs/kernels.md.)
// Every decision is per invocation: a NaN, a failed pivot or λ overflow stops only its own restart.

// MAX_N, MAX_K, MAX_DK, MAX_BK, LAMBDA_MIN, LAMBDA_MAX, DIAG_FLOOR: injected by src/gpu/kernels.ts (the kernel registry), from the caps the host checks.

override WG: u32 = 64u;
override CB: u32 = 2u;
override CD: u32 = 1u;
override CK: u32 = 1u;

struct LmParams {
  total: u32,      // restarts in all
  P: u32,          // restarts per group
  iters: u32,      // iterations in this dispatch
  first: u32,      // first restart of this dispatch
  count: u32,      // restarts in this dispatch
  chunk: u32,      // restart stride of the scratch
  dispatchX: u32,
  gStride: u32,    // floats per group in grp
  invN: f32,       // 1/N of the reduction
  lambda0: f32,    // unused by the kernel (the host writes λ₀ into opt); kept for the layout's sake
  _pad0: f32,
  _pad1: f32,
}

struct RestartStat { loss: f32, bestLoss: f32, status: u32, iters: u32 }

@group(0) @binding(0) var<uniform> prm: LmParams;
@group(0) @binding(1) var<storage, read> lay: array<f32>;       // W (D×K) then b (K)
@group(0) @binding(2) var<storage, read> grp: array<f32>;       // per group: y (B×K), G (D×K), g (K), tolAbs
@group(0) @binding(3) var<storage, read_write> xs: array<f32>;  // current x, total×n
@group(0) @binding(4) var<storage, read_write> bests: array<f32>;
@group(0) @binding(5) var<storage, read_write> stat: array<RestartStat>;
// λ (total), ν (total), have (total), f (total), then the cached gradient g[i·total + r]
@group(0) @binding(6) var<storage, read_write> opt: array<f32>;
@group(0) @binding(7) var<storage, read_write> scr: array<f32>;

var<private> x: array<f32, MAX_N>;
var<private> xt: array<f32, MAX_N>;    // the point evaluate() works on
var<private> best: array<f32, MAX_N>;
var<private> gx: array<f32, MAX_N>;    // ∇L_r at x
var<private> gt: array<f32, MAX_N>;    // ∇L_r at xt
var<private> dl: array<f32, MAX_N>;    // δ
var<private> dg: array<f32, MAX_N>;    // Moré scaling D_ii
var<private> ld: array<f32, MAX_N>;    // the Cholesky factor's diagonal
// W, b, y, G, g, e, s and the u-sums of one restart: attack/restart.wgsl.
var<private> u1: array<f32, MAX_N>;
var<private> u2: array<f32, MAX_N>;
var<private> slot: u32;                // this restart's column in the scratch

fn mGet(p: u32) -> f32 { return scr[p * prm.chunk + slot]; }
fn mSet(p: u32, v: f32) { scr[p * prm.chunk + slot] = v; }


// e, s at the point p (x or xt): e_nk = (σ(z_nk) − y_nk)/N, s_nk = σ(1 − σ)/N.
fn residualsAt(p: ptr<private, array<f32, MAX_N>>) {
  for (var n = 0u; n < CB; n++) {
    for (var k = 0u; k < CK; k++) {
      var z = wb[k];
      for (var d = 0u; d < CD; d++) { z += (*p)[n * CD + d] * wW[d * CK + k]; }
      let q = sigm(z);
      ee[n * CK + k] = (q - ty[n * CK + k]) * prm.invN;
      ss[n * CK + k] = q * (1.0 - q) * prm.invN;
    }
  }
}

// L_r at xt; ∇L_r into gt (the closed form of docs/math.md).
fn evaluate() -> f32 {
  residualsAt(&xt);
  var loss = 0.0;
  for (var d = 0u; d < CD; d++) {
    for (var k = 0u; k < CK; k++) {
      var acc = 0.0;
      for (var n = 0u; n < CB; n++) { acc += xt[n * CD + d] * ee[n * CK + k]; }
      let r = acc - tG[d * CK + k];
      loss += r * r;
      aM[d * CK + k] = 2.0 * r;
    }
  }
  for (var k = 0u; k < CK; k++) {
    var acc = 0.0;
    for (var n = 0u; n < CB; n++) { acc += ee[n * CK + k]; }
    let r = acc - tg[k];
    loss += r * r;
    am[k] = 2.0 * r;
  }
  for (var n = 0u; n < CB; n++) {
    for (var k = 0u; k < CK; k++) {
      var acc = am[k];
      for (var d = 0u; d < CD; d++) { acc += aM[d * CK + k] * xt[n * CD + d]; }
      tt[k] = ss[n * CK + k] * acc;
    }
    for (var d = 0u; d < CD; d++) {
      var acc = 0.0;
      for (var k = 0u; k < CK; k++) { acc += aM[d * CK + k] * ee[n * CK + k] + wW[d * CK + k] * tt[k]; }
      gt[n * CD + d] = acc;
    }
  }
  return loss;
}

// Lower triangle of A = JᵀJ at x into the packed matrix, its diagonal into dg; returns max A_ii.
// Block (n, m), m ≤ n: A[(n,d1),(m,d2)] = δ_{d1d2}(e_n·e_m) + x_m[d1]·u1[d2] + x_n[d2]·u2[d1]
//   + (x_n·x_m + 1)·Σ_k s_nk s_mk W[d1,k] W[d2,k],
// with u1[d2] = Σ_k e_nk s_mk W[d2,k] and u2[d1] = Σ_k e_mk s_nk W[d1,k] (src/analysis/lm.ts normalMatrix).
fn assemble() -> f32 {
  residualsAt(&x);
  var maxDiag = 0.0;
  for (var n = 0u; n < CB; n++) {
    for (var m = 0u; m <= n; m++) {
      var eem = 0.0;
      var xx = 1.0;
      for (var k = 0u; k < CK; k++) {
        eem += ee[n * CK + k] * ee[m * CK + k];
        tt[k] = ss[n * CK + k] * ss[m * CK + k];
      }
      for (var d = 0u; d < CD; d++) {
        xx += x[n * CD + d] * x[m * CD + d];
        var a1 = 0.0;
        var a2 = 0.0;
        for (var k = 0u; k < CK; k++) {
          let w = wW[d * CK + k];
          a1 += ee[n * CK + k] * ss[m * CK + k] * w;
          a2 += ee[m * CK + k] * ss[n * CK + k] * w;
        }
        u1[d] = a1;
        u2[d] = a2;
      }
      for (var d1 = 0u; d1 < CD; d1++) {
        let i = n * CD + d1;
        let row = i * (i + 1u) / 2u + m * CD;
        let xm1 = x[m * CD + d1];
        let top = select(CD, d1 + 1u, m == n);
        for (var d2 = 0u; d2 < top; d2++) {
          var t = 0.0;
          for (var k = 0u; k < CK; k++) { t += wW[d1 * CK + k] * wW[d2 * CK + k] * tt[k]; }
          var a = xm1 * u1[d2] + x[n * CD + d2] * u2[d1] + xx * t;
          if (d1 == d2) { a += eem; }
          mSet(row + d2, a);
          if (m == n && d2 == d1) { dg[i] = a; maxDiag = max(maxDiag, a); }
        }
      }
    }
  }
  return maxDiag;
}

// In-place Cholesky of the packed matrix (row by row) and the solve of L·Lᵀ·δ = rhs into dl.
// False on a non-positive or non-finite pivot.
fn choleskySolve() -> bool {
  let N = CB * CD;
  for (var i = 0u; i < N; i++) {
    let ri = i * (i + 1u) / 2u;
    for (var j = 0u; j < i; j++) {
      let rj = j * (j + 1u) / 2u;
      var v = mGet(ri + j);
      for (var k = 0u; k < j; k++) { v -= mGet(ri + k) * mGet(rj + k); }
      mSet(ri + j, v / ld[j]);
    }
    var v = mGet(ri + i);
    for (var k = 0u; k < i; k++) { let l = mGet(ri + k); v -= l * l; }
    // An early exit, measured on lavapipe at (8,8,10): without it (a flag instead) the pipeline
    // compiled in 17 s instead of 3 s for +7% throughput.
    if (!(v > 0.0) || !isFinite(v)) { return false; }
    ld[i] = sqrt(v);
  }
  // forward: L·z = rhs (dl holds rhs on entry)
  for (var i = 0u; i < N; i++) {
    let ri = i * (i + 1u) / 2u;
    var v = dl[i];
    for (var k = 0u; k < i; k++) { v -= mGet(ri + k) * dl[k]; }
    dl[i] = v / ld[i];
  }
  // backward: Lᵀ·δ = z
  for (var ii = 0u; ii < N; ii++) {
    let i = N - 1u - ii;
    var v = dl[i];
    for (var k = i + 1u; k < N; k++) { v -= mGet(k * (k + 1u) / 2u + i) * dl[k]; }
    dl[i] = v / ld[i];
  }
  return true;
}

@compute @workgroup_size(WG)
fn main_lm(@builtin(global_invocation_id) gid: vec3<u32>) {
  let local = gid.x + gid.y * prm.dispatchX * WG;
  if (local >= prm.count) { return; }
  let r = prm.first + local;
  slot = local;
  var st = stat[r];
  if (st.status != 0u) { return; }
  let N = CB * CD;
  let T = prm.total;
  for (var i = 0u; i < N; i++) { x[i] = xs[r * N + i]; best[i] = bests[r * N + i]; }
  let g0 = (r / prm.P) * prm.gStride;
  for (var i = 0u; i < CB * CK; i++) { ty[i] = grp[g0 + i]; }
  for (var i = 0u; i < CD * CK; i++) { tG[i] = grp[g0 + CB * CK + i]; wW[i] = lay[i]; }
  for (var k = 0u; k < CK; k++) { tg[k] = grp[g0 + CB * CK + CD * CK + k]; wb[k] = lay[CD * CK + k]; }
  let tolAbs = grp[g0 + CB * CK + CD * CK + CK];
  var lambda = opt[r];
  var nu = opt[T + r];
  var have = opt[2u * T + r] != 0.0;
  var f = opt[3u * T + r];
  if (have) {
    for (var i = 0u; i < N; i++) { gx[i] = opt[(4u + i) * T + r]; }
  } else if (prm.iters > 0u) {
    for (var i = 0u; i < N; i++) { xt[i] = x[i]; }
    f = evaluate();
    for (var i = 0u; i < N; i++) { gx[i] = gt[i]; }
    have = true;
  }
  for (var it = 0u; it < prm.iters; it++) {
    // best, converged?, non-finite? (f, gx: the value at x)
    if (f < st.bestLoss) {
      st.bestLoss = f;
      for (var i = 0u; i < N; i++) { best[i] = x[i]; }
    }
    st.loss = f;
    if (f <= tolAbs) { st.status = 1u; break; }
    var fin = isFinite(f);
    for (var i = 0u; i < N; i++) { fin = fin && isFinite(gx[i]); }
    if (!fin) {
      for (var i = 0u; i < N; i++) { x[i] = best[i]; }
      st.loss = st.bestLoss;
      st.status = 2u;
      break;
    }
    // the damped normal equations (A + λ·D)·δ = −g/2
    let floorD = DIAG_FLOOR * assemble();
    for (var i = 0u; i < N; i++) {
      dg[i] = max(dg[i], floorD);
      let p = i * (i + 1u) / 2u + i;
      mSet(p, mGet(p) + lambda * dg[i]);
      dl[i] = -0.5 * gx[i];
    }
    var accepted = false;
    var ok = choleskySolve();
    for (var i = 0u; i < N; i++) { ok = ok && isFinite(dl[i]); }
    if (ok) {
      var pred = 0.0;
      for (var i = 0u; i < N; i++) {
        pred += dl[i] * (lambda * dg[i] * dl[i] - 0.5 * gx[i]);
        xt[i] = x[i] + dl[i];
      }
      let ft = evaluate();
      let rho = (f - ft) / pred;
      if (isFinite(ft) && pred > 0.0 && rho > 0.0) {
        accepted = true;
        for (var i = 0u; i < N; i++) { x[i] = xt[i]; gx[i] = gt[i]; }
        f = ft;
        let t = 2.0 * rho - 1.0;
        lambda = max(LAMBDA_MIN, lambda * max(1.0 / 3.0, 1.0 - t * t * t));
        nu = 2.0;
      }
    }
    if (!accepted) {
      lambda *= nu;
      nu *= 2.0;
    }
    st.iters += 1u;
    if (!(lambda <= LAMBDA_MAX)) {
      for (var i = 0u; i < N; i++) { x[i] = best[i]; }
      st.loss = st.bestLoss;
      st.status = 3u;
      break;
    }
  }
  for (var i = 0u; i < N; i++) { xs[r * N + i] = x[i]; bests[r * N + i] = best[i]; }
  opt[r] = lambda;
  opt[T + r] = nu;
  opt[2u * T + r] = select(0.0, 1.0, have);
  opt[3u * T + r] = f;
  for (var i = 0u; i < N; i++) { opt[(4u + i) * T + r] = gx[i]; }
  stat[r] = st;
}
