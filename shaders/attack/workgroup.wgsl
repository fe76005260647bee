// DLG attack, larger problems: ONE WORKGROUP PER RESTART. Invocation `tid` owns the rows
// d = tid + r·WG of W, G, ∇W and the columns x[·, d]; a dispatch runs `iters` iterations
// (restarts are independent, so no cross-workgroup sync). Sums over d (z = xW, u = Mᵀx, losses,
// dot products) go through shared memory in a fixed order, so two runs give identical bytes.
//  - gd/adam (firstOrder): rows are streamed from memory in each pass, loops over the batch and
//    classes run to override constants CB = B, CK = K so they unroll into registers.
//  - lbfgs: rows live in private arrays (rows·B ≤ MAX_RB, rows·K ≤ MAX_RK, host-checked).
// Iteration order (identical to src/attack/engine-cpu.ts): evaluate → best → converged? → non-finite? → step.

// MAX_RB, MAX_RK, MAX_BK, MAX_K, MAX_B: injected by src/gpu/kernels.ts (the kernel registry), from the caps the host checks.

override WG: u32 = 64u;   // invocations per restart
override RC: u32 = 64u;   // values summed per reduction round (WG·RC floats of shared memory)

// Params, RestartStat and bindings 0–6: attack/common.wgsl and attack/rows.wgsl.

var<workgroup> red: array<f32, WG * RC>;
var<workgroup> outS: array<f32, MAX_BK>;
var<workgroup> eS: array<f32, MAX_BK>;
var<workgroup> sS: array<f32, MAX_BK>;
var<workgroup> stS: RestartStat;

var<private> xl: array<f32, MAX_RB>;   // xl[r·B + n] = x[n, tid + r·WG]
var<private> bl: array<f32, MAX_RB>;   // best point, same layout
var<private> gl: array<f32, MAX_RB>;   // gradient
var<private> o1: array<f32, MAX_RB>;   // gd velocity / adam m / lbfgs gradient at x
var<private> o2: array<f32, MAX_RB>;   // adam v / lbfgs direction
var<private> o3: array<f32, MAX_RB>;   // lbfgs line-search start point
var<private> wl: array<f32, MAX_RK>;   // W rows
var<private> Gl: array<f32, MAX_RK>;   // target ∇W rows
var<private> Ml: array<f32, MAX_RK>;   // ∇W(x) rows, then the adjoint M
var<private> part: array<f32, MAX_BK>; // this invocation's partial sums
var<private> am: array<f32, MAX_K>;    // ∇b(x), then the adjoint m
var<private> tid: u32;
var<private> R: u32;                   // rows owned by this invocation


// outS[j] = Σ_invocations part[j] for j < cnt, summed in invocation order.
fn reduceParts(cnt: u32) {
  for (var c0 = 0u; c0 < cnt; c0 += RC) {
    let m = min(RC, cnt - c0);
    for (var j = 0u; j < m; j++) { red[j * WG + tid] = part[c0 + j]; }
    workgroupBarrier();
    for (var j = tid; j < m; j += WG) {
      var acc = 0.0;
      for (var t = 0u; t < WG; t++) { acc += red[j * WG + t]; }
      outS[c0 + j] = acc;
    }
    workgroupBarrier();
  }
}

fn sum1(v: f32) -> f32 {
  part[0] = v;
  reduceParts(1u);
  return workgroupUniformLoad(&outS[0]);
}

// Loss at x (uniform); gradient rows into gl. Closed form of docs/math.md (l2) or model.ts matchCosine.
fn evaluate(g0: u32) -> f32 {
  let B = prm.B; let K = prm.K; let BK = prm.BK;
  for (var j = 0u; j < BK; j++) { part[j] = 0.0; }
  for (var r = 0u; r < R; r++) {
    for (var n = 0u; n < B; n++) {
      let xv = xl[r * B + n];
      for (var k = 0u; k < K; k++) { part[n * K + k] += xv * wl[r * K + k]; }
    }
  }
  reduceParts(BK);
  for (var j = tid; j < BK; j += WG) {
    let p = sigm(outS[j] + lay[prm.DK + j % K]);
    eS[j] = (p - grp[g0 + j]) * prm.invN;
    sS[j] = p * (1.0 - p) * prm.invN;
  }
  workgroupBarrier();
  for (var r = 0u; r < R; r++) {
    for (var k = 0u; k < K; k++) {
      var acc = 0.0;
      for (var n = 0u; n < B; n++) { acc += xl[r * B + n] * eS[n * K + k]; }
      Ml[r * K + k] = acc;
    }
  }
  for (var k = 0u; k < K; k++) {
    var acc = 0.0;
    for (var n = 0u; n < B; n++) { acc += eS[n * K + k]; }
    am[k] = acc;
  }
  let gb0 = g0 + BK + prm.DK;
  var f = 0.0;
  if (prm.lossKind == 0u) {
    var lp = 0.0;
    for (var i = 0u; i < R * K; i++) { let d = Ml[i] - Gl[i]; lp += d * d; Ml[i] = 2.0 * d; }
    for (var k = 0u; k < K; k++) {
      let d = am[k] - grp[gb0 + k];
      if (tid == 0u) { lp += d * d; }
      am[k] = 2.0 * d;
    }
    f = sum1(lp);
  } else {
    var vt = 0.0; var vv = 0.0;
    for (var i = 0u; i < R * K; i++) { vt += Ml[i] * Gl[i]; vv += Ml[i] * Ml[i]; }
    if (tid == 0u) {
      for (var k = 0u; k < K; k++) { vt += am[k] * grp[gb0 + k]; vv += am[k] * am[k]; }
    }
    part[0] = vt; part[1] = vv;
    reduceParts(2u);
    vt = workgroupUniformLoad(&outS[0]);
    vv = workgroupUniformLoad(&outS[1]);
    let nv = sqrt(vv);
    let nt = grp[gb0 + K + 1u];
    if (nv == 0.0 || nt == 0.0) {
      for (var i = 0u; i < R * B; i++) { gl[i] = 0.0; }
      return 1.0;
    }
    f = 1.0 - vt / (nv * nt);
    let a = -1.0 / (nv * nt);
    let c = vt / (nv * nv * nv * nt);
    for (var i = 0u; i < R * K; i++) { Ml[i] = a * Gl[i] + c * Ml[i]; }
    for (var k = 0u; k < K; k++) { am[k] = a * grp[gb0 + k] + c * am[k]; }
  }
  // u_n = Mᵀx_n (sum over d), then t_n = s_n ⊙ (u_n + m) and ∇_{x_n} = M e_n + W t_n on own rows
  for (var j = 0u; j < BK; j++) { part[j] = 0.0; }
  for (var r = 0u; r < R; r++) {
    for (var n = 0u; n < B; n++) {
      let xv = xl[r * B + n];
      for (var k = 0u; k < K; k++) { part[n * K + k] += Ml[r * K + k] * xv; }
    }
  }
  reduceParts(BK);
  for (var j = 0u; j < BK; j++) { part[j] = sS[j] * (am[j % K] + outS[j]); }
  for (var r = 0u; r < R; r++) {
    for (var n = 0u; n < B; n++) {
      var acc = 0.0;
      for (var k = 0u; k < K; k++) { acc += Ml[r * K + k] * eS[n * K + k] + wl[r * K + k] * part[n * K + k]; }
      gl[r * B + n] = acc;
    }
  }
  return f;
}

// True when any gradient element of this restart is NaN/±Inf (uniform).
fn gradBad() -> bool {
  var c = 0.0;
  for (var i = 0u; i < R * prm.B; i++) { if (!isFinite(gl[i])) { c += 1.0; } }
  return sum1(c) > 0.0;
}

fn restartIndex(wid: vec3<u32>) -> u32 { return wid.x + wid.y * prm.dispatchX; }

// Offset of the restart's group in grp (uniform: it derives from workgroup_id).
fn groupOffset(rs: u32) -> u32 { return (rs / prm.P) * prm.gStride; }

// xs/bests/opt element of row r, batch n: n·D + d with d = tid + r·WG.
fn elem(r: u32, n: u32) -> u32 { return n * prm.D + tid + r * WG; }

fn loadRestart(rs: u32, lid: u32) -> RestartStat {
  tid = lid;
  let D = prm.D; let B = prm.B; let K = prm.K;
  R = select(0u, (D - tid + WG - 1u) / WG, tid < D);
  let g0 = groupOffset(rs);
  let base = rs * prm.BD;
  for (var r = 0u; r < R; r++) {
    let d = tid + r * WG;
    for (var n = 0u; n < B; n++) { xl[r * B + n] = xs[base + n * D + d]; bl[r * B + n] = bests[base + n * D + d]; }
    for (var k = 0u; k < K; k++) { wl[r * K + k] = lay[d * K + k]; Gl[r * K + k] = grp[g0 + prm.BK + d * K + k]; }
  }
  if (tid == 0u) { stS = stat[rs]; }
  return workgroupUniformLoad(&stS);
}

fn storeRestart(rs: u32, st: RestartStat) {
  let base = rs * prm.BD;
  for (var r = 0u; r < R; r++) {
    for (var n = 0u; n < prm.B; n++) { xs[base + elem(r, n)] = xl[r * prm.B + n]; bests[base + elem(r, n)] = bl[r * prm.B + n]; }
  }
  if (tid == 0u) { stat[rs] = st; }
}

// Steps 2–4 of an iteration for the evaluated loss f (gradient in gl). Returns the new status.
fn checkPoint(f: f32, st: ptr<function, RestartStat>, g0: u32, bad: bool) -> u32 {
  let RB = R * prm.B;
  if (f < (*st).bestLoss) {
    (*st).bestLoss = f;
    for (var i = 0u; i < RB; i++) { bl[i] = xl[i]; }
  }
  (*st).loss = f;
  if (f <= grp[g0 + prm.BK + prm.DK + prm.K]) { return 1u; }
  if (!isFinite(f) || bad) {
    for (var i = 0u; i < RB; i++) { xl[i] = bl[i]; }
    (*st).loss = (*st).bestLoss;
    return 2u;
  }
  return 0u;
}

// ---- gd / adam: rows streamed from memory, batch and class loops unrolled ----
// Dynamically indexed private arrays are slow on CPU drivers (they become per-lane scratch), so
// gd/adam keep no per-row arrays: each phase loops over the invocation's rows and reloads the row
// (x[·, d], W[d, ·], G[d, ·]) from memory; everything indexed by n < CB, k < CK lives in registers.
// ∇W rows are recomputed (B·K FMAs) instead of stored.
override CB: u32 = 1u;  // = B (loops over the batch unroll to this constant)
override CK: u32 = 1u;  // = K

var<private> acc: array<f32, MAX_BK>;  // partial sums over this invocation's rows, n·CK + k
var<private> ev: array<f32, MAX_BK>;   // e
var<private> tv: array<f32, MAX_BK>;   // s, then t = s ⊙ (u + m)
var<private> mv: array<f32, MAX_K>;    // ∇b(x), then the adjoint m
var<private> xr: array<f32, MAX_B>;    // x[·, d] of the current row
var<private> wr: array<f32, MAX_K>;    // W[d, ·]
var<private> vr: array<f32, MAX_K>;    // ∇W(x)[d, ·], then M[d, ·]

// outS[j] = Σ_invocations acc[j] for j < CB·CK, in invocation order. Loops stay nested over
// n < CB, k < CK (short constant trips) so the compiler unrolls them and acc stays in registers;
// the host sizes WG so that WG·B·K floats fit in shared memory (RC ≥ B·K).
fn reduceAcc() {
  for (var n = 0u; n < CB; n++) { for (var k = 0u; k < CK; k++) { red[(n * CK + k) * WG + tid] = acc[n * CK + k]; } }
  workgroupBarrier();
  for (var j = tid; j < CB * CK; j += WG) {
    var a = 0.0;
    for (var t = 0u; t < WG; t++) { a += red[j * WG + t]; }
    outS[j] = a;
  }
  workgroupBarrier();
}

fn sum2(a: f32, b: f32) -> vec2<f32> {
  red[tid] = a;
  red[WG + tid] = b;
  workgroupBarrier();
  if (tid < 2u) {
    var s = 0.0;
    for (var t = 0u; t < WG; t++) { s += red[tid * WG + t]; }
    outS[tid] = s;
  }
  return vec2<f32>(workgroupUniformLoad(&outS[0]), workgroupUniformLoad(&outS[1]));
}

fn zeroAcc() {
  for (var n = 0u; n < CB; n++) { for (var k = 0u; k < CK; k++) { acc[n * CK + k] = 0.0; } }
}

fn loadRow(base: u32, d: u32) {
  for (var n = 0u; n < CB; n++) { xr[n] = xs[base + n * prm.D + d]; }
}

// vr = ∇W(x)[d, ·] = Σ_n x[n, d] e_n (row already in xr)
fn gradWRow() {
  for (var k = 0u; k < CK; k++) {
    var a = 0.0;
    for (var n = 0u; n < CB; n++) { a += xr[n] * ev[n * CK + k]; }
    vr[k] = a;
  }
}

fn copyBest(base: u32) {
  for (var r = 0u; r < R; r++) {
    for (var n = 0u; n < CB; n++) { let i = base + n * prm.D + tid + r * WG; bests[i] = xs[i]; }
  }
}

fn rollBack(base: u32) {
  for (var r = 0u; r < R; r++) {
    for (var n = 0u; n < CB; n++) { let i = base + n * prm.D + tid + r * WG; xs[i] = bests[i]; }
  }
}

fn firstOrder(wid: vec3<u32>, lid: u32, adam: bool) {
  let rs = restartIndex(wid);
  if (rs >= prm.total) { return; }
  tid = lid;
  let D = prm.D; let K = prm.K; let BK = prm.BK; let DK = prm.DK;
  R = select(0u, (D - tid + WG - 1u) / WG, tid < D);
  if (tid == 0u) { stS = stat[rs]; }
  var st = workgroupUniformLoad(&stS);
  if (st.status != 0u) { return; }
  let g0 = groupOffset(rs);
  let gG = g0 + BK;
  let gb = g0 + BK + DK;
  let tol = grp[gb + K];
  let nt = grp[gb + K + 1u];
  let base = rs * prm.BD;
  let o0 = rs * prm.optStride;
  let lr = prm.lr; let mu = prm.momentum; let b1 = prm.beta1; let b2 = prm.beta2; let eps = prm.eps;
  var b1t = pow(b1, f32(st.iters));
  var b2t = pow(b2, f32(st.iters));
  // Row passes per iteration: l2 needs two (∇W, loss and u = Mᵀx together; then the gradient and
  // step, which also accumulates the next iteration's z = xW from the new rows); cosine needs three.
  var zReady = false;
  for (var it = 0u; it < prm.iters; it++) {
    // 1. evaluate — z = xW + b (sum over rows), e, s
    if (!zReady) {
      zeroAcc();
      for (var r = 0u; r < R; r++) {
        let d = tid + r * WG;
        loadRow(base, d);
        for (var k = 0u; k < CK; k++) { wr[k] = lay[d * K + k]; }
        for (var n = 0u; n < CB; n++) { for (var k = 0u; k < CK; k++) { acc[n * CK + k] += xr[n] * wr[k]; } }
      }
    }
    reduceAcc();
    for (var j = tid; j < BK; j += WG) {
      let p = sigm(outS[j] + lay[DK + j % K]);
      eS[j] = (p - grp[g0 + j]) * prm.invN;
      sS[j] = p * (1.0 - p) * prm.invN;
    }
    workgroupBarrier();
    for (var n = 0u; n < CB; n++) { for (var k = 0u; k < CK; k++) { ev[n * CK + k] = eS[n * CK + k]; tv[n * CK + k] = sS[n * CK + k]; } }
    for (var k = 0u; k < CK; k++) {
      var a = 0.0;
      for (var n = 0u; n < CB; n++) { a += ev[n * CK + k]; }
      mv[k] = a;
    }
    //    loss: l2 Σ(∇W − G)² + Σ(∇b − g)²; cosine needs ⟨v, t⟩ and ‖v‖²
    var l0 = 0.0; var l1 = 0.0;
    let l2 = prm.lossKind == 0u;
    if (l2) { zeroAcc(); }
    for (var r = 0u; r < R; r++) {
      let d = tid + r * WG;
      loadRow(base, d);
      gradWRow();
      for (var k = 0u; k < CK; k++) {
        let G = grp[gG + d * K + k];
        if (l2) { let q = vr[k] - G; l0 += q * q; vr[k] = 2.0 * q; } else { l0 += vr[k] * G; l1 += vr[k] * vr[k]; }
      }
      // l2: M = 2(∇W − G) is known already, so u = Mᵀx accumulates in the same pass
      if (l2) { for (var n = 0u; n < CB; n++) { for (var k = 0u; k < CK; k++) { acc[n * CK + k] += vr[k] * xr[n]; } } }
    }
    if (tid == 0u) {
      for (var k = 0u; k < CK; k++) {
        let g = grp[gb + k];
        if (prm.lossKind == 0u) { let q = mv[k] - g; l0 += q * q; } else { l0 += mv[k] * g; l1 += mv[k] * mv[k]; }
      }
    }
    let sums = sum2(l0, l1);
    // the adjoint is M = ca·∇W + cg·G, m = ca·∇b + cg·g
    var f = sums.x;
    var ca = 2.0; var cg = -2.0;
    if (prm.lossKind != 0u) {
      let nv = sqrt(sums.y);
      if (nv == 0.0 || nt == 0.0) {
        f = 1.0; ca = 0.0; cg = 0.0;  // model.ts: loss 1, gradient 0
      } else {
        f = 1.0 - sums.x / (nv * nt);
        ca = sums.x / (nv * nv * nv * nt);
        cg = -1.0 / (nv * nt);
      }
    }
    for (var k = 0u; k < CK; k++) { mv[k] = ca * mv[k] + cg * grp[gb + k]; }
    // 2–4. best, converged, non-finite loss
    let improved = f < st.bestLoss;
    if (improved) { st.bestLoss = f; }
    st.loss = f;
    if (f <= tol) {
      if (improved) { copyBest(base); }
      st.status = 1u;
      break;
    }
    if (!isFinite(f)) {
      rollBack(base);
      st.loss = st.bestLoss;
      st.status = 2u;
      break;
    }
    //    u = Mᵀx (sum over rows; cosine needs its own pass), t = s ⊙ (u + m)
    if (!l2) {
      zeroAcc();
      for (var r = 0u; r < R; r++) {
        let d = tid + r * WG;
        loadRow(base, d);
        gradWRow();
        for (var k = 0u; k < CK; k++) { vr[k] = ca * vr[k] + cg * grp[gG + d * K + k]; }
        for (var n = 0u; n < CB; n++) { for (var k = 0u; k < CK; k++) { acc[n * CK + k] += vr[k] * xr[n]; } }
      }
    }
    reduceAcc();
    for (var n = 0u; n < CB; n++) { for (var k = 0u; k < CK; k++) { tv[n * CK + k] *= outS[n * CK + k] + mv[k]; } }
    // 5. gradient rows ∇x[n, d] = Σ_k M[d,k] e[n,k] + W[d,k] t[n,k], best copy, optimizer step
    var bad = 0.0;
    zeroAcc();
    let a1 = lr / (1.0 - b1t * b1);
    let a2 = 1.0 / (1.0 - b2t * b2);
    for (var r = 0u; r < R; r++) {
      let d = tid + r * WG;
      loadRow(base, d);
      gradWRow();
      for (var k = 0u; k < CK; k++) {
        vr[k] = ca * vr[k] + cg * grp[gG + d * K + k];
        wr[k] = lay[d * K + k];
      }
      for (var n = 0u; n < CB; n++) {
        var g = 0.0;
        for (var k = 0u; k < CK; k++) { g += vr[k] * ev[n * CK + k] + wr[k] * tv[n * CK + k]; }
        if (!isFinite(g)) { bad += 1.0; }
        let i = n * D + d;
        var x = xr[n];
        if (improved) { bests[base + i] = x; }
        if (adam) {
          let m = b1 * opt[o0 + i] + (1.0 - b1) * g;
          let v = b2 * opt[o0 + prm.BD + i] + (1.0 - b2) * g * g;
          opt[o0 + i] = m;
          opt[o0 + prm.BD + i] = v;
          x -= a1 * m / (sqrt(v * a2) + eps);
        } else {
          let m = mu * opt[o0 + i] + g;
          opt[o0 + i] = m;
          x -= lr * m;
        }
        xs[base + i] = x;
        xr[n] = x;
      }
      // the next iteration's z partial sums, from the new row
      for (var n = 0u; n < CB; n++) { for (var k = 0u; k < CK; k++) { acc[n * CK + k] += xr[n] * wr[k]; } }
    }
    zReady = true;
    if (sum2(bad, 0.0).x > 0.0) {
      // a non-finite gradient: the step just taken is undone by the rollback
      storageBarrier();
      rollBack(base);
      st.loss = st.bestLoss;
      st.status = 2u;
      break;
    }
    b1t *= b1;
    b2t *= b2;
    st.iters += 1u;
    // this iteration's x writes are read by other invocations next iteration
    storageBarrier();
  }
  storageBarrier();
  if (tid == 0u) { stat[rs] = st; }
}

@compute @workgroup_size(WG)
fn main_gd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  firstOrder(wid, lid, false);
}

@compute @workgroup_size(WG)
fn main_adam(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  firstOrder(wid, lid, true);
}

// L-BFGS state per restart in `opt` (same layout as the invocation kernel): S (MAX_H·BD),
// Y (MAX_H·BD), rho (MAX_H), count, head, haveEval, fCached, gCached (BD).
var<private> alpha: array<f32, MAX_H>;
var<workgroup> metaS: vec4<f32>;

@compute @workgroup_size(WG)
fn main_lbfgs(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let rs = restartIndex(wid);
  if (rs >= prm.total) { return; }
  var st = loadRestart(rs, lid);
  if (st.status != 0u) { return; }
  let g0 = groupOffset(rs);
  let B = prm.B;
  let BD = prm.BD;
  let H = prm.history;
  let RB = R * B;
  let o0 = rs * prm.optStride;
  let oY = o0 + MAX_H * BD;
  let oRho = o0 + 2u * MAX_H * BD;
  let oMeta = oRho + MAX_H;
  let gC = oMeta + 4u;
  // the scalar state must be workgroup-uniform: it decides loops that contain barriers
  if (tid == 0u) { metaS = vec4<f32>(opt[oMeta], opt[oMeta + 1u], opt[oMeta + 2u], opt[oMeta + 3u]); }
  let sc = workgroupUniformLoad(&metaS);
  var count = u32(sc.x);
  var head = u32(sc.y);
  var have = sc.z != 0.0;
  var f = sc.w;
  for (var r = 0u; r < R; r++) { for (var n = 0u; n < B; n++) { o1[r * B + n] = opt[gC + elem(r, n)]; } }

  // One call site for evaluate() (it is large once inlined): a small state machine.
  // mode 0: evaluate x (first iteration); 1: evaluate a line-search trial; 2: x's value is cached.
  var mode = select(0u, 2u, have);
  var t = 0.0;
  var gtd = 0.0;
  var halvings = 0u;
  for (var it = 0u; it < prm.iters;) {
    var ft = f;
    var bad = false;
    if (mode != 2u) {
      ft = evaluate(g0);
      bad = gradBad();
    }
    if (mode == 1u) {
      if (isFinite(ft) && !bad && ft <= f + ARMIJO_C1 * t * gtd) {
        var sy = 0.0; var s2 = 0.0; var y2 = 0.0;
        for (var i = 0u; i < RB; i++) {
          let s = xl[i] - o3[i];
          let y = gl[i] - o1[i];
          sy += s * y; s2 += s * s; y2 += y * y;
        }
        part[0] = sy; part[1] = s2; part[2] = y2;
        reduceParts(3u);
        let SY = workgroupUniformLoad(&outS[0]);
        let S2 = workgroupUniformLoad(&outS[1]);
        let Y2 = workgroupUniformLoad(&outS[2]);
        if (SY > CURV_EPS * sqrt(S2 * Y2)) {
          if (count == 0u) { head = 0u; } else { head = (head + 1u) % H; }
          for (var r = 0u; r < R; r++) {
            for (var n = 0u; n < B; n++) {
              let i = r * B + n;
              opt[o0 + head * BD + elem(r, n)] = xl[i] - o3[i];
              opt[oY + head * BD + elem(r, n)] = gl[i] - o1[i];
            }
          }
          if (tid == 0u) { opt[oRho + head] = 1.0 / SY; }
          count = min(count + 1u, H);
        }
        f = ft;
        for (var i = 0u; i < RB; i++) { o1[i] = gl[i]; }
      } else if (halvings < MAX_HALVINGS) {
        halvings += 1u;
        t *= 0.5;
        for (var i = 0u; i < RB; i++) { xl[i] = o3[i] + t * o2[i]; }
        continue;
      } else {
        // no acceptable step: stay, forget the curvature model
        for (var i = 0u; i < RB; i++) { xl[i] = o3[i]; }
        count = 0u;
      }
      mode = 2u;
      st.iters += 1u;
      it += 1u;
      // history writes by one invocation (rho) are read by others in the next iteration
      storageBarrier();
      workgroupBarrier();
      continue;
    }
    if (mode == 2u) {
      for (var i = 0u; i < RB; i++) { gl[i] = o1[i]; }
    } else {
      f = ft;
    }
    st.status = checkPoint(f, &st, g0, bad);
    if (st.status != 0u) { mode = 0u; break; }
    for (var i = 0u; i < RB; i++) { o1[i] = gl[i]; }
    gtd = 0.0;
    if (count > 0u) {
      for (var i = 0u; i < RB; i++) { o2[i] = o1[i]; }
      for (var q = 0u; q < count; q++) {  // newest → oldest
        let j = (head + H - q) % H;
        var sq = 0.0;
        for (var r = 0u; r < R; r++) { for (var n = 0u; n < B; n++) { sq += opt[o0 + j * BD + elem(r, n)] * o2[r * B + n]; } }
        alpha[j] = opt[oRho + j] * sum1(sq);
        for (var r = 0u; r < R; r++) { for (var n = 0u; n < B; n++) { o2[r * B + n] -= alpha[j] * opt[oY + j * BD + elem(r, n)]; } }
      }
      var sy = 0.0; var yy = 0.0;
      for (var r = 0u; r < R; r++) {
        for (var n = 0u; n < B; n++) {
          let s = opt[o0 + head * BD + elem(r, n)]; let y = opt[oY + head * BD + elem(r, n)];
          sy += s * y; yy += y * y;
        }
      }
      part[0] = sy; part[1] = yy;
      reduceParts(2u);
      let gamma = workgroupUniformLoad(&outS[0]) / workgroupUniformLoad(&outS[1]);
      for (var i = 0u; i < RB; i++) { o2[i] *= gamma; }
      for (var q = 0u; q < count; q++) {  // oldest → newest
        let j = (head + H + 1u - count + q) % H;
        var yr = 0.0;
        for (var r = 0u; r < R; r++) { for (var n = 0u; n < B; n++) { yr += opt[oY + j * BD + elem(r, n)] * o2[r * B + n]; } }
        let beta = opt[oRho + j] * sum1(yr);
        for (var r = 0u; r < R; r++) { for (var n = 0u; n < B; n++) { o2[r * B + n] += opt[o0 + j * BD + elem(r, n)] * (alpha[j] - beta); } }
      }
      var gd = 0.0;
      for (var i = 0u; i < RB; i++) { o2[i] = -o2[i]; gd += o1[i] * o2[i]; }
      gtd = sum1(gd);
    }
    t = prm.lr;
    if (!(gtd < 0.0)) {
      count = 0u;
      var gg = 0.0; var g1 = 0.0;
      for (var i = 0u; i < RB; i++) { o2[i] = -o1[i]; gg += o1[i] * o1[i]; g1 += abs(o1[i]); }
      part[0] = gg; part[1] = g1;
      reduceParts(2u);
      gtd = -workgroupUniformLoad(&outS[0]);
      t = prm.lr * min(1.0, 1.0 / workgroupUniformLoad(&outS[1]));
    }
    // Backtracking Armijo line search: trials overwrite xl and gl, the start point is kept in o3.
    for (var i = 0u; i < RB; i++) { o3[i] = xl[i]; xl[i] = o3[i] + t * o2[i]; }
    halvings = 0u;
    mode = 1u;
  }
  have = mode == 2u;
  if (tid == 0u) {
    opt[oMeta] = f32(count);
    opt[oMeta + 1u] = f32(head);
    opt[oMeta + 2u] = select(0.0, 1.0, have);
    opt[oMeta + 3u] = f;
  }
  for (var r = 0u; r < R; r++) { for (var n = 0u; n < B; n++) { opt[gC + elem(r, n)] = o1[r * B + n]; } }
  storeRestart(rs, st);
}
