// Debug checks. check_finite sets flags[slot] to 1 when any of the first n values is NaN or Inf.
// Integer atomics only (no float atomics), so the result is deterministic.

struct Params { n: u32, slot: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> flags: array<atomic<u32>>;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn check_finite(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  // An f32 is NaN or Inf exactly when all exponent bits are set.
  if ((x[i] & 0x7f800000u) == 0x7f800000u) {
    atomicOr(&flags[p.slot], 1u);
  }
}
