// DLG attack, headline fast path: D = K = 1, B ≤ 2 (B from the uniform), l2 loss, gd or adam.
// FOUR RESTARTS PER INVOCATION (components of every vec4 below: restarts 4i … 4i + 3), everything in
// registers, straight-line per iteration: no loops over rows, no private arrays. On lavapipe a SIMD
// lane group runs one long dependency chain per iteration (exp → division → … → sqrt → division);
// four independent restarts per invocation give the CPU four chains to overlap (measured on 2-core
// lavapipe, (2,1,1) adam: 1 restart/invocation ≈1.2×, 2 ≈2×, 4 ≈2.4× the generic kernel's rate; 8 (QUADS = 2) no better).
// The price: an invocation runs until all four of its restarts have stopped.
// Same bindings, uniform layout and per-restart iteration order as attack/invocation.wgsl and
// src/attack/engine-cpu.ts: evaluate → best → converged? → non-finite? → step → iterations += 1.
// A restart stops (its x, best, loss, status and count are kept by select) while its partners run on.
// B = 1 runs as B = 2 with row 1 masked: x₁ = 0 and its residuals scaled by 0, so its gradient is 0
// and it never moves (nor is it read or written).

override WG: u32 = 64u;
// Groups of four restarts (vec4 "quads") per invocation: 1 or 2 (tuning knob, see src/attack/engine.ts).
override QUADS: u32 = 1u;

// Params, RestartStat and bindings 0–6: attack/common.wgsl and attack/rows.wgsl.

const NOT_A_RESTART: u32 = 3u;  // status of the missing partners when 4 ∤ total

// The four restarts' state: per-restart values are vec4 (component c: restart 4i + c).
struct Quad {
  y0: vec4<f32>, y1: vec4<f32>, G: vec4<f32>, g: vec4<f32>, tol: vec4<f32>,
  x0: vec4<f32>, x1: vec4<f32>, best0: vec4<f32>, best1: vec4<f32>,
  loss: vec4<f32>, bestLoss: vec4<f32>, status: vec4<u32>, iters: vec4<u32>,
  o0: vec4<f32>, o1: vec4<f32>,  // optimizer state slot 0 (gd v, adam m), rows 0 and 1
  p0: vec4<f32>, p1: vec4<f32>,  // adam v, rows 0 and 1
  b1t: vec4<f32>, b2t: vec4<f32>, // adam β₁ᵗ, β₂ᵗ
}

fn isFinite4(v: vec4<f32>) -> vec4<bool> {
  // NaN fails the comparison; ±Inf exceeds the largest f32.
  return abs(v) <= vec4<f32>(3.4028234e38);
}

// Loads restart r into component c of t (a missing partner gets status NOT_A_RESTART).
fn loadOne(t: ptr<function, Quad>, c: u32, r: u32, slots: u32) {
  if (r >= prm.total) {
    (*t).status[c] = NOT_A_RESTART;
    return;
  }
  let B = prm.B;
  let has1 = B > 1u;
  let i1 = select(0u, 1u, has1);  // row 1 reads alias row 0 when B = 1 (then discarded)
  let g0 = (r / prm.P) * prm.gStride;
  (*t).y0[c] = grp[g0];
  (*t).y1[c] = select(0.0, grp[g0 + i1], has1);
  (*t).G[c] = grp[g0 + B];
  (*t).g[c] = grp[g0 + B + 1u];
  (*t).tol[c] = grp[g0 + B + 2u];
  (*t).x0[c] = xs[r * B];
  (*t).x1[c] = select(0.0, xs[r * B + i1], has1);
  (*t).best0[c] = bests[r * B];
  (*t).best1[c] = select(0.0, bests[r * B + i1], has1);
  let st = stat[r];
  (*t).loss[c] = st.loss;
  (*t).bestLoss[c] = st.bestLoss;
  (*t).status[c] = st.status;
  (*t).iters[c] = st.iters;
  let o = r * prm.optStride;
  (*t).o0[c] = opt[o];
  (*t).o1[c] = select(0.0, opt[o + i1], has1);
  if (slots > 1u) {
    (*t).p0[c] = opt[o + B];
    (*t).p1[c] = select(0.0, opt[o + B + i1], has1);
  }
}

fn storeOne(t: ptr<function, Quad>, c: u32, r: u32, slots: u32) {
  if (r >= prm.total) { return; }
  let B = prm.B;
  let o = r * prm.optStride;
  xs[r * B] = (*t).x0[c];
  bests[r * B] = (*t).best0[c];
  opt[o] = (*t).o0[c];
  if (slots > 1u) { opt[o + B] = (*t).p0[c]; }
  if (B > 1u) {
    xs[r * B + 1u] = (*t).x1[c];
    bests[r * B + 1u] = (*t).best1[c];
    opt[o + 1u] = (*t).o1[c];
    if (slots > 1u) { opt[o + B + 1u] = (*t).p1[c]; }
  }
  stat[r] = RestartStat((*t).loss[c], (*t).bestLoss[c], (*t).status[c], (*t).iters[c]);
}

// Loss and gradient at (x0, x1), docs/math.md closed form for D = K = 1:
// e_n = (σ(z_n) − y_n)/N, s_n = σ'(z_n)/N, M = 2(Σ x_n e_n − G), m = 2(Σ e_n − g),
// ∇_{x_n} = M e_n + w s_n (M x_n + m). One exp per row, one division for both rows.
struct Eval { f: vec4<f32>, g0: vec4<f32>, g1: vec4<f32> }

fn evalQuad(t: ptr<function, Quad>, w: f32, b: f32, inv0: f32, inv1: f32) -> Eval {
  let x0 = (*t).x0;
  let x1 = (*t).x1;
  let z0 = b + x0 * w;
  let z1 = b + x1 * w;
  let ez0 = exp(-abs(z0));
  let ez1 = exp(-abs(z1));
  // 1/(1+ez) for both rows from one division ((1+ez) ∈ [1, 2], so the product cannot overflow)
  let d0 = 1.0 + ez0;
  let d1 = 1.0 + ez1;
  let inv = 1.0 / (d0 * d1);
  let r0 = d1 * inv;
  let r1 = d0 * inv;
  let p0 = select(ez0 * r0, r0, z0 >= vec4<f32>(0.0));
  let p1 = select(ez1 * r1, r1, z1 >= vec4<f32>(0.0));
  let e0 = (p0 - (*t).y0) * inv0;
  let e1 = (p1 - (*t).y1) * inv1;
  let s0 = ez0 * r0 * r0 * inv0;  // σ(1−σ) = e^{−|z|}/(1+e^{−|z|})²
  let s1 = ez1 * r1 * r1 * inv1;
  let rW = x0 * e0 + x1 * e1 - (*t).G;
  let rb = e0 + e1 - (*t).g;
  var o: Eval;
  o.f = rW * rW + rb * rb;
  let M = 2.0 * rW;
  let m = 2.0 * rb;
  o.g0 = M * e0 + w * (s0 * (m + M * x0));
  o.g1 = M * e1 + w * (s1 * (m + M * x1));
  return o;
}

// Steps 2–4 for the running restarts `act`: best, loss, converged?, non-finite? Returns the
// restarts still running (those that take the step).
fn checkQuad(t: ptr<function, Quad>, ev: Eval, act: vec4<bool>) -> vec4<bool> {
  let better = act & (ev.f < (*t).bestLoss);
  (*t).bestLoss = select((*t).bestLoss, ev.f, better);
  (*t).best0 = select((*t).best0, (*t).x0, better);
  (*t).best1 = select((*t).best1, (*t).x1, better);
  (*t).loss = select((*t).loss, ev.f, act);
  let conv = ev.f <= (*t).tol;
  let bad = !(isFinite4(ev.f) & isFinite4(ev.g0) & isFinite4(ev.g1));
  let stop = act & (conv | bad);
  (*t).status = select((*t).status, select(vec4<u32>(2u), vec4<u32>(1u), conv), stop);
  return act & !stop;
}

// After the loop: status 2 rolls x back to the best point (loss = bestLoss).
fn finishQuad(t: ptr<function, Quad>) {
  let bad = (*t).status == vec4<u32>(2u);
  (*t).x0 = select((*t).x0, (*t).best0, bad);
  (*t).x1 = select((*t).x1, (*t).best1, bad);
  (*t).loss = select((*t).loss, (*t).bestLoss, bad);
}

fn invocationIndex(gid: vec3<u32>) -> u32 { return gid.x + gid.y * prm.dispatchX * WG; }

// 4·QUADS consecutive restarts from r0: quad A = r0 … r0 + 3, quad B = r0 + 4 … r0 + 7.
fn loadQuad(t: ptr<function, Quad>, r0: u32, slots: u32) -> vec4<bool> {
  for (var c = 0u; c < 4u; c++) { loadOne(t, c, r0 + c, slots); }
  return (*t).status == vec4<u32>(0u);
}

fn storeQuad(t: ptr<function, Quad>, r0: u32, slots: u32) {
  finishQuad(t);
  for (var c = 0u; c < 4u; c++) { storeOne(t, c, r0 + c, slots); }
}

// Step 5 for the running restarts. The optimizer state of a stopped restart is never used again:
// only x and the count are masked.
fn stepGd(t: ptr<function, Quad>, ev: Eval, act: vec4<bool>, lr: f32, mu: f32) {
  (*t).o0 = mu * (*t).o0 + ev.g0;
  (*t).o1 = mu * (*t).o1 + ev.g1;
  (*t).x0 = select((*t).x0, (*t).x0 - lr * (*t).o0, act);
  (*t).x1 = select((*t).x1, (*t).x1 - lr * (*t).o1, act);
  (*t).iters += select(vec4<u32>(0u), vec4<u32>(1u), act);
}

fn stepAdam(t: ptr<function, Quad>, ev: Eval, act: vec4<bool>) {
  let b1 = prm.beta1;
  let b2 = prm.beta2;
  (*t).b1t *= b1;
  (*t).b2t *= b2;
  // a₁ = lr/(1−β₁ᵗ), a₂ = 1/(1−β₂ᵗ) from one division (both factors in (0, 1])
  let k1 = 1.0 - (*t).b1t;
  let k2 = 1.0 - (*t).b2t;
  let ik = 1.0 / (k1 * k2);
  let a1 = prm.lr * (k2 * ik);
  let a2 = k1 * ik;
  let c1 = 1.0 - b1;
  let c2 = 1.0 - b2;
  let eps = prm.eps;
  (*t).o0 = b1 * (*t).o0 + c1 * ev.g0;
  (*t).o1 = b1 * (*t).o1 + c1 * ev.g1;
  (*t).p0 = b2 * (*t).p0 + c2 * ev.g0 * ev.g0;
  (*t).p1 = b2 * (*t).p1 + c2 * ev.g1 * ev.g1;
  (*t).x0 = select((*t).x0, (*t).x0 - a1 * (*t).o0 / (sqrt((*t).p0 * a2) + eps), act);
  (*t).x1 = select((*t).x1, (*t).x1 - a1 * (*t).o1 / (sqrt((*t).p1 * a2) + eps), act);
  (*t).iters += select(vec4<u32>(0u), vec4<u32>(1u), act);
}

// β^t kept as running products from t = iters (pow up to rounding), as in attack/invocation.wgsl
// (t = 0 selected explicitly: WGSL leaves pow(0, 0) undefined and β = 0 is allowed).
fn initAdam(t: ptr<function, Quad>) {
  let t0 = (*t).iters == vec4<u32>(0u);
  (*t).b1t = select(pow(vec4<f32>(prm.beta1), vec4<f32>((*t).iters)), vec4<f32>(1.0), t0);
  (*t).b2t = select(pow(vec4<f32>(prm.beta2), vec4<f32>((*t).iters)), vec4<f32>(1.0), t0);
}

// One loop for both optimizers (ADAM is constant per entry point, so the other branch folds away).
// Each iteration: evaluate + check every quad, stop when no restart runs, then step the quads.
fn run(gid: vec3<u32>, ADAM: bool) {
  let r0 = 4u * QUADS * invocationIndex(gid);
  if (r0 >= prm.total) { return; }
  let slots = select(1u, 2u, ADAM);
  var tA: Quad;
  var tB: Quad;
  var actA = loadQuad(&tA, r0, slots);
  var actB = vec4<bool>(false);
  if (QUADS > 1u) { actB = loadQuad(&tB, r0 + 4u, slots); }
  if (!any(actA | actB)) { return; }
  if (ADAM) {
    initAdam(&tA);
    if (QUADS > 1u) { initAdam(&tB); }
  }
  let w = lay[0];
  let b = lay[1];
  let inv0 = prm.invN;
  let inv1 = select(0.0, prm.invN, prm.B > 1u);
  let lr = prm.lr;
  let mu = prm.momentum;
  let n = prm.iters;
  for (var it = 0u; it < n; it++) {
    let evA = evalQuad(&tA, w, b, inv0, inv1);
    actA = checkQuad(&tA, evA, actA);
    var evB: Eval;
    if (QUADS > 1u) {
      evB = evalQuad(&tB, w, b, inv0, inv1);
      actB = checkQuad(&tB, evB, actB);
    }
    if (!any(actA | actB)) { break; }
    if (ADAM) {
      stepAdam(&tA, evA, actA);
      if (QUADS > 1u) { stepAdam(&tB, evB, actB); }
    } else {
      stepGd(&tA, evA, actA, lr, mu);
      if (QUADS > 1u) { stepGd(&tB, evB, actB, lr, mu); }
    }
  }
  storeQuad(&tA, r0, slots);
  if (QUADS > 1u) { storeQuad(&tB, r0 + 4u, slots); }
}

@compute @workgroup_size(WG)
fn pair_gd(@builtin(global_invocation_id) gid: vec3<u32>) { run(gid, false); }

@compute @workgroup_size(WG)
fn pair_adam(@builtin(global_invocation_id) gid: vec3<u32>) { run(gid, true); }
