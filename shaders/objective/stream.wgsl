// L_r and ∇ₓ′L_r, one invocation per restart, x′ streamed from memory four features at a time (large D,
// small B·K: e.g. B=8, D=784, K=10). Three entry points, dispatched in this order, each one pass over
// the features d (in vec4 groups d4), with per-restart scratch [e (B·K) | s, then t (B·K)] between them:
//   objectiveStreamLogits:   z_n = Wᵀx′_n + b → e_n, s_n
//   objectiveStreamResidual: Δb = Σ_n e_n − g; ΔW[d, :] = Σ_n x′_n[d]·e_n − G[d, :]; L_r = ‖ΔW‖² + ‖Δb‖²;
//                            u_n = ΔWᵀx′_n → t_n = s_n ⊙ (u_n + Δb)
//   objectiveStreamGradient: ∇_{x′_n}[d] = 2·(ΔW[d, :]·e_n + W[d, :]·t_n)   (ΔW[d, :] recomputed)
// Why this shape: on CPU adapters (lavapipe) a lane is an invocation; a load whose address is the same in
// every lane (W, G: the d loop is uniform) is one scalar load, while a per-lane load costs a bounds-checked
// fetch per lane, so x′ and ∇ move as vec4s (5× faster than f32 there). B and K are override constants
// (FB, FK): every loop but the one over d has a constant trip count and is unrolled, which keeps the B·K
// values in registers; one entry point per pass keeps each small enough for that (a single kernel with
// all three passes ran 4× slower). The host picks this family only where D % 4 = 0 and B·K ≤ MAX_BK.
// Sums run in a fixed order, so runs are bit-identical. Needs objective/common.wgsl in front; x′ and ∇
// go through vec4 views of bindings 2 and 4 (xin and gradOut are never touched here).

// MAX_BK, MAX_K, MAX_COLS: injected by src/gpu/kernels.ts (the kernel registry), from the caps the host checks.
// vec4s in the column block (64 KiB, WebGPU's default maxUniformBufferBindingSize): D·K/4 of W, then of G.

override WG: u32 = 64u;
override FB: u32 = 1u;
override FK: u32 = 1u;

@group(0) @binding(2) var<storage, read> xin4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> gradOut4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> scratch: array<f32>;
// W and G by vec4 of features: cols[d4·K + k] = W[4·d4 … 4·d4 + 3, k], then G likewise from D·K/4 on.
// A uniform block: its loads are broadcasts, where 40 scalar storage loads per step cost 3.7× here.
@group(0) @binding(6) var<uniform> cols: array<vec4<f32>, MAX_COLS>;

// Column k of W (o = 0) or of G (o = D·K/4) for features 4·d4 … 4·d4 + 3.
fn column4(o: u32, d4: u32, k: u32) -> vec4<f32> {
  return cols[o + d4 * FK + k];
}

fn restartIndex(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(WG)
fn objectiveStreamLogits(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let p = restartIndex(gid, nwg);
  if (p >= prm.P) {
    return;
  }
  let D4 = prm.D / 4u;
  let base4 = p * FB * D4;
  var z: array<f32, MAX_BK>;
  for (var n = 0u; n < FB; n++) {
    for (var k = 0u; k < FK; k++) {
      z[n * FK + k] = layer[prm.ob + k];
    }
  }
  for (var d4 = 0u; d4 < D4; d4++) {
    var w: array<vec4<f32>, MAX_K>;
    for (var k = 0u; k < FK; k++) {
      w[k] = column4(0u, d4, k);
    }
    for (var n = 0u; n < FB; n++) {
      let xv = xin4[base4 + n * D4 + d4];
      for (var k = 0u; k < FK; k++) {
        z[n * FK + k] += dot(xv, w[k]);
      }
    }
  }
  let o = p * 2u * FB * FK;
  for (var n = 0u; n < FB; n++) {
    for (var k = 0u; k < FK; k++) {
      let res = residual(z[n * FK + k], layer[prm.oy + n * FK + k], prm.invN);
      scratch[o + n * FK + k] = res.x;
      scratch[o + FB * FK + n * FK + k] = res.y;
    }
  }
}

@compute @workgroup_size(WG)
fn objectiveStreamResidual(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let p = restartIndex(gid, nwg);
  if (p >= prm.P) {
    return;
  }
  let D4 = prm.D / 4u;
  let base4 = p * FB * D4;
  let o = p * 2u * FB * FK;
  var e: array<f32, MAX_BK>;
  var u: array<f32, MAX_BK>;
  var db: array<f32, MAX_K>;
  for (var k = 0u; k < FK; k++) {
    db[k] = -layer[prm.og + k];
  }
  for (var n = 0u; n < FB; n++) {
    for (var k = 0u; k < FK; k++) {
      e[n * FK + k] = scratch[o + n * FK + k];
      db[k] += e[n * FK + k];
      u[n * FK + k] = 0.0;
    }
  }
  var loss4 = vec4<f32>(0.0);
  for (var d4 = 0u; d4 < D4; d4++) {
    var x: array<vec4<f32>, MAX_BK>;
    var dw: array<vec4<f32>, MAX_K>;
    for (var k = 0u; k < FK; k++) {
      dw[k] = -column4(prm.DK / 4u, d4, k);
    }
    for (var n = 0u; n < FB; n++) {
      x[n] = xin4[base4 + n * D4 + d4];
      for (var k = 0u; k < FK; k++) {
        dw[k] = fma(x[n], vec4<f32>(e[n * FK + k]), dw[k]);
      }
    }
    for (var k = 0u; k < FK; k++) {
      loss4 = fma(dw[k], dw[k], loss4);
    }
    for (var n = 0u; n < FB; n++) {
      for (var k = 0u; k < FK; k++) {
        u[n * FK + k] += dot(dw[k], x[n]);
      }
    }
  }
  var loss = (loss4.x + loss4.y) + (loss4.z + loss4.w);
  for (var k = 0u; k < FK; k++) {
    loss = fma(db[k], db[k], loss);
  }
  lossOut[p] = loss;
  for (var n = 0u; n < FB; n++) {
    for (var k = 0u; k < FK; k++) {
      let i = o + FB * FK + n * FK + k;
      scratch[i] = scratch[i] * (u[n * FK + k] + db[k]); // s → t
    }
  }
}

@compute @workgroup_size(WG)
fn objectiveStreamGradient(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let p = restartIndex(gid, nwg);
  if (p >= prm.P) {
    return;
  }
  let D4 = prm.D / 4u;
  let base4 = p * FB * D4;
  let o = p * 2u * FB * FK;
  var e: array<f32, MAX_BK>;
  var t: array<f32, MAX_BK>;
  for (var n = 0u; n < FB; n++) {
    for (var k = 0u; k < FK; k++) {
      e[n * FK + k] = scratch[o + n * FK + k];
      t[n * FK + k] = scratch[o + FB * FK + n * FK + k];
    }
  }
  for (var d4 = 0u; d4 < D4; d4++) {
    var x: array<vec4<f32>, MAX_BK>;
    var dw: array<vec4<f32>, MAX_K>;
    var w: array<vec4<f32>, MAX_K>;
    for (var k = 0u; k < FK; k++) {
      dw[k] = -column4(prm.DK / 4u, d4, k);
      w[k] = column4(0u, d4, k);
    }
    for (var n = 0u; n < FB; n++) {
      x[n] = xin4[base4 + n * D4 + d4];
      for (var k = 0u; k < FK; k++) {
        dw[k] = fma(x[n], vec4<f32>(e[n * FK + k]), dw[k]);
      }
    }
    for (var n = 0u; n < FB; n++) {
      var g = vec4<f32>(0.0);
      for (var k = 0u; k < FK; k++) {
        g = fma(dw[k], vec4<f32>(e[n * FK + k]), g);
        g = fma(w[k], vec4<f32>(t[n * FK + k]), g);
      }
      gradOut4[base4 + n * D4 + d4] = 2.0 * g;
    }
  }
}
