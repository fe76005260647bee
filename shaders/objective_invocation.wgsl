// L_r and ∇ₓ′L_r, one invocation per restart, everything in registers (tiny D and K, any B).
// Caps: D ≤ MAX_D and K ≤ MAX_K. The loops below run to these constant caps and are guarded by the
// uniform sizes, so the compiler unrolls them and keeps w, ΔW, Δb, x_n, e_n, s_n in registers
// (a runtime-indexed private array would live in memory). Pass 1 accumulates ΔW and Δb, pass 2 writes
// ∇_{x′_n}; rows past ROWS_CACHED are streamed twice (e_n, s_n recomputed) instead of stored, so B is unbounded.
// src/objective.ts checks the caps before choosing this regime. Needs objective_common.wgsl in front.

const MAX_D: u32 = 4u;
const MAX_K: u32 = 4u;
const ROWS_CACHED: u32 = 4u; // rows kept in registers between the two passes (later rows are recomputed)

override WG: u32 = 64u;

struct Row {
  x: vec4<f32>, // x′_n[d], d < D
  e: vec4<f32>, // e_n[k], k < K
  s: vec4<f32>, // s_n[k]
}

fn loadRow(at: u32, n: u32, w: array<vec4<f32>, MAX_D>) -> Row {
  var r: Row;
  for (var d = 0u; d < MAX_D; d++) {
    if (d < prm.D) {
      r.x[d] = xin[at + d];
    }
  }
  for (var k = 0u; k < MAX_K; k++) {
    if (k < prm.K) {
      var z = layer[prm.ob + k];
      for (var d = 0u; d < MAX_D; d++) {
        if (d < prm.D) {
          z = fma(r.x[d], w[d][k], z);
        }
      }
      let res = residual(z, layer[prm.oy + n * prm.K + k], prm.invN);
      r.e[k] = res.x;
      r.s[k] = res.y;
    }
  }
  return r;
}

fn accumulate(r: Row, dw: ptr<function, array<vec4<f32>, MAX_D>>, db: ptr<function, vec4<f32>>) {
  for (var d = 0u; d < MAX_D; d++) {
    for (var k = 0u; k < MAX_K; k++) {
      if (d < prm.D && k < prm.K) {
        (*dw)[d][k] = fma(r.x[d], r.e[k], (*dw)[d][k]);
      }
    }
  }
  for (var k = 0u; k < MAX_K; k++) {
    if (k < prm.K) {
      (*db)[k] += r.e[k];
    }
  }
}

fn writeGrad(at: u32, r: Row, w: array<vec4<f32>, MAX_D>, dw: array<vec4<f32>, MAX_D>, db: vec4<f32>) {
  var t = vec4<f32>(0.0);
  for (var k = 0u; k < MAX_K; k++) {
    if (k < prm.K) {
      var u = db[k];
      for (var d = 0u; d < MAX_D; d++) {
        if (d < prm.D) {
          u = fma(dw[d][k], r.x[d], u);
        }
      }
      t[k] = r.s[k] * u;
    }
  }
  for (var d = 0u; d < MAX_D; d++) {
    if (d < prm.D) {
      var g = 0.0;
      for (var k = 0u; k < MAX_K; k++) {
        if (k < prm.K) {
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
  let D = prm.D;
  let K = prm.K;
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
fn residual2(z: vec2<f32>, y: vec2<f32>, invN: f32) -> array<vec2<f32>, 2> {
  let t = exp(-abs(z));
  let inv = 1.0 / (1.0 + t);
  let small = t * inv;
  let pos = z >= vec2<f32>(0.0);
  let sig = select(small, inv, pos);
  let oneMinus = select(inv, small, pos);
  return array<vec2<f32>, 2>((sig * (1.0 - y) - oneMinus * y) * invN, small * inv * invN);
}

// Fast path for the project's headline case, D = K = 1 and B ≤ 2: straight-line code with the two rows
// as vec2 lanes. Gallivm (lavapipe) pays for every loop and guard, so this runs ~2× faster there than
// objectiveInvocation on the same sizes. src/objective.ts picks it when D = K = 1 and B ≤ 2.
@compute @workgroup_size(WG)
fn objectivePair(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let p = gid.x + gid.y * nwg.x * WG;
  if (p >= prm.P) {
    return;
  }
  let B = prm.B;
  let base = p * B;
  let w = layer[0];
  let b = layer[prm.ob];
  // Rows 0 and 1, straight-line, kept for pass 2 (row 1 is zero-padded when B = 1: e = s = 0 there).
  let has1 = B > 1u;
  let x01 = vec2<f32>(xin[base], select(0.0, xin[base + 1u], has1));
  let y01 = vec2<f32>(layer[prm.oy], select(0.0, layer[prm.oy + 1u], has1));
  let r01 = residual2(fma(x01, vec2<f32>(w), vec2<f32>(b)), y01, prm.invN);
  let m01 = vec2<f32>(1.0, select(0.0, 1.0, has1));
  let e01 = r01[0] * m01;
  let s01 = r01[1] * m01;
  var dw = dot(x01, e01) - layer[prm.oG];
  var db = e01.x + e01.y - layer[prm.og];
  lossOut[p] = fma(dw, dw, db * db);
  let g01 = 2.0 * (dw * e01 + w * s01 * (dw * x01 + db));
  gradOut[base] = g01.x;
  if (has1) {
    gradOut[base + 1u] = g01.y;
  }
}
