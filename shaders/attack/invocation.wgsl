// DLG attack, tiny problems: ONE INVOCATION PER RESTART. The whole restart (x, best point,
// optimizer state, target) lives in private arrays; a dispatch runs `iters` iterations with no
// memory traffic in between, then writes the state back.
// Iteration order (identical to src/attack/engine-cpu.ts): evaluate → best → converged? → non-finite? → step.
// Private arrays need const sizes: the host only picks this kernel when the capacities satisfy
// CB·CD ≤ MAX_BD, CD·CK ≤ MAX_DK, CB·CK ≤ MAX_BK, CK ≤ MAX_K (see src/attack/engine.ts); L-BFGS also
// CB·CD ≤ MAX_LBD. The arrays are only touched at constant indices after unrolling, so the
// larger gd/adam caps cost nothing in the smaller pipelines.

// MAX_BD, MAX_DK, MAX_BK, MAX_K, MAX_LBD: injected by src/gpu/kernels.ts (the kernel registry), from the caps the host checks.

override WG: u32 = 64u;
// Loop bounds: B, D and K themselves, fixed per pipeline by src/attack/engine.ts. Loops run to these constants,
// so the compiler unrolls them and keeps the private arrays in registers, and the `if (n < nB)` guards
// below (nB = CB, …) are constants it drops (on lavapipe each guard is a masked branch).
// Private arrays use these strides: x[n·CD + d], W[d·CK + k], e[n·CK + k].
override CB: u32 = 2u;
override CD: u32 = 1u;
override CK: u32 = 1u;

// Params, RestartStat and bindings 0–6: attack/common.wgsl and attack/rows.wgsl.

var<private> x: array<f32, MAX_BD>;
var<private> gr: array<f32, MAX_BD>;
var<private> best: array<f32, MAX_BD>;
// W, b, y, G, g, e, s and the u-sums of one restart: attack/restart.wgsl.
var<private> tolAbs: f32;
var<private> ttNorm: f32;
var<private> nB: u32;
var<private> nD: u32;
var<private> nK: u32;

// Guards for capacity-strided indices (constant after unrolling).
fn liveBD(i: u32) -> bool { return i / CD < nB && i % CD < nD; }
fn liveDK(i: u32) -> bool { return i / CK < nD && i % CK < nK; }
fn liveBK(i: u32) -> bool { return i / CK < nB && i % CK < nK; }
// Position of capacity index i (n·CD + d) in the packed n·D + d layout.
fn packedBD(i: u32) -> u32 { return (i / CD) * nD + i % CD; }

// Loss at x; gradient into gr. Closed form of docs/math.md (l2) or model.ts matchCosine.
fn evaluate() -> f32 {
  for (var n = 0u; n < CB; n++) {
    for (var k = 0u; k < CK; k++) {
      if (n < nB && k < nK) {
        var z = wb[k];
        for (var d = 0u; d < CD; d++) { if (d < nD) { z += x[n * CD + d] * wW[d * CK + k]; } }
        let p = sigm(z);
        ee[n * CK + k] = (p - ty[n * CK + k]) * prm.invN;
        ss[n * CK + k] = p * (1.0 - p) * prm.invN;
      }
    }
  }
  // aM = ∇W(x) = Σ_n x_n e_nᵀ, am = ∇b(x) = Σ_n e_n
  for (var d = 0u; d < CD; d++) {
    for (var k = 0u; k < CK; k++) {
      if (d < nD && k < nK) {
        var acc = 0.0;
        for (var n = 0u; n < CB; n++) { if (n < nB) { acc += x[n * CD + d] * ee[n * CK + k]; } }
        aM[d * CK + k] = acc;
      }
    }
  }
  for (var k = 0u; k < CK; k++) {
    if (k < nK) {
      var acc = 0.0;
      for (var n = 0u; n < CB; n++) { if (n < nB) { acc += ee[n * CK + k]; } }
      am[k] = acc;
    }
  }
  var loss = 0.0;
  if (prm.lossKind == 0u) {
    for (var i = 0u; i < CD * CK; i++) { if (liveDK(i)) { let r = aM[i] - tG[i]; loss += r * r; aM[i] = 2.0 * r; } }
    for (var k = 0u; k < CK; k++) { if (k < nK) { let r = am[k] - tg[k]; loss += r * r; am[k] = 2.0 * r; } }
  } else {
    var vt = 0.0; var vv = 0.0;
    for (var i = 0u; i < CD * CK; i++) { if (liveDK(i)) { vt += aM[i] * tG[i]; vv += aM[i] * aM[i]; } }
    for (var k = 0u; k < CK; k++) { if (k < nK) { vt += am[k] * tg[k]; vv += am[k] * am[k]; } }
    let nv = sqrt(vv);
    let nt = ttNorm;
    if (nv == 0.0 || nt == 0.0) {
      for (var i = 0u; i < CB * CD; i++) { gr[i] = 0.0; }
      return 1.0;
    }
    loss = 1.0 - vt / (nv * nt);
    let a = -1.0 / (nv * nt);
    let c = vt / (nv * nv * nv * nt);
    for (var i = 0u; i < CD * CK; i++) { if (liveDK(i)) { aM[i] = a * tG[i] + c * aM[i]; } }
    for (var k = 0u; k < CK; k++) { if (k < nK) { am[k] = a * tg[k] + c * am[k]; } }
  }
  // ∇_{x_n} = M e_n + W (s_n ⊙ (Mᵀx_n + m))
  for (var n = 0u; n < CB; n++) {
    if (n < nB) {
      for (var k = 0u; k < CK; k++) {
        if (k < nK) {
          var acc = am[k];
          for (var d = 0u; d < CD; d++) { if (d < nD) { acc += aM[d * CK + k] * x[n * CD + d]; } }
          tt[k] = ss[n * CK + k] * acc;
        }
      }
      for (var d = 0u; d < CD; d++) {
        if (d < nD) {
          var acc = 0.0;
          for (var k = 0u; k < CK; k++) { if (k < nK) { acc += aM[d * CK + k] * ee[n * CK + k] + wW[d * CK + k] * tt[k]; } }
          gr[n * CD + d] = acc;
        }
      }
    }
  }
  return loss;
}


fn gradFinite() -> bool {
  var ok = true;
  for (var i = 0u; i < CB * CD; i++) { if (liveBD(i)) { ok = ok && isFinite(gr[i]); } }
  return ok;
}

fn restartIndex(gid: vec3<u32>) -> u32 { return gid.x + gid.y * prm.dispatchX * WG; }

fn loadRestart(r: u32) {
  nB = CB; nD = CD; nK = CK;
  let BD = prm.BD;
  let K = prm.K;
  for (var i = 0u; i < CB * CD; i++) {
    // padding stays 0 so capacity-wide copies are harmless
    x[i] = 0.0; best[i] = 0.0; gr[i] = 0.0;
    if (liveBD(i)) { x[i] = xs[r * BD + packedBD(i)]; best[i] = bests[r * BD + packedBD(i)]; }
  }
  let g0 = (r / prm.P) * prm.gStride;
  for (var i = 0u; i < CB * CK; i++) { if (liveBK(i)) { ty[i] = grp[g0 + (i / CK) * K + i % CK]; } }
  for (var i = 0u; i < CD * CK; i++) {
    if (liveDK(i)) {
      let j = (i / CK) * K + i % CK;
      tG[i] = grp[g0 + prm.BK + j];
      wW[i] = lay[j];
    }
  }
  for (var k = 0u; k < CK; k++) { if (k < nK) { tg[k] = grp[g0 + prm.BK + prm.DK + k]; wb[k] = lay[prm.DK + k]; } }
  tolAbs = grp[g0 + prm.BK + prm.DK + prm.K];
  ttNorm = grp[g0 + prm.BK + prm.DK + prm.K + 1u];
}

fn storeRestart(r: u32) {
  let BD = prm.BD;
  for (var i = 0u; i < CB * CD; i++) {
    if (liveBD(i)) { xs[r * BD + packedBD(i)] = x[i]; bests[r * BD + packedBD(i)] = best[i]; }
  }
}

// Steps 2–4 of an iteration for an evaluated loss f (gradient in gr). Returns the new status.
fn checkPoint(f: f32, st: ptr<function, RestartStat>) -> u32 {
  if (f < (*st).bestLoss) {
    (*st).bestLoss = f;
    for (var i = 0u; i < CB * CD; i++) { best[i] = x[i]; }
  }
  (*st).loss = f;
  if (f <= tolAbs) { return 1u; }
  if (!isFinite(f) || !gradFinite()) {
    for (var i = 0u; i < CB * CD; i++) { x[i] = best[i]; }
    (*st).loss = (*st).bestLoss;
    return 2u;
  }
  return 0u;
}

var<private> v1: array<f32, MAX_BD>;
var<private> v2: array<f32, MAX_BD>;

fn loadOpt(o0: u32, which: u32) {
  for (var i = 0u; i < CB * CD; i++) {
    let v = select(0.0, opt[o0 + which * prm.BD + packedBD(i)], liveBD(i));
    if (which == 0u) { v1[i] = v; } else { v2[i] = v; }
  }
}

fn storeOpt(o0: u32, which: u32) {
  for (var i = 0u; i < CB * CD; i++) {
    if (liveBD(i)) {
      if (which == 0u) { opt[o0 + which * prm.BD + packedBD(i)] = v1[i]; } else { opt[o0 + which * prm.BD + packedBD(i)] = v2[i]; }
    }
  }
}

@compute @workgroup_size(WG)
fn main_gd(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = restartIndex(gid);
  if (r >= prm.total) { return; }
  var st = stat[r];
  if (st.status != 0u) { return; }
  loadRestart(r);
  let o0 = r * prm.optStride;
  loadOpt(o0, 0u);
  let lr = prm.lr; let mu = prm.momentum;
  for (var it = 0u; it < prm.iters; it++) {
    let f = evaluate();
    st.status = checkPoint(f, &st);
    if (st.status != 0u) { break; }
    for (var i = 0u; i < CB * CD; i++) {
      if (liveBD(i)) {
        v1[i] = mu * v1[i] + gr[i];
        x[i] -= lr * v1[i];
      }
    }
    st.iters += 1u;
  }
  storeOpt(o0, 0u);
  storeRestart(r);
  stat[r] = st;
}

@compute @workgroup_size(WG)
fn main_adam(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = restartIndex(gid);
  if (r >= prm.total) { return; }
  var st = stat[r];
  if (st.status != 0u) { return; }
  loadRestart(r);
  let o0 = r * prm.optStride;
  loadOpt(o0, 0u);
  loadOpt(o0, 1u);
  // β^t kept as running products from t = iters (pow up to rounding)
  var b1t = pow(prm.beta1, f32(st.iters));
  var b2t = pow(prm.beta2, f32(st.iters));
  let lr = prm.lr; let b1 = prm.beta1; let b2 = prm.beta2; let eps = prm.eps;
  for (var it = 0u; it < prm.iters; it++) {
    let f = evaluate();
    st.status = checkPoint(f, &st);
    if (st.status != 0u) { break; }
    b1t *= b1;
    b2t *= b2;
    let a1 = lr / (1.0 - b1t);
    let a2 = 1.0 / (1.0 - b2t);
    for (var i = 0u; i < CB * CD; i++) {
      if (liveBD(i)) {
        let g = gr[i];
        v1[i] = b1 * v1[i] + (1.0 - b1) * g;
        v2[i] = b2 * v2[i] + (1.0 - b2) * g * g;
        x[i] -= a1 * v1[i] / (sqrt(v2[i] * a2) + eps);
      }
    }
    st.iters += 1u;
  }
  storeOpt(o0, 0u);
  storeOpt(o0, 1u);
  storeRestart(r);
  stat[r] = st;
}

// L-BFGS state per restart in `opt` (packed n·D + d layout, shared with the workgroup kernel):
// S (MAX_H·BD), Y (MAX_H·BD), rho (MAX_H), count, head (newest slot), haveEval, fCached, gCached (BD).
// Here the history is kept capacity-strided: hS[j·MAX_LBD + i].
var<private> hS: array<f32, MAX_H * MAX_LBD>;
var<private> hY: array<f32, MAX_H * MAX_LBD>;
var<private> hRho: array<f32, MAX_H>;
var<private> alpha: array<f32, MAX_H>;
var<private> xStart: array<f32, MAX_BD>;

fn dotBD(a: ptr<private, array<f32, MAX_BD>>, b: ptr<private, array<f32, MAX_BD>>) -> f32 {
  var acc = 0.0;
  for (var i = 0u; i < CB * CD; i++) { if (liveBD(i)) { acc += (*a)[i] * (*b)[i]; } }
  return acc;
}

@compute @workgroup_size(WG)
fn main_lbfgs(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = restartIndex(gid);
  if (r >= prm.total) { return; }
  var st = stat[r];
  if (st.status != 0u) { return; }
  loadRestart(r);
  let BD = prm.BD;
  let H = prm.history;
  let o0 = r * prm.optStride;
  let oRho = o0 + 2u * MAX_H * BD;
  let oMeta = oRho + MAX_H;
  for (var j = 0u; j < H; j++) {
    for (var i = 0u; i < CB * CD; i++) {
      hS[j * MAX_LBD + i] = 0.0; hY[j * MAX_LBD + i] = 0.0;
      if (liveBD(i)) { hS[j * MAX_LBD + i] = opt[o0 + j * BD + packedBD(i)]; hY[j * MAX_LBD + i] = opt[o0 + (MAX_H + j) * BD + packedBD(i)]; }
    }
    hRho[j] = opt[oRho + j];
  }
  var count = u32(opt[oMeta]);
  var head = u32(opt[oMeta + 1u]);
  var have = opt[oMeta + 2u] != 0.0;
  var f = opt[oMeta + 3u];
  let gC = oMeta + 4u;
  // v1 = gradient at x (cached when `have`), v2 = direction
  for (var i = 0u; i < CB * CD; i++) { v1[i] = 0.0; v2[i] = 0.0; if (liveBD(i)) { v1[i] = opt[gC + packedBD(i)]; } }

  // One call site for evaluate() (unrolled, it is large): a small state machine.
  // mode 0: evaluate x (first iteration); 1: evaluate a line-search trial; 2: x's value is cached.
  var mode = select(0u, 2u, have);
  var t = 0.0;
  var gtd = 0.0;
  var halvings = 0u;
  for (var it = 0u; it < prm.iters;) {
    var ft = f;
    var fin = true;
    if (mode != 2u) {
      ft = evaluate();
      fin = isFinite(ft) && gradFinite();
    }
    if (mode == 1u) {
      if (fin && ft <= f + ARMIJO_C1 * t * gtd) {
        var sy = 0.0; var s2 = 0.0; var y2 = 0.0;
        for (var i = 0u; i < CB * CD; i++) {
          if (liveBD(i)) {
            let s = x[i] - xStart[i];
            let y = gr[i] - v1[i];
            sy += s * y; s2 += s * s; y2 += y * y;
          }
        }
        if (sy > CURV_EPS * sqrt(s2 * y2)) {
          if (count == 0u) { head = 0u; } else { head = (head + 1u) % H; }
          for (var i = 0u; i < CB * CD; i++) {
            hS[head * MAX_LBD + i] = select(0.0, x[i] - xStart[i], liveBD(i));
            hY[head * MAX_LBD + i] = select(0.0, gr[i] - v1[i], liveBD(i));
          }
          hRho[head] = 1.0 / sy;
          count = min(count + 1u, H);
        }
        f = ft;
        for (var i = 0u; i < CB * CD; i++) { v1[i] = select(0.0, gr[i], liveBD(i)); }
      } else if (halvings < MAX_HALVINGS) {
        halvings += 1u;
        t *= 0.5;
        for (var i = 0u; i < CB * CD; i++) { x[i] = xStart[i] + t * v2[i]; }
        continue;
      } else {
        // no acceptable step: stay, forget the curvature model
        for (var i = 0u; i < CB * CD; i++) { x[i] = xStart[i]; }
        count = 0u;
      }
      mode = 2u;
      st.iters += 1u;
      it += 1u;
      continue;
    }
    if (mode == 2u) {
      for (var i = 0u; i < CB * CD; i++) { gr[i] = v1[i]; }
    } else {
      f = ft;
    }
    // steps 2–4 (checkPoint re-checks the cached gradient, which is finite)
    st.status = checkPoint(f, &st);
    if (st.status != 0u) { mode = 0u; break; }
    for (var i = 0u; i < CB * CD; i++) { v1[i] = select(0.0, gr[i], liveBD(i)); }
    gtd = 0.0;
    if (count > 0u) {
      for (var i = 0u; i < CB * CD; i++) { v2[i] = v1[i]; }
      for (var q = 0u; q < count; q++) {  // newest → oldest
        let j = (head + H - q) % H;
        var sq = 0.0;
        for (var i = 0u; i < CB * CD; i++) { sq += hS[j * MAX_LBD + i] * v2[i]; }
        alpha[j] = hRho[j] * sq;
        for (var i = 0u; i < CB * CD; i++) { v2[i] -= alpha[j] * hY[j * MAX_LBD + i]; }
      }
      var sy = 0.0; var yy = 0.0;
      for (var i = 0u; i < CB * CD; i++) {
        sy += hS[head * MAX_LBD + i] * hY[head * MAX_LBD + i];
        yy += hY[head * MAX_LBD + i] * hY[head * MAX_LBD + i];
      }
      let gamma = sy / yy;
      for (var i = 0u; i < CB * CD; i++) { v2[i] *= gamma; }
      for (var q = 0u; q < count; q++) {  // oldest → newest
        let j = (head + H + 1u - count + q) % H;
        var yr = 0.0;
        for (var i = 0u; i < CB * CD; i++) { yr += hY[j * MAX_LBD + i] * v2[i]; }
        let beta = hRho[j] * yr;
        for (var i = 0u; i < CB * CD; i++) { v2[i] += hS[j * MAX_LBD + i] * (alpha[j] - beta); }
      }
      for (var i = 0u; i < CB * CD; i++) { v2[i] = -v2[i]; }
      gtd = dotBD(&v1, &v2);
    }
    t = prm.lr;
    if (!(gtd < 0.0)) {
      count = 0u;
      gtd = 0.0;
      var g1 = 0.0;
      for (var i = 0u; i < CB * CD; i++) { v2[i] = -v1[i]; gtd -= v1[i] * v1[i]; g1 += abs(v1[i]); }
      t = prm.lr * min(1.0, 1.0 / g1);
    }
    // Backtracking Armijo line search: trials overwrite x and gr, the start point is kept in xStart.
    for (var i = 0u; i < CB * CD; i++) { xStart[i] = x[i]; x[i] = xStart[i] + t * v2[i]; }
    halvings = 0u;
    mode = 1u;
  }
  have = mode == 2u;
  for (var j = 0u; j < H; j++) {
    for (var i = 0u; i < CB * CD; i++) {
      if (liveBD(i)) { opt[o0 + j * BD + packedBD(i)] = hS[j * MAX_LBD + i]; opt[o0 + (MAX_H + j) * BD + packedBD(i)] = hY[j * MAX_LBD + i]; }
    }
    opt[oRho + j] = hRho[j];
  }
  opt[oMeta] = f32(count);
  opt[oMeta + 1u] = f32(head);
  opt[oMeta + 2u] = select(0.0, 1.0, have);
  opt[oMeta + 3u] = f;
  for (var i = 0u; i < CB * CD; i++) { if (liveBD(i)) { opt[gC + packedBD(i)] = v1[i]; } }
  storeRestart(r);
  stat[r] = st;
}
