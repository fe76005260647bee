// Loss surface L_r over a plane, projected path, for B ≤ 16 and K ≤ 16 with B and K fixed per
// pipeline, so that every loop has a constant trip count and unrolls. Same quantity as
// shaders/surface/projected.wgsl, in a per-row basis:
//
//   along grid row β the batch is x′_n(α) = X_n + α·U_n with X_n = c_n + β·v_n, U_n = u_n. The host
//   (f64) orthonormalises X_0, U_0, X_1, U_1, … (U_n only where u_n ≠ 0, bit n of UMASK) into NS ≤ 2B
//   slots, so sample n has coordinates only in slots ≤ its own: a triangular A(α) = a + α·b.
//   t_nk(α) = trow_nk + α·tu_nk,   e_nk = p_nk·σ(t_nk) + q_nk   (sign-folded, see surface/projected.wgsl)
//   L_r = Σ_k (Σ_n e_nk − g_k)² + Σ_{j<NS, k} (Σ_{n ≥ n0(j)} A_jn e_nk − Hr_jk)² + c_row
//
// with Hr = PᵀH and c_row = ‖G − QH‖² + ‖H − P·Hr‖² per row (f64 on the host). Residuals are
// accumulated element by element: nothing cancels against ‖G‖² (no Gram expansion).
//
// Why this shape (lavapipe, Mesa 25.0): a loop that is not unrolled keeps its counter per lane, so
// every read it indexes becomes a lane-by-lane gather; reads at constant addresses are one scalar
// load and a broadcast. Loops here are unrolled by construction: trip counts come from override
// constants, and loops whose unrolled body would exceed the compiler's unroll budget are split into
// calls with constant arguments (errors4, slots4, residual2). Constants come from workgroup memory, filled once
// per workgroup (one grid row): uniform- and storage-buffer reads carry a bounds check each. Each
// invocation computes four consecutive points of its row (a vec4 along α), so every constant read
// serves four points.
//
// GEOM: one exp per (n, k) serves the four points. Along a row the grid is arithmetic in α, so
// e^{−t(α_i + m·h)} = e^{−t(α_i)}·ρ^m with ρ = e^{−tu·h}; the host stores (1, ρ, ρ², ρ³) (f64 powers)
// and turns GEOM on only where every ρ^m stays within e^{±20}: a clamped e^{−t} (80) then still gives
// e^{−t} ≥ e^{60}, σ < 1e-26, and an underflowed one σ = 1 within 1e-29.

override WG_X: u32 = 128u;
override NB: u32 = 8u;         // B
override FK: u32 = 10u;        // K
override UMASK: u32 = 0xffffu; // bit n: sample n has a U slot (u_n ≠ 0)
override GEOM: bool = true;

// MAX_S: injected by src/gpu/kernels.ts (the kernel registry), from the caps the host checks.

struct Params {
  res4: u32,    // vec4s per row of `field` (the row pitch; rows padded to whole vec4s)
  rows: u32,    // rows in this tile (the dispatch covers exactly these)
  stride: u32,  // floats per row block in rowData
  _pad: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> alphas: array<vec4f>; // α_i, padded to 4·res4
// Per row: trow [k·B + n] | tu | p | q | (1, ρ, ρ², ρ³) [4(k·B + n) + m] | −g_k | a [j·B + n] | b [j·B + n]
// | −Hr [j·K + k] | c_row
@group(0) @binding(2) var<storage, read> rowData: array<f32>;
@group(0) @binding(3) var<storage, read_write> field: array<vec4f>; // rows × res4

var<workgroup> S: array<f32, MAX_S>;
var<private> e: array<vec4f, 256>; // e_nk at [k·B + n]

// Slot of X_n; U_n (when present) takes the next one.
fn slotX(n: u32) -> u32 {
  return n + countOneBits(UMASK & ((1u << n) - 1u));
}
fn hasU(n: u32) -> bool {
  return ((UMASK >> n) & 1u) != 0u;
}
fn slotCount() -> u32 {
  return slotX(NB - 1u) + select(1u, 2u, hasU(NB - 1u));
}
// The first sample with a coordinate in slot j (later samples all have one).
fn firstSample(j: u32) -> u32 {
  var m = 0u;
  for (var n = 0u; n < NB; n++) {
    if (slotX(n) <= j) {
      m = n;
    }
  }
  return m;
}

fn oTU() -> u32 { return NB * FK; }
fn oP() -> u32 { return 2u * NB * FK; }
fn oQ() -> u32 { return 3u * NB * FK; }
fn oR() -> u32 { return 4u * NB * FK; }
fn oG() -> u32 { return 8u * NB * FK; }
fn oA() -> u32 { return oG() + FK; }
fn oB() -> u32 { return oA() + slotCount() * NB; }
fn oH() -> u32 { return oB() + slotCount() * NB; }
fn oC() -> u32 { return oH() + slotCount() * FK; }

// Output k: e_nk into `e`, and (Σ_n e_nk − g_k)².
fn errors(k: u32, alpha: vec4f) -> vec4f {
  if (k >= FK) {
    return vec4f(0.0);
  }
  var sb = vec4f(S[oG() + k]);
  for (var n = 0u; n < NB; n++) {
    let i = k * NB + n;
    var E: vec4f;
    if (GEOM) {
      let r = oR() + 4u * i;
      E = exp(min(-(S[i] + alpha.x * S[oTU() + i]), 80.0)) * vec4f(1.0, S[r + 1u], S[r + 2u], S[r + 3u]);
    } else {
      E = exp(min(-(S[i] + alpha * S[oTU() + i]), vec4f(80.0)));
    }
    // p·σ(t) + q, σ = 1/(1 + e^−t): one division.
    let en = S[oP() + i] / (1.0 + E) + S[oQ() + i];
    e[i] = en;
    sb += en;
  }
  return sb * sb;
}

fn errors4(k0: u32, alpha: vec4f) -> vec4f {
  return errors(k0, alpha) + errors(k0 + 1u, alpha) + errors(k0 + 2u, alpha) + errors(k0 + 3u, alpha);
}

// A_jn(α) of the current slot.
var<private> A: array<vec4f, 16>;

// Σ_{k = k0, k0 + 1} (Σ_{n ≥ n0} A_jn e_nk − Hr_jk)².
fn residual2(j: u32, k0: u32, n0: u32) -> vec4f {
  var L = vec4f(0.0);
  for (var k = k0; k < min(k0 + 2u, FK); k++) {
    var acc = vec4f(S[oH() + j * FK + k]);
    for (var n = n0; n < NB; n++) {
      acc += A[n] * e[k * NB + n];
    }
    L += acc * acc;
  }
  return L;
}

// Σ_k (Σ_n A_jn(α) e_nk − Hr_jk)² for slot j.
fn slot(j: u32, alpha: vec4f) -> vec4f {
  if (j >= slotCount()) {
    return vec4f(0.0);
  }
  let n0 = firstSample(j);
  for (var n = n0; n < NB; n++) {
    A[n] = vec4f(S[oA() + j * NB + n]);
    if (hasU(n)) {
      A[n] += alpha * S[oB() + j * NB + n];
    }
  }
  let L = residual2(j, 0u, n0) + residual2(j, 2u, n0) + residual2(j, 4u, n0) + residual2(j, 6u, n0);
  return L + residual2(j, 8u, n0) + residual2(j, 10u, n0) + residual2(j, 12u, n0) + residual2(j, 14u, n0);
}

fn slots4(j0: u32, alpha: vec4f) -> vec4f {
  return slot(j0, alpha) + slot(j0 + 1u, alpha) + slot(j0 + 2u, alpha) + slot(j0 + 3u, alpha);
}

@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3u) {
  // One grid row per workgroup row: its constants into workgroup memory.
  let base = wid.y * P.stride;
  for (var q = li; q < P.stride; q += WG_X) {
    S[q] = rowData[base + q];
  }
  workgroupBarrier();
  let i4 = min(gid.x, P.res4 - 1u);
  let alpha = alphas[i4];
  // K ≤ 16 outputs and NS ≤ 32 slots in fours; calls past K or NS fold away.
  var L = errors4(0u, alpha) + errors4(4u, alpha) + errors4(8u, alpha) + errors4(12u, alpha);
  L += slots4(0u, alpha) + slots4(4u, alpha) + slots4(8u, alpha) + slots4(12u, alpha);
  L += slots4(16u, alpha) + slots4(20u, alpha) + slots4(24u, alpha) + slots4(28u, alpha);
  if (gid.x < P.res4) {
    field[wid.y * P.res4 + gid.x] = L + S[oC()];
  }
}
