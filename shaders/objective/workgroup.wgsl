// L_r and ∇ₓ′L_r, one workgroup per restart (large D, e.g. D=784, K=10, B up to 64).
// Invocation `lid` owns the input features d ≡ lid (mod WG). Sums over d (the logits z and
// u = ΔWᵀx′_n) are reduced across the workgroup through `red` in a fixed order, so runs are bit-identical.
// Caps: K ≤ MAX_K, B·K ≤ MAX_BK (workgroup arrays). Rows are processed in chunks of ACC / K
// (ACC private accumulators per invocation). Needs objective/common.wgsl in front.
//
// Note on lavapipe (gallivm): runtime-indexed private arrays (acc, w, dw) live in memory there, which
// makes this kernel slow on CPUs. A register-tiled variant (8 rows × 12 outputs written out straight-line,
// vec4 layout) ran ~2× faster but took 75–130 s per pipeline to compile on lavapipe, so it is not used.

// ACC, MAX_BK, MAX_K: injected by src/gpu/kernels.ts (the kernel registry), from the caps the host checks.

override WG: u32 = 64u;

var<workgroup> red: array<f32, WG * ACC>; // partial sums, red[j*WG + lid]
var<workgroup> esh: array<f32, MAX_BK>;   // e[n*K + k]
var<workgroup> tsh: array<f32, MAX_BK>;   // s[n*K + k], then t = s ⊙ (ΔWᵀx′_n + Δb)
var<workgroup> dbsh: array<f32, MAX_K>;   // Δb

@compute @workgroup_size(WG)
fn objectiveWorkgroup(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let p = wid.x + wid.y * nwg.x;
  if (p >= prm.P) {
    return; // workgroup-uniform
  }
  let B = prm.B;
  let D = prm.D;
  let K = prm.K;
  let base = p * prm.BD;
  let R = ACC / K; // rows per chunk

  var acc: array<f32, ACC>;
  var w: array<f32, MAX_K>;
  var dw: array<f32, MAX_K>;

  // 1. z_n = Wᵀx′_n + b for a chunk of rows, then e and s.
  for (var n0 = 0u; n0 < B; n0 += R) {
    let nr = min(R, B - n0);
    let rk = nr * K;
    for (var j = 0u; j < rk; j++) {
      acc[j] = 0.0;
    }
    for (var d = lid; d < D; d += WG) {
      for (var k = 0u; k < K; k++) {
        w[k] = layer[d * K + k];
      }
      for (var r = 0u; r < nr; r++) {
        let xv = xin[base + (n0 + r) * D + d];
        for (var k = 0u; k < K; k++) {
          acc[r * K + k] = fma(xv, w[k], acc[r * K + k]);
        }
      }
    }
    for (var j = 0u; j < rk; j++) {
      red[j * WG + lid] = acc[j];
    }
    workgroupBarrier();
    for (var j = lid; j < rk; j += WG) {
      let k = j % K;
      var z = 0.0;
      for (var i = 0u; i < WG; i++) {
        z += red[j * WG + i];
      }
      let res = residual(z + layer[prm.ob + k], layer[prm.oy + n0 * K + j], prm.invN);
      esh[n0 * K + j] = res.x;
      tsh[n0 * K + j] = res.y;
    }
    workgroupBarrier();
  }

  // 2. Δb = Σ_n e_n − g.
  for (var k = lid; k < K; k += WG) {
    var a = -layer[prm.og + k];
    for (var n = 0u; n < B; n++) {
      a += esh[n * K + k];
    }
    dbsh[k] = a;
  }
  workgroupBarrier();

  // 3. ΔW[d, :] (recomputed per row chunk), ‖ΔW‖² and u_n = ΔWᵀx′_n + Δb; t = s ⊙ u.
  var lossPart = 0.0;
  for (var n0 = 0u; n0 < B; n0 += R) {
    let nr = min(R, B - n0);
    let rk = nr * K;
    for (var j = 0u; j < rk; j++) {
      acc[j] = 0.0;
    }
    for (var d = lid; d < D; d += WG) {
      for (var k = 0u; k < K; k++) {
        dw[k] = -layer[prm.oG + d * K + k];
      }
      for (var n = 0u; n < B; n++) {
        let xv = xin[base + n * D + d];
        for (var k = 0u; k < K; k++) {
          dw[k] = fma(xv, esh[n * K + k], dw[k]);
        }
      }
      if (n0 == 0u) {
        for (var k = 0u; k < K; k++) {
          lossPart = fma(dw[k], dw[k], lossPart);
        }
      }
      for (var r = 0u; r < nr; r++) {
        let xv = xin[base + (n0 + r) * D + d];
        for (var k = 0u; k < K; k++) {
          acc[r * K + k] = fma(dw[k], xv, acc[r * K + k]);
        }
      }
    }
    for (var j = 0u; j < rk; j++) {
      red[j * WG + lid] = acc[j];
    }
    workgroupBarrier();
    for (var j = lid; j < rk; j += WG) {
      var u = 0.0;
      for (var i = 0u; i < WG; i++) {
        u += red[j * WG + i];
      }
      tsh[n0 * K + j] *= u + dbsh[j % K];
    }
    workgroupBarrier();
  }

  // L_r = ‖ΔW‖² + ‖Δb‖², lane partials summed in lane order.
  red[lid] = lossPart;
  workgroupBarrier();
  if (lid == 0u) {
    var l = 0.0;
    for (var i = 0u; i < WG; i++) {
      l += red[i];
    }
    for (var k = 0u; k < K; k++) {
      l = fma(dbsh[k], dbsh[k], l);
    }
    lossOut[p] = l;
  }

  // 4. ∇_{x′_n}[d] = 2·(ΔW[d, :]·e_n + W[d, :]·t_n).
  for (var d = lid; d < D; d += WG) {
    for (var k = 0u; k < K; k++) {
      dw[k] = -layer[prm.oG + d * K + k];
      w[k] = layer[d * K + k];
    }
    for (var n = 0u; n < B; n++) {
      let xv = xin[base + n * D + d];
      for (var k = 0u; k < K; k++) {
        dw[k] = fma(xv, esh[n * K + k], dw[k]);
      }
    }
    for (var n = 0u; n < B; n++) {
      var g = 0.0;
      for (var k = 0u; k < K; k++) {
        g = fma(dw[k], esh[n * K + k], g);
        g = fma(w[k], tsh[n * K + k], g);
      }
      gradOut[base + n * D + d] = 2.0 * g;
    }
  }
}
