// The per-restart rows as f32 arrays, for attack/invocation.wgsl, attack/workgroup.wgsl and
// attack/pair.wgsl (prepended after attack/common.wgsl by src/attack/engine.ts).
@group(0) @binding(3) var<storage, read_write> xs: array<f32>;  // current x, total×B×D
@group(0) @binding(4) var<storage, read_write> bests: array<f32>;
@group(0) @binding(6) var<storage, read_write> opt: array<f32>; // optimizer state, optStride per restart
                                                                // (pair: gd v (B); adam m (B) then v (B))
