/**
 * The L-BFGS constants, defined once: the float64 CPU engine uses them, and the kernel registry
 * (src/gpu/kernels.ts) injects them into every attack kernel's WGSL.
 */

/** L-BFGS history is capped (GPU kernels keep it in fixed-size arrays). */
export const LBFGS_MAX_HISTORY = 8;
/** At most this many step halvings per L-BFGS iteration (so at most this + 1 evaluations). */
export const LBFGS_MAX_HALVINGS = 10;
/** Armijo's sufficient-decrease constant. */
export const LBFGS_ARMIJO_C1 = 1e-4;
/** A pair (s, y) enters the history only when sᵀy > this·‖s‖·‖y‖. */
export const LBFGS_CURVATURE_EPS = 1e-7;
