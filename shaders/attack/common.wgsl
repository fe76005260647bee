// Shared by the first-order attack kernels (src/gpu/kernels.ts puts it after shaders/common.wgsl): one
// uniform layout, one set of bindings, one per-restart status record. The L-BFGS constants (MAX_H,
// MAX_HALVINGS, ARMIJO_C1, CURV_EPS) are injected from src/analysis/lbfgs.ts, where they are defined.

struct Params {
  B: u32, D: u32, K: u32, BD: u32,
  DK: u32, BK: u32, P: u32, total: u32,
  iters: u32, lossKind: u32, history: u32, optStride: u32,
  gStride: u32, dispatchX: u32, _pad0: u32, _pad1: u32,
  lr: f32, momentum: f32, beta1: f32, beta2: f32,
  eps: f32, invN: f32, _pad2: f32, _pad3: f32,
}

struct RestartStat { loss: f32, bestLoss: f32, status: u32, iters: u32 }

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> lay: array<f32>;       // W (D×K) then b (K)
@group(0) @binding(2) var<storage, read> grp: array<f32>;       // per group: y (B×K), G (D×K), g (K), tolAbs, ‖(G, g)‖
@group(0) @binding(5) var<storage, read_write> stat: array<RestartStat>;
// Bindings 3 (x), 4 (best points) and 6 (optimizer state): attack/rows.wgsl (f32 views) or
// attack/stream.wgsl (vec4 views).


