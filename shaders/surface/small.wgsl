// Loss surface L_r over a plane, projected path, specialised for B ≤ 2 (the host pads B = 1 with a
// zero sample: p = q = 0 ⇒ e = 0, zero coordinates). Same formulas as shaders/surface/projected.wgsl:
//
//   t_n(α, β) = trow_n(β) + α·tu_n,   e_n = p_n·σ(t_n) + q_n,   a_n(α, β) = arow_n(β) + α·au_n
//   L_r = Σ_k (Σ_n e_nk − g_k)² + Σ_{j,k} (Σ_n a_nj e_nk − H_jk)² + ‖G − QH‖²
//
// residuals accumulated element by element (never the Gram expansion). Why a separate kernel: on
// lavapipe/SwiftShader runtime-indexed private arrays, guards, storage-buffer loads and
// per-invocation overhead dominate these tiny problems. Here the two samples are straight-line
// code, the per-(k, j) constants come packed in a uniform buffer (cheap broadcast loads), and
// each invocation computes 16 grid points (four vec4s along α).
//
// GEOM: one exp per sample serves all 16 points. Along a row the grid is arithmetic in α, so
// e^{−t(α_i + m·h)} = e^{−t(α_i)}·ρ^m with ρ = e^{−tu·h}; the host precomputes (1, ρ, ρ², ρ³)
// and ρ⁴ in f64 (a few ulp after the 3 chained products: no error growth along the row) and
// turns GEOM on only where every ρ^m (m ≤ 15) stays within e^{±60}, so a clamped or underflowed
// base is harmless (σ is then within 1e-26 of 0 or 1 either way).

override WG_X: u32 = 64u;
override GEOM: bool = true;
// Fixed K and r (0 = read them from P). Fixed, the k and j loops have constant trip counts and
// lavapipe's LLVM unrolls them: 2.2× at K = r = 1. The host fixes them only for small K·(r + 1).
override FK: u32 = 0u;
override FR: u32 = 0u;
// Uniform capacity in vec4s (64 KiB, WebGPU's default maxUniformBufferBindingSize); the host
// uses this kernel only when K·(5 + r) fits.
// MAX_C: injected by src/gpu/kernels.ts (the kernel registry), from the caps the host checks.

struct Params {
  res4: u32,       // vec4s per grid row (row stride of `field`, a multiple of 4)
  rows: u32,       // rows in this tile (β)
  B: u32,          // 2
  K: u32,
  r: u32,          // rank of the basis Q
  stride: u32,     // floats per row in rowData: 2·K (trow, [n·K + k]) + 2·r (arow, [j·2 + n])
  constTerm: f32,  // ‖G − QH‖², computed once in f64
  _pad: f32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> alphas: array<vec4f>; // α_i, padded to 4·res4
@group(0) @binding(2) var<storage, read> rowData: array<f32>;  // rows × stride
// Per k, at k·(5 + r): (tu_0k, tu_1k, p_0k, p_1k), (q_0k, q_1k, −g_k, 0), (1, ρ_0k, ρ_0k², ρ_0k³),
// (1, ρ_1k, ρ_1k², ρ_1k³), (ρ_0k⁴, ρ_1k⁴, 0, 0), then for j < r: (au_j0, au_j1, −H_jk, 0).
@group(0) @binding(3) var<uniform> C: array<vec4f, MAX_C>;
@group(0) @binding(4) var<storage, read_write> field: array<vec4f>;

// σ(t) = 1/(1 + e^−t) with one exp and one division; the clamp keeps e^−t finite (σ < 2e-35 there).
fn sigmoid4(t: vec4f) -> vec4f {
  return 1.0 / (1.0 + exp(min(-t, vec4f(80.0))));
}

@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let i4 = 4u * gid.x; // first of this invocation's four vec4s (res4 is a multiple of 4)
  let jl = wid.y;      // from workgroup_id: lavapipe then sees rowData reads as uniform
  if (i4 >= P.res4 || jl >= P.rows) {
    return;
  }
  let K = select(P.K, FK, FK != 0u);
  let r = select(P.r, FR, FR != 0u);
  let row = jl * P.stride;
  let rowA = row + 2u * K;
  let a = array<vec4f, 4>(alphas[i4], alphas[i4 + 1u], alphas[i4 + 2u], alphas[i4 + 3u]);

  var L = array<vec4f, 4>(vec4f(0.0), vec4f(0.0), vec4f(0.0), vec4f(0.0));
  for (var k = 0u; k < K; k++) {
    let c = k * (5u + r);
    let up = C[c];
    let qg = C[c + 1u];
    let t0 = rowData[row + k];
    let t1 = rowData[row + K + k];
    var e0: array<vec4f, 4>;
    var e1: array<vec4f, 4>;
    if (GEOM) {
      let r4 = C[c + 4u];
      var E0 = exp(min(-(t0 + a[0].x * up.x), 80.0)) * C[c + 2u];
      var E1 = exp(min(-(t1 + a[0].x * up.y), 80.0)) * C[c + 3u];
      for (var m = 0u; m < 4u; m++) {
        e0[m] = up.z / (1.0 + E0) + qg.x;
        e1[m] = up.w / (1.0 + E1) + qg.y;
        E0 *= r4.x;
        E1 *= r4.y;
      }
    } else {
      for (var m = 0u; m < 4u; m++) {
        e0[m] = up.z * sigmoid4(t0 + a[m] * up.x) + qg.x;
        e1[m] = up.w * sigmoid4(t1 + a[m] * up.y) + qg.y;
      }
    }
    for (var m = 0u; m < 4u; m++) {
      let s = (qg.z + e0[m]) + e1[m];
      L[m] += s * s;
    }
    for (var j = 0u; j < r; j++) {
      let ah = C[c + 5u + j];
      let ra0 = rowData[rowA + 2u * j];
      let ra1 = rowData[rowA + 2u * j + 1u];
      for (var m = 0u; m < 4u; m++) {
        let acc = (ah.z + (ra0 + a[m] * ah.x) * e0[m]) + (ra1 + a[m] * ah.y) * e1[m];
        L[m] += acc * acc;
      }
    }
  }
  let o = jl * P.res4 + i4;
  for (var m = 0u; m < 4u; m++) {
    field[o + m] = L[m] + vec4f(P.constTerm);
  }
}
