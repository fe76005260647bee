// Loss surface L_r over a plane, projected path. Per-point work is O(B·K + r·B·K) with r ≤ 3B,
// independent of D.
//
//   t_n(α, β) = trow_n(β) + α·tu_n                (sign-folded z_n, per row precomputed on the host, f64 → f32)
//   e_n       = p_n·σ(t_n) + q_n                   (= (σ(z) − y)/N, or ((1 − y) − σ(−z))/N for y > ½,
//                                                    so y = 1 loses no digits; the host picks the form)
//   a_n(α, β) = arow_n(β) + α·au_n  (r-vectors)   (coordinates of x′_n in an orthonormal basis Q)
//   L_r = Σ_k (Σ_n e_nk − g_k)² + Σ_{j,k} (Σ_n a_nj e_nk − H_jk)² + ‖G − QH‖²
//
// The r×K residual is accumulated element by element, so nothing cancels against ‖G‖²
// (the naive Gram expansion would, catastrophically, near the minima).
//
// One invocation per 16 consecutive grid points of a row (four vec4s over α: the per-(k, j, n)
// constant and row loads are shared by 16 points), any B ≤ MAX_NB. Problems with B ≤ 2
// use shaders/surface/small.wgsl instead (the host picks; both agree with the CPU reference).

override WG_X: u32 = 64u;
// Pipeline variant: the smallest of 2, 4, 8, ..., 64 that is ≥ B. The host pads the samples to
// NB with zero rows (p = q = 0 ⇒ e = 0; zero coordinates: they add exact zeros), so P.B = NB and
// the sample loops have a constant trip count and no guards: the compiler unrolls them and keeps
// e_{·k} in registers.
override NB: u32 = 8u;
// Constants from the uniform copy `C` (cheap broadcast loads on CPU drivers: ~3× faster on
// lavapipe) when they fit its 64 KiB, else from the storage buffer `consts`. The host binds a
// placeholder to the one not used.
override UNI: bool = true;
// MAX_C, MAX_NB: injected by src/gpu/kernels.ts (the kernel registry), from the caps the host checks.
// GEOM (with UNI only): one exp per (n, k) serves the invocation's 16 points. Along a row the grid is
// arithmetic in α, so e^{−t(α_i + m·h)} = e^{−t(α_i)}·ρ^m with ρ = e^{−tu·h}; the host puts ρ⁴ in the
// fourth component of C[k·B + n] and (1, ρ, ρ², ρ³) at C[GEO + k·B + n] (f64 powers), and turns GEOM on
// only where every ρ^m (m ≤ 15) stays within e^{±60}, as in surface/small.wgsl. B·K exps per 16 points
// instead of 16·B·K: 2× at (8,784,10) on lavapipe.
override GEOM: bool = false;


struct Params {
  res4: u32,       // vec4s per grid row (row stride of `field`; rows are padded to 16 floats)
  rows: u32,       // rows in this tile (β)
  B: u32,
  K: u32,
  r: u32,          // rank of the basis Q
  stride: u32,     // floats per row in rowData: B·K (trow, [n·K + k]) + r·B (arow, [j·B + n])
  constTerm: f32,  // ‖G − QH‖², computed once in f64
  _pad: f32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> alphas: array<vec4f>; // α_i, padded to 4·res4
@group(0) @binding(2) var<storage, read> rowData: array<f32>;  // rows × stride
// tu (B·K) | p (B·K) | q (B·K) | au (r·B, [j·B + n]) | g (K) | H (r·K, [j·K + k])
@group(0) @binding(3) var<storage, read> consts: array<f32>;
// rows × 4·res4 (row stride padded to groups of four vec4s; the host drops the padding on readback)
@group(0) @binding(4) var<storage, read_write> field: array<vec4f>;
// The same constants, one vec4 per load: [k·B + n] = (tu, p, q, ρ⁴) | [B·K + k·(1 + r)] = (−g_k, …)
// and [B·K + k·(1 + r) + 1 + j] = (−H_jk, …) | [B·K + K·(1 + r) + j·B + n] = (au_jn, …)
// | GEOM: [GEO + k·B + n] = (1, ρ, ρ², ρ³) with GEO = B·K + K·(1 + r) + r·B.
@group(0) @binding(5) var<uniform> C: array<vec4f, MAX_C>;

// (tu, p, q) of sample n, output k.
fn tpq(n: u32, k: u32) -> vec3f {
  if (UNI) {
    return C[k * P.B + n].xyz;
  }
  let idx = n * P.K + k;
  let BK = P.B * P.K;
  return vec3f(consts[idx], consts[BK + idx], consts[2u * BK + idx]);
}

// −g_k (j = 0) or −H_{j−1,k} (j ≥ 1).
fn negGH(j: u32, k: u32) -> f32 {
  if (UNI) {
    return C[P.B * P.K + k * (1u + P.r) + j].x;
  }
  let oG = 3u * P.B * P.K + P.r * P.B;
  if (j == 0u) {
    return -consts[oG + k];
  }
  return -consts[oG + P.K + (j - 1u) * P.K + k];
}

fn au(j: u32, n: u32) -> f32 {
  if (UNI) {
    return C[P.B * P.K + P.K * (1u + P.r) + j * P.B + n].x;
  }
  return consts[3u * P.B * P.K + j * P.B + n];
}

// σ(t) = 1/(1 + e^−t) with one exp and one division; the clamp keeps e^−t finite (σ < 2e-35 there).
fn sigmoid4(t: vec4f) -> vec4f {
  return 1.0 / (1.0 + exp(min(-t, vec4f(80.0))));
}

@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let i4 = 4u * gid.x; // four vec4s (16 grid points) per invocation: loads of constants amortised
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
  let row = jl * P.stride;
  let rowA = row + BK;
  let a = array<vec4f, 4>(alphas[i4], alphas[i4 + 1u], alphas[i4 + 2u], alphas[i4 + 3u]);

  var ek: array<array<vec4f, 4>, MAX_NB>; // e_{n,k} for the current k, per vec4 of points
  var L = array<vec4f, 4>(vec4f(0.0), vec4f(0.0), vec4f(0.0), vec4f(0.0));
  for (var k = 0u; k < K; k++) {
    let g = vec4f(negGH(0u, k));
    var sb = array<vec4f, 4>(g, g, g, g);
    for (var n = 0u; n < NB; n++) {
      let t = rowData[row + n * K + k];
      if (GEOM) {
        let c = C[k * B + n];
        var E = exp(min(-(t + a[0].x * c.x), 80.0)) * C[B * K + K * (1u + r) + r * B + k * B + n];
        for (var m = 0u; m < 4u; m++) {
          let en = c.y / (1.0 + E) + c.z;
          ek[n][m] = en;
          sb[m] += en;
          E *= c.w;
        }
      } else {
        let c = tpq(n, k);
        for (var m = 0u; m < 4u; m++) {
          let en = c.y * sigmoid4(t + a[m] * c.x) + c.z;
          ek[n][m] = en;
          sb[m] += en;
        }
      }
    }
    for (var m = 0u; m < 4u; m++) {
      L[m] += sb[m] * sb[m];
    }
    // (A(α)·e_{·k} − H_{·k}), element by element: A_jn = arow_jn + α·au_jn.
    for (var j = 0u; j < r; j++) {
      let h = vec4f(negGH(1u + j, k));
      var acc = array<vec4f, 4>(h, h, h, h);
      for (var n = 0u; n < NB; n++) {
        let ra = rowData[rowA + j * B + n];
        let u = au(j, n);
        for (var m = 0u; m < 4u; m++) {
          acc[m] += (ra + a[m] * u) * ek[n][m];
        }
      }
      for (var m = 0u; m < 4u; m++) {
        L[m] += acc[m] * acc[m];
      }
    }
  }
  let o = jl * P.res4 + i4;
  for (var m = 0u; m < 4u; m++) {
    field[o + m] = L[m] + vec4f(P.constTerm);
  }
}
