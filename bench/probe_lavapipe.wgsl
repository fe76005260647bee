// Probes for bench/lm-workgroup-probe.ts: what lavapipe makes of the two things an lm kernel is built from.
//  - main_barrier: STEPS rounds of a shared write, an optional barrier, a neighbour's read. On lavapipe
//    each 8-lane slice of a workgroup is a coroutine and a barrier switches through all of them.
//  - main_dot_f32 / main_dot_vec4: one invocation per "restart", a 64×64 product against a private
//    matrix indexed by loop counters (run-time trip counts, as in attack/lm.wgsl): the cost of a
//    loop-indexed private access per float, scalar against vec4 elements.
override WG: u32 = 64u;
override STEPS: u32 = 64u;
override BAR: bool = true;

struct Probe { n: u32, _p0: u32, _p1: u32, _p2: u32 }

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<uniform> prm: Probe;   // n = 64 (a run-time value: the loops stay loops)
var<workgroup> sh: array<f32, 256>;

@compute @workgroup_size(WG)
fn main_barrier(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) w: vec3<u32>) {
  var acc = f32(lid + prm.n);
  for (var j = 0u; j < STEPS; j++) {
    sh[lid] = acc;
    if (BAR) { workgroupBarrier(); }
    acc += sh[(lid + 1u) % WG];
    if (BAR) { workgroupBarrier(); }
  }
  out[w.x * WG + lid] = acc;
}

@compute @workgroup_size(WG)
fn main_dot_f32(@builtin(global_invocation_id) g: vec3<u32>) {
  var a: array<f32, 4096>;
  let n = prm.n;
  for (var i = 0u; i < n * n; i++) { a[i] = f32(i ^ g.x); }
  var acc = 0.0;
  for (var j = 0u; j < n; j++) {
    for (var k = 0u; k < n; k++) { acc += a[j * n + k] * a[k]; }
  }
  out[g.x] = acc;
}

@compute @workgroup_size(WG)
fn main_dot_vec4(@builtin(global_invocation_id) g: vec3<u32>) {
  var a: array<vec4<f32>, 1024>;
  let n = prm.n;
  let n4 = n / 4u;
  for (var i = 0u; i < n * n4; i++) { a[i] = vec4<f32>(f32(i ^ g.x)); }
  var acc = vec4<f32>(0.0);
  for (var j = 0u; j < n; j++) {
    for (var k = 0u; k < n4; k++) { acc += a[j * n4 + k] * a[k]; }
  }
  out[g.x] = dot(acc, vec4<f32>(1.0));
}
