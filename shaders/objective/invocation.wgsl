// L_r and ∇ₓ′L_r, one invocation per restart, everything in registers (tiny D and K, any B).
// Caps: D ≤ MAX_D and K ≤ MAX_K. The loops below run to these constant caps and are guarded by the
// uniform sizes, so the compiler unrolls them and keeps w, ΔW, Δb, x_n, e_n, s_n in registers
// (a runtime-indexed private array would live in memory). Pass 1 accumulates ΔW and Δb, pass 2 writes
// ∇_{x′_n}; rows past ROWS_CACHED are streamed twice (e_n, s_n recomputed) instead of stored, so B is unbounded.
// src/objective/objective.ts checks the caps before choosing this regime. Needs objective/common.wgsl in front.

// MAX_D, MAX_K: injected by src/gpu/kernels.ts (the kernel registry), from the caps the host checks.
const ROWS_CACHED: u32 = 4u; // rows kept in registers between the two passes (later rows are recomputed)

override WG: u32 = 64u;
// D and K, fixed per pipeline by src/objective/objective.ts (objectiveInvocation only): every `d < FD` guard is a
// constant and the compiler drops it (on lavapipe each guard is a masked branch).
override FD: u32;
override FK: u32;

struct Row {
  x: vec4<f32>, // x′_n[d], d < D
  e: vec4<f32>, // e_n[k], k < K
  s: vec4<f32>, // s_n[k]
}

fn loadRow(at: u32, n: u32, w: array<vec4<f32>, MAX_D>) -> Row {
  var r: Row;
  for (var d = 0u; d < MAX_D; d++) {
    if (d < FD) {
      r.x[d] = xin[at + d];
    }
  }
  for (var k = 0u; k < MAX_K; k++) {
    if (k < FK) {
      var z = layer[prm.ob + k];
      for (var d = 0u; d < MAX_D; d++) {
        if (d < FD) {
          z = fma(r.x[d], w[d][k], z);
        }
      }
      let res = residual(z, layer[prm.oy + n * FK + k], prm.invN);
      r.e[k] = res.x;
      r.s[k] = res.y;
    }
  }
  return r;
}

fn accumulate(r: Row, dw: ptr<function, array<vec4<f32>, MAX_D>>, db: ptr<function, vec4<f32>>) {
  for (var d = 0u; d < MAX_D; d++) {
    for (var k = 0u; k < MAX_K; k++) {
      if (d < FD && k < FK) {
        (*dw)[d][k] = fma(r.x[d], r.e[k], (*dw)[d][k]);
      }
    }
  }
  for (var k = 0u; k < MAX_K; k++) {
    if (k < FK) {
      (*db)[k] += r.e[k];
    }
  }
}

fn writeGrad(at: u32, r: Row, w: array<vec4<f32>, MAX_D>, dw: array<vec4<f32>, MAX_D>, db: vec4<f32>) {
  var t = vec4<f32>(0.0);
  for (var k = 0u; k < MAX_K; k++) {
    if (k < FK) {
      var u = db[k];
      for (var d = 0u; d < MAX_D; d++) {
        if (d < FD) {
          u = fma(dw[d][k], r.x[d], u);
        }
      }
      t[k] = r.s[k] * u;
    }
  }
  for (var d = 0u; d < MAX_D; d++) {
    if (d < FD) {
      var g = 0.0;
      for (var k = 0u; k < MAX_K; k++) {
        if (k < FK) {
          g = fma(dw[d][k], r.e[k], g);
          g = fma(w[d][k], t[k], g);
        }
      }
      gradOut[at + d] = 2.0 * g;
    }
  }
}

@compute @workgroup_size(WG)
fn objectiveInvocation(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let p = gid.x + gid.y * nwg.x * WG;
  if (p >= prm.P) {
    return;
  }
  let D = FD;
  let K = FK;
  let base = p * prm.BD;

  // Layer constants (uniform loads) and ΔW = −G, Δb = −g to start.
  var w: array<vec4<f32>, MAX_D>;
  var dw: array<vec4<f32>, MAX_D>;
  var db = vec4<f32>(0.0);
  for (var d = 0u; d < MAX_D; d++) {
    for (var k = 0u; k < MAX_K; k++) {
      if (d < D && k < K) {
        w[d][k] = layer[d * K + k];
        dw[d][k] = -layer[prm.oG + d * K + k];
      }
    }
  }
  for (var k = 0u; k < MAX_K; k++) {
    if (k < K) {
      db[k] = -layer[prm.og + k];
    }
  }

  // Pass 1: ΔW += x′_n e_nᵀ, Δb += e_n. The first ROWS_CACHED rows stay in registers for pass 2.
  var rows: array<Row, ROWS_CACHED>;
  for (var n = 0u; n < ROWS_CACHED; n++) {
    if (n < prm.B) {
      rows[n] = loadRow(base + n * D, n, w);
      accumulate(rows[n], &dw, &db);
    }
  }
  for (var n = ROWS_CACHED; n < prm.B; n++) {
    accumulate(loadRow(base + n * D, n, w), &dw, &db);
  }
  // L_r = ‖ΔW‖² + ‖Δb‖² (padding entries are 0).
  var loss = dot(db, db);
  for (var d = 0u; d < MAX_D; d++) {
    if (d < D) {
      loss += dot(dw[d], dw[d]);
    }
  }
  lossOut[p] = loss;

  // Pass 2: ∇_{x′_n} = 2·ΔW e_n + 2·W (s_n ⊙ (ΔWᵀx′_n + Δb)).
  for (var n = 0u; n < ROWS_CACHED; n++) {
    if (n < prm.B) {
      writeGrad(base + n * D, rows[n], w, dw, db);
    }
  }
  for (var n = ROWS_CACHED; n < prm.B; n++) {
    let at = base + n * D;
    writeGrad(at, loadRow(at, n, w), w, dw, db);
  }
}

// (e, s) for two logits at once.
fn residual4(z: vec4<f32>, y: f32, invN: f32) -> array<vec4<f32>, 2> {
  let t = exp(-abs(z));
  let inv = 1.0 / (1.0 + t);
  let small = t * inv;
  let pos = z >= vec4<f32>(0.0);
  let sig = select(small, inv, pos);
  let oneMinus = select(inv, small, pos);
  return array<vec4<f32>, 2>((sig * (1.0 - y) - oneMinus * y) * invN, small * inv * invN);
}

// Fast path for the project's headline case, D = K = 1 and B ≤ 2: straight-line code, FOUR restarts
// per invocation as vec4 lanes. Gallivm (lavapipe) pays for every loop and guard, and one restart is a
// single chain of dependent exp/divide steps; four independent chains let the CPU overlap their latency
// (~2× over one restart per invocation). src/objective/objective.ts picks it when D = K = 1 and B ≤ 2 and
// dispatches ceil(P / 4) invocations. Row 1 is zero (e = s = 0) when B = 1.
@compute @workgroup_size(WG)
fn objectivePair(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let p0 = (gid.x + gid.y * nwg.x * WG) * 4u;
  if (p0 >= prm.P) {
    return;
  }
  let B = prm.B;
  let has1 = B > 1u;
  let last = prm.P * B - 1u;
  let w = prm.pairLayer.x;
  let b = prm.pairLayer.y;
  let y0 = prm.pairLayer.z;
  let y1 = prm.pairLayer.w; // 0 when B = 1
  let G = prm.pairTarget.x;
  let g = prm.pairTarget.y;
  // Lanes past P read a clamped (valid) element and are never stored.
  let i0 = min(vec4<u32>(p0, p0 + 1u, p0 + 2u, p0 + 3u) * B, vec4<u32>(last));
  let i1 = min(i0 + vec4<u32>(1u), vec4<u32>(last));
  let x0 = vec4<f32>(xin[i0.x], xin[i0.y], xin[i0.z], xin[i0.w]);
  let x1 = select(vec4<f32>(0.0), vec4<f32>(xin[i1.x], xin[i1.y], xin[i1.z], xin[i1.w]), has1);
  let r0 = residual4(fma(x0, vec4<f32>(w), vec4<f32>(b)), y0, prm.invN);
  let r1 = residual4(fma(x1, vec4<f32>(w), vec4<f32>(b)), y1, prm.invN);
  let e0 = r0[0];
  let s0 = r0[1];
  let e1 = select(vec4<f32>(0.0), r1[0], has1);
  let s1 = select(vec4<f32>(0.0), r1[1], has1);
  let dw = x0 * e0 + x1 * e1 - G;
  let db = e0 + e1 - g;
  let loss = fma(dw, dw, db * db);
  let g0 = 2.0 * (dw * e0 + w * s0 * (dw * x0 + db));
  let g1 = 2.0 * (dw * e1 + w * s1 * (dw * x1 + db));
  for (var l = 0u; l < 4u; l++) {
    let p = p0 + l;
    if (p < prm.P) {
      lossOut[p] = loss[l];
      gradOut[p * B] = g0[l];
      if (has1) {
        gradOut[p * B + 1u] = g1[l];
      }
    }
  }
}
