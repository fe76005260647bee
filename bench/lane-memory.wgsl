// Probe kernels for bench/lane-memory.ts: how fast an adapter serves the memory reads that the attack
// and objective kernels make, by access pattern. Each invocation sums N vec4s and writes one vec4.
//   lane:        invocation i reads its own block x[i·N + j] (restart-major, as the stream kernels do);
//   interleaved: x[j·T + i]: neighbouring invocations read neighbouring vec4s;
//   broadcast:   every invocation of a workgroup reads x[w·N + j] (address uniform across the workgroup);
//   broadcast1:  as broadcast, one f32 per step instead of a vec4 (does a load cost per component?);
//   ubo:         per-invocation vec4s from a uniform buffer, (i + j) mod 4096;
//   ubo1:        one vec4 per step from the uniform buffer at an address uniform across the workgroup.

override N: u32 = 256u; // a multiple of 8: the loops take 8 reads a step (inner loop unrolled)

@group(0) @binding(0) var<storage, read> x: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4f>;
@group(0) @binding(2) var<uniform> u: array<vec4f, 4096>;
@group(0) @binding(3) var<storage, read> xs: array<f32>;

@compute @workgroup_size(64)
fn lane(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  var s = vec4f(0.0);
  for (var j = 0u; j < N; j += 8u) { for (var q = 0u; q < 8u; q++) { s += x[i * N + j + q]; } }
  out[i] = s;
}

@compute @workgroup_size(64)
fn interleaved(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x;
  let T = nwg.x * 64u;
  var s = vec4f(0.0);
  for (var j = 0u; j < N; j += 8u) { for (var q = 0u; q < 8u; q++) { s += x[(j + q) * T + i]; } }
  out[i] = s;
}

@compute @workgroup_size(64)
fn broadcast(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  var s = vec4f(0.0);
  for (var j = 0u; j < N; j += 8u) { for (var q = 0u; q < 8u; q++) { s += x[wid.x * N + j + q]; } }
  out[gid.x] = s;
}

@compute @workgroup_size(64)
fn ubo(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  var s = vec4f(0.0);
  for (var j = 0u; j < N; j += 8u) { for (var q = 0u; q < 8u; q++) { s += u[(i + j + q) & 4095u]; } }
  out[i] = s;
}

@compute @workgroup_size(64)
fn broadcast1(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  var s = 0.0;
  for (var j = 0u; j < N; j += 8u) { for (var q = 0u; q < 8u; q++) { s += xs[wid.x * N + j + q]; } }
  out[gid.x] = vec4f(s);
}

@compute @workgroup_size(64)
fn ubo1(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  var s = vec4f(0.0);
  for (var j = 0u; j < N; j += 8u) { for (var q = 0u; q < 8u; q++) { s += u[(wid.x + j + q) & 4095u]; } }
  out[gid.x] = s;
}

// The same reads as `lane`, from textures: invocation i reads texels (j, i) of an rgba32float image
// (one row per invocation), by textureLoad on a sampled texture or a read-only storage texture.
@group(0) @binding(4) var tex: texture_2d<f32>;
@group(0) @binding(5) var stex: texture_storage_2d<rgba32float, read>;

@compute @workgroup_size(64)
fn texel(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  var s = vec4f(0.0);
  for (var j = 0u; j < N; j += 8u) { for (var q = 0u; q < 8u; q++) { s += textureLoad(tex, vec2u(j + q, i), 0); } }
  out[i] = s;
}

@compute @workgroup_size(64)
fn storageTexel(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  var s = vec4f(0.0);
  for (var j = 0u; j < N; j += 8u) { for (var q = 0u; q < 8u; q++) { s += textureLoad(stex, vec2u(j + q, i)); } }
  out[i] = s;
}
