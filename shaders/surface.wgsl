// Loss surface L_r over a plane, projected path: one invocation per 4 consecutive grid points
// (vec4 over α) of one grid row. Per-point work is O(B·K + r·B·K) with r ≤ 3B, independent of D.
//
//   z_n(α, β) = zrow_n(β) + α·zu_n                (zrow precomputed per row on the host, f64 → f32)
//   a_n(α, β) = arow_n(β) + α·au_n  (r-vectors)   (coordinates of x′_n in an orthonormal basis Q)
//   L_r = Σ_k (Σ_n e_nk − g_k)² + Σ_{j,k} (Σ_n a_nj e_nk − H_jk)² + ‖G − QH‖²
//
// The r×K residual is accumulated element by element, so nothing cancels against ‖G‖²
// (the naive Gram expansion would, catastrophically, near the minima).

override WG_X: u32 = 64u;
// Pipeline-variant cap on B (the host picks the smallest of 2, 4, 8, ..., 64 that is ≥ B; B
// itself comes from the uniforms). Loops over samples run to NB, so the compiler unrolls them
// and keeps e_{·k} in registers: no per-invocation private-array zeroing.
override NB: u32 = 8u;
const MAX_NB: u32 = 64u;

struct Params {
  res4: u32,       // vec4s per grid row: ⌈res/4⌉
  rows: u32,       // rows in this tile (β)
  B: u32,
  K: u32,
  r: u32,          // rank of the basis Q
  stride: u32,     // floats per row in rowData: B·K (zrow, [n·K + k]) + r·B (arow, [j·B + n])
  constTerm: f32,  // ‖G − QH‖², computed once in f64
  invN: f32,       // 1/N (mean: 1/(B·K), sum: 1)
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> alphas: array<vec4f>; // α_i, padded to resPad = 4·⌈res/4⌉
@group(0) @binding(2) var<storage, read> rowData: array<f32>;  // rows × stride
// zu (B·K) | y (B·K) | au (r·B, [j·B + n]) | g (K) | H (r·K, [j·K + k])
@group(0) @binding(3) var<storage, read> consts: array<f32>;
// rows × resPad (row stride padded to whole vec4s: one 16-byte store per invocation; the host
// drops the padding on readback when res is not a multiple of 4)
@group(0) @binding(4) var<storage, read_write> field: array<vec4f>;

// σ(t) with one exp, one division and no overflow.
fn sigmoid4(t: vec4f) -> vec4f {
  let ez = exp(-abs(t));
  let inv = 1.0 / (1.0 + ez);
  return select(ez * inv, inv, t >= vec4f(0.0));
}

@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let i4 = gid.x;
  // One grid row per workgroup row. Taking it from workgroup_id (not global_invocation_id) lets
  // lavapipe see that rowData reads are uniform: 2× faster there.
  let jl = wid.y;
  if (i4 >= P.res4 || jl >= P.rows) {
    return;
  }
  let B = P.B;
  let K = P.K;
  let r = P.r;
  let BK = B * K;
  let oY = BK;
  let oAU = 2u * BK;
  let oG = oAU + r * B;
  let oH = oG + K;
  let row = jl * P.stride;
  let rowA = row + BK;
  let a = alphas[i4];

  var ek: array<vec4f, MAX_NB>; // e_{n,k} for the current k
  var L = vec4f(0.0);
  for (var k = 0u; k < K; k++) {
    var sb = vec4f(-consts[oG + k]);
    for (var n = 0u; n < NB; n++) {
      var en = vec4f(0.0);
      if (n < B) {
        let idx = n * K + k;
        let z = rowData[row + idx] + a * consts[idx];
        let y = consts[oY + idx];
        // σ(z) − y, written as (1 − y) − σ(−z) for y > ½ so y = 1 loses no digits.
        if (y > 0.5) {
          en = (1.0 - y) - sigmoid4(-z);
        } else {
          en = sigmoid4(z) - y;
        }
        en *= P.invN;
      }
      ek[n] = en;
      sb += en;
    }
    L += sb * sb;
    // (A(α)·e_{·k} − H_{·k}), element by element: A_jn = arow_jn + α·au_jn.
    for (var j = 0u; j < r; j++) {
      var acc = vec4f(-consts[oH + j * K + k]);
      for (var n = 0u; n < NB; n++) {
        if (n < B) {
          acc += (rowData[rowA + j * B + n] + a * consts[oAU + j * B + n]) * ek[n];
        }
      }
      L += acc * acc;
    }
  }
  L += vec4f(P.constTerm);

  field[jl * P.res4 + i4] = L;
}
