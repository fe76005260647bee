// Loss surface L_r over a plane, direct reference path: one invocation per grid point,
// x′_n = c_n + α·u_n + β·v_n formed in full, O(B·D·K) per point. Slow; kept as the
// reference the projected kernel (surface/projected.wgsl) is tested against.

override WG_X: u32 = 64u;

// Function-scope array needs a constant size: B·K ≤ MAX_BK (the host checks).
// MAX_BK: injected by src/gpu/kernels.ts (the kernel registry), from the caps the host checks.

struct Params {
  res: u32,
  rows: u32,
  B: u32,
  D: u32,
  K: u32,
  rowStart: u32, // global index of this tile's first row (β)
  invN: f32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> coords: array<f32>; // α_0..α_{res−1}, β_0..β_{res−1}
@group(0) @binding(2) var<storage, read> plane: array<f32>;  // c | u | v, each B·D
@group(0) @binding(3) var<storage, read> model: array<f32>;  // W (D·K) | b (K) | y (B·K) | g (K)
@group(0) @binding(4) var<storage, read> G: array<f32>;      // D·K
@group(0) @binding(5) var<storage, read_write> field: array<f32>;

fn sigmoid(t: f32) -> f32 {
  let ez = exp(-abs(t));
  return select(ez / (1.0 + ez), 1.0 / (1.0 + ez), t >= 0.0);
}

@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  let jl = gid.y;
  if (i >= P.res || jl >= P.rows) {
    return;
  }
  let B = P.B;
  let D = P.D;
  let K = P.K;
  let BD = B * D;
  let DK = D * K;
  let al = coords[i];
  let be = coords[P.res + P.rowStart + jl];

  var e: array<f32, MAX_BK>;
  for (var n = 0u; n < B; n++) {
    for (var k = 0u; k < K; k++) {
      var z = model[DK + k];
      for (var d = 0u; d < D; d++) {
        let q = n * D + d;
        let x = plane[q] + al * plane[BD + q] + be * plane[2u * BD + q];
        z += x * model[d * K + k];
      }
      let y = model[DK + K + n * K + k];
      var en: f32;
      if (y > 0.5) {
        en = (1.0 - y) - sigmoid(-z);
      } else {
        en = sigmoid(z) - y;
      }
      e[n * K + k] = en * P.invN;
    }
  }
  var L = 0.0;
  let oG = DK + K + B * K;
  for (var k = 0u; k < K; k++) {
    var sb = -model[oG + k];
    for (var n = 0u; n < B; n++) {
      sb += e[n * K + k];
    }
    L += sb * sb;
  }
  for (var d = 0u; d < D; d++) {
    for (var k = 0u; k < K; k++) {
      var acc = -G[d * K + k];
      for (var n = 0u; n < B; n++) {
        let q = n * D + d;
        let x = plane[q] + al * plane[BD + q] + be * plane[2u * BD + q];
        acc += x * e[n * K + k];
      }
      L += acc * acc;
    }
  }
  field[jl * P.res + i] = L;
}
