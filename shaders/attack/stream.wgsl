// DLG attack, large D with small B·K (e.g. B=8, D=784, K=10; digits' D=64, K=10): ONE INVOCATION PER
// RESTART, x′ streamed from memory four features at a time. Each iteration makes three passes over the
// features (vec4 groups d4), as shaders/objective/stream.wgsl does:
//   1. z_n = Wᵀx′_n + b → e_n, s_n;   2. ΔW rows, L_r = ‖ΔW‖² + ‖Δb‖², u_n = ΔWᵀx′_n → t_n = s_n ⊙ (u_n + Δb);
//   3. ∇_{x′_n} = 2·(ΔW e_n + W t_n), fused with the best-point copy and the gd/adam step.
// Iteration order (identical to src/attack/engine-cpu.ts): evaluate → best → converged? → non-finite? → step.
// A gradient that turns out non-finite during pass 3 rolls x′ back to the best point afterwards (the
// partly updated optimizer state no longer matters: the restart is frozen).
// Why this shape: on CPU adapters (lavapipe) a lane is an invocation, per-lane loads are
// bounds-checked fetches lane by lane (so x′, the best point and the optimizer state move as vec4s),
// and loads from a uniform block are broadcasts (so W and G live in one: `cols`). B and K are override
// constants (FB, FK): every loop but the ones over d4 and iterations unrolls, keeping the B·K values in
// registers. The host dispatches each group (scenario) separately with its own `cols` block, and picks
// this kernel only for gd/adam with the l2 loss, D % 4 = 0, B·K ≤ MAX_BK, K ≤ MAX_K, D·K ≤ 2·MAX_COLS.
// Needs attack/common.wgsl in front (Params, RestartStat, prm, lay, grp, stat); x′, the best points and
// the optimizer state are bound here as vec4 arrays (the scalar kernels' f32 views are in attack/rows.wgsl).

// MAX_BK, MAX_K, MAX_COLS: injected by src/gpu/kernels.ts (the kernel registry), from the caps the host checks.

override WG: u32 = 64u;
override FB: u32 = 1u;
override FK: u32 = 1u;
override ADAM: bool = true;

// group.x: the group (scenario) this dispatch advances; c: W by vec4 of features, c[d4·K + k] =
// W[4·d4 … 4·d4 + 3, k], then the group's target G likewise from D·K/4 on.
struct Columns {
  group: vec4<u32>,
  c: array<vec4<f32>, MAX_COLS>,
}

@group(0) @binding(3) var<storage, read_write> xs4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> bests4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> opt4: array<vec4<f32>>;
@group(0) @binding(7) var<uniform> cols: Columns;

var<private> ty: array<f32, MAX_BK>; // labels
var<private> e: array<f32, MAX_BK>;  // (σ(z) − y)/N
var<private> t: array<f32, MAX_BK>;  // σ(1 − σ)/N, then s ⊙ (ΔWᵀx′ + Δb)
var<private> wb: array<f32, MAX_K>;  // b
var<private> tg: array<f32, MAX_K>;  // target ∇b
var<private> tolAbs: f32;            // the group's convergence threshold


fn wCol(d4: u32, k: u32) -> vec4<f32> { return cols.c[d4 * FK + k]; }
fn gCol(d4: u32, k: u32) -> vec4<f32> { return cols.c[prm.DK / 4u + d4 * FK + k]; }

// Passes 1 and 2: the loss at the x′ stored at base4; leaves e and t set.
fn evaluate(base4: u32, D4: u32) -> f32 {
  var z: array<f32, MAX_BK>;
  for (var n = 0u; n < FB; n++) {
    for (var k = 0u; k < FK; k++) { z[n * FK + k] = wb[k]; }
  }
  for (var d4 = 0u; d4 < D4; d4++) {
    var w: array<vec4<f32>, MAX_K>;
    for (var k = 0u; k < FK; k++) { w[k] = wCol(d4, k); }
    for (var n = 0u; n < FB; n++) {
      let xv = xs4[base4 + n * D4 + d4];
      for (var k = 0u; k < FK; k++) { z[n * FK + k] += dot(xv, w[k]); }
    }
  }
  var db: array<f32, MAX_K>;
  for (var k = 0u; k < FK; k++) { db[k] = -tg[k]; }
  for (var n = 0u; n < FB; n++) {
    for (var k = 0u; k < FK; k++) {
      let p = sigm(z[n * FK + k]);
      e[n * FK + k] = (p - ty[n * FK + k]) * prm.invN;
      t[n * FK + k] = p * (1.0 - p) * prm.invN;
      db[k] += e[n * FK + k];
      z[n * FK + k] = 0.0; // reused for u_n
    }
  }
  var loss4 = vec4<f32>(0.0);
  for (var d4 = 0u; d4 < D4; d4++) {
    var x: array<vec4<f32>, MAX_BK>;
    var dw: array<vec4<f32>, MAX_K>;
    for (var k = 0u; k < FK; k++) { dw[k] = -gCol(d4, k); }
    for (var n = 0u; n < FB; n++) {
      x[n] = xs4[base4 + n * D4 + d4];
      for (var k = 0u; k < FK; k++) { dw[k] = fma(x[n], vec4<f32>(e[n * FK + k]), dw[k]); }
    }
    for (var k = 0u; k < FK; k++) { loss4 = fma(dw[k], dw[k], loss4); }
    for (var n = 0u; n < FB; n++) {
      for (var k = 0u; k < FK; k++) { z[n * FK + k] += dot(dw[k], x[n]); }
    }
  }
  var loss = (loss4.x + loss4.y) + (loss4.z + loss4.w);
  for (var k = 0u; k < FK; k++) { loss = fma(db[k], db[k], loss); }
  for (var n = 0u; n < FB; n++) {
    for (var k = 0u; k < FK; k++) { t[n * FK + k] *= z[n * FK + k] + db[k]; }
  }
  return loss;
}

// ∇ for features 4·d4 … 4·d4 + 3 of all rows (pass 3), into g; x′ into x.
fn gradient4(base4: u32, D4: u32, d4: u32, x: ptr<function, array<vec4<f32>, MAX_BK>>, g: ptr<function, array<vec4<f32>, MAX_BK>>) {
  var dw: array<vec4<f32>, MAX_K>;
  var w: array<vec4<f32>, MAX_K>;
  for (var k = 0u; k < FK; k++) {
    dw[k] = -gCol(d4, k);
    w[k] = wCol(d4, k);
  }
  for (var n = 0u; n < FB; n++) {
    (*x)[n] = xs4[base4 + n * D4 + d4];
    for (var k = 0u; k < FK; k++) { dw[k] = fma((*x)[n], vec4<f32>(e[n * FK + k]), dw[k]); }
  }
  for (var n = 0u; n < FB; n++) {
    var a = vec4<f32>(0.0);
    for (var k = 0u; k < FK; k++) {
      a = fma(dw[k], vec4<f32>(e[n * FK + k]), a);
      a = fma(w[k], vec4<f32>(t[n * FK + k]), a);
    }
    (*g)[n] = 2.0 * a;
  }
}

// Loads the group's labels, b, ∇b target and tolAbs; returns the restart, or total when idle.
fn setup(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  let local = gid.x + gid.y * nwg.x * WG;
  let grp0 = cols.group.x;
  if (local >= prm.P) { return prm.total; }
  let g0 = grp0 * prm.gStride;
  for (var n = 0u; n < FB; n++) {
    for (var k = 0u; k < FK; k++) { ty[n * FK + k] = grp[g0 + n * FK + k]; }
  }
  for (var k = 0u; k < FK; k++) {
    tg[k] = grp[g0 + prm.BK + prm.DK + k];
    wb[k] = lay[prm.DK + k];
  }
  tolAbs = grp[g0 + prm.BK + prm.DK + prm.K];
  return grp0 * prm.P + local;
}

fn rollBack(base4: u32, count4: u32) {
  for (var i = 0u; i < count4; i++) { xs4[base4 + i] = bests4[base4 + i]; }
}

// gd (velocity in opt) or adam (m then v in opt), by the override ADAM; the other branch folds away.
@compute @workgroup_size(WG)
fn stream_main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = setup(gid, nwg);
  if (r >= prm.total) { return; }
  var st = stat[r];
  if (st.status != 0u) { return; }
  let D4 = prm.D / 4u;
  let base4 = r * FB * D4;
  let o4 = r * (prm.optStride / 4u); // gd: velocity (B·D); adam: m (B·D) then v (B·D)
  // adam: β^t kept as running products from t = iters (pow up to rounding)
  var b1t = pow(prm.beta1, f32(st.iters));
  var b2t = pow(prm.beta2, f32(st.iters));
  let lr = prm.lr; let mu = prm.momentum; let b1 = prm.beta1; let b2 = prm.beta2; let eps = prm.eps;
  for (var it = 0u; it < prm.iters; it++) {
    let f = evaluate(base4, D4);
    let improved = f < st.bestLoss;
    if (improved) { st.bestLoss = f; }
    st.loss = f;
    var status = 0u;
    if (f <= tolAbs) { status = 1u; } else if (!isFinite(f)) { status = 2u; }
    if (ADAM && status == 0u) {
      b1t *= b1;
      b2t *= b2;
    }
    let a1 = lr / (1.0 - b1t);
    let a2 = 1.0 / (1.0 - b2t);
    var finite = true;
    for (var d4 = 0u; d4 < D4; d4++) {
      var x: array<vec4<f32>, MAX_BK>;
      var g: array<vec4<f32>, MAX_BK>;
      gradient4(base4, D4, d4, &x, &g);
      for (var n = 0u; n < FB; n++) {
        let i = base4 + n * D4 + d4;
        if (improved) { bests4[i] = x[n]; }
        if (status == 0u) {
          let gn = g[n];
          finite = finite && all(abs(gn) <= vec4<f32>(3.4028234e38));
          let j = o4 + n * D4 + d4;
          if (ADAM) {
            let m = b1 * opt4[j] + (1.0 - b1) * gn;
            let v = b2 * opt4[j + FB * D4] + (1.0 - b2) * gn * gn;
            opt4[j] = m;
            opt4[j + FB * D4] = v;
            xs4[i] = x[n] - a1 * m / (sqrt(v * a2) + eps);
          } else {
            let v = mu * opt4[j] + gn;
            opt4[j] = v;
            xs4[i] = x[n] - lr * v;
          }
        }
      }
    }
    if (status == 0u && !finite) { status = 2u; }
    if (status == 2u) {
      rollBack(base4, FB * D4);
      st.loss = st.bestLoss;
    }
    st.status = status;
    if (status != 0u) { break; }
    st.iters += 1u;
  }
  stat[r] = st;
}
