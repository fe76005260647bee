// The victim's gradient for one batch: ∇W = Σ_n x_n e_nᵀ, ∇b = Σ_n e_n, e_n = (σ(Wᵀx_n + b) − y_n)/N.
// Two entry points, dispatched in order in one pass: `residuals` (one invocation per (n, k)) and
// `gradient` (one invocation per ∇W or ∇b entry). Each output is summed by one invocation in a fixed order.
// `layer` holds W (D·K) | b (K) | y (B·K) at the offsets in Params.

struct Params {
  B: u32,
  D: u32,
  K: u32,
  groupsX: u32, // invocations per row of the 2-D dispatch = groupsX·WG
  ob: u32,
  oy: u32,
  invN: f32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> layer: array<f32>;
@group(0) @binding(2) var<storage, read> xin: array<f32>;
@group(0) @binding(3) var<storage, read_write> ebuf: array<f32>; // e[n*K + k]
@group(0) @binding(4) var<storage, read_write> out: array<f32>;  // ∇W (D·K) | ∇b (K)

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn residuals(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * prm.groupsX * WG;
  if (i >= prm.B * prm.K) {
    return;
  }
  let n = i / prm.K;
  let k = i % prm.K;
  var z = layer[prm.ob + k];
  for (var d = 0u; d < prm.D; d++) {
    z = fma(xin[n * prm.D + d], layer[d * prm.K + k], z);
  }
  // σ(z) − y without cancellation: σ(1 − y) − (1 − σ)y, with only exp(−|z|) formed.
  let t = exp(-abs(z));
  let inv = 1.0 / (1.0 + t);
  let sig = select(t * inv, inv, z >= 0.0);
  let oneMinus = select(inv, t * inv, z >= 0.0);
  let y = layer[prm.oy + i];
  ebuf[i] = (sig * (1.0 - y) - oneMinus * y) * prm.invN;
}

@compute @workgroup_size(WG)
fn gradient(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * prm.groupsX * WG;
  let DK = prm.D * prm.K;
  if (i < DK) {
    let d = i / prm.K;
    let k = i % prm.K;
    var a = 0.0;
    for (var n = 0u; n < prm.B; n++) {
      a = fma(xin[n * prm.D + d], ebuf[n * prm.K + k], a);
    }
    out[i] = a;
  } else if (i < DK + prm.K) {
    let k = i - DK;
    var a = 0.0;
    for (var n = 0u; n < prm.B; n++) {
      a += ebuf[n * prm.K + k];
    }
    out[i] = a;
  }
}
