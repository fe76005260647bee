// Shared by the attack kernels, first-order and lm (src/gpu/kernels.ts puts it in front of their sources,
// after the constants it injects: array caps, the L-BFGS and LM constants).

// σ(z) without overflow for either sign of z.
fn sigm(z: f32) -> f32 {
  let ez = exp(-abs(z));
  let r = 1.0 / (1.0 + ez);
  return select(ez * r, r, z >= 0.0);
}

// NaN fails the comparison; ±Inf exceeds the largest f32.
fn isFinite(v: f32) -> bool { return abs(v) <= 3.4028234e38; }
