// One restart's private copy of the layer and its target, and the per-sample sums, for the kernels that
// keep a whole restart in private arrays (attack/invocation.wgsl, attack/lm.wgsl). The caps (MAX_DK, MAX_K,
// MAX_BK) are each kernel's own, injected by src/gpu/kernels.ts.
var<private> wW: array<f32, MAX_DK>;   // W (D×K)
var<private> wb: array<f32, MAX_K>;    // b
var<private> ty: array<f32, MAX_BK>;   // the labels y (B×K)
var<private> tG: array<f32, MAX_DK>;   // the target ∇W
var<private> tg: array<f32, MAX_K>;    // the target ∇b
var<private> ee: array<f32, MAX_BK>;   // e = (σ(z) − y)/N
var<private> ss: array<f32, MAX_BK>;   // σ(1 − σ)/N
var<private> aM: array<f32, MAX_DK>;   // ΔW = ∇W(x) − G
var<private> am: array<f32, MAX_K>;    // Δb = ∇b(x) − g
var<private> tt: array<f32, MAX_K>;
