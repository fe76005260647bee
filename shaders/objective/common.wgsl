// Shared by objective/invocation.wgsl and objective/workgroup.wgsl (prepended as text by src/objective/objective.ts).
// Layout (row-major, flat): x[p*BD + n*D + d], W[d*K + k], y[n*K + k], G[d*K + k].
// The layer constants live in one read-only buffer: W (D·K) | b (K) | y (B·K) | G (D·K) | g (K),
// at the offsets given in Params, so each kernel needs only four storage bindings.

struct Params {
  B: u32,
  D: u32,
  K: u32,
  P: u32,
  BD: u32,
  BK: u32,
  DK: u32,
  invN: f32, // 1/(B·K) for 'mean', 1 for 'sum'
  ob: u32,   // offset of b in `layer`
  oy: u32,   // offset of y
  oG: u32,   // offset of G (the shared ∇W)
  og: u32,   // offset of g (the shared ∇b)
  // D = K = 1, B ≤ 2 (objectivePair): the layer as uniforms, (w, b, y₀, y₁) and (G, g, 0, 0); a
  // uniform is a broadcast where a storage read is a load per lane on CPU adapters
  pairLayer: vec4<f32>,
  pairTarget: vec4<f32>,
}

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> layer: array<f32>;
@group(0) @binding(2) var<storage, read> xin: array<f32>;
@group(0) @binding(3) var<storage, read_write> lossOut: array<f32>;
@group(0) @binding(4) var<storage, read_write> gradOut: array<f32>;

// (e, s) for one logit: e = (σ(z) − y)·invN, s = σ(1 − σ)·invN.
// Stable for any z: only exp(−|z|) is formed, and σ − y = σ(1 − y) − (1 − σ)y avoids 1 − 1 cancellation.
fn residual(z: f32, y: f32, invN: f32) -> vec2<f32> {
  let t = exp(-abs(z));
  let inv = 1.0 / (1.0 + t);
  let small = t * inv; // the smaller of σ and 1 − σ
  let sig = select(small, inv, z >= 0.0);
  let oneMinus = select(inv, small, z >= 0.0);
  return vec2<f32>((sig * (1.0 - y) - oneMinus * y) * invN, small * inv * invN);
}
