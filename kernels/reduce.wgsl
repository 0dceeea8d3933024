// Reductions. Every output element is summed by one invocation in a fixed order, so results are
// deterministic (no atomics).
//
// sum_to: out has the input's rank with size 1 on reduced dims; out[o] = sum over the reduced dims.

struct SumToParams {
  n_out: u32,   // number of output elements
  ndim: u32,
  n_red: u32,   // number of input elements summed into each output element
  _pad: u32,
  shape: array<vec4u, 2>,    // input shape
  istr: array<vec4u, 2>,     // input strides (contiguous)
  red: array<vec4u, 2>,      // 1 where the dim is reduced, else 0
}

override WG: u32 = 256u;

fn dim(v: array<vec4u, 2>, d: u32) -> u32 {
  return v[d / 4u][d % 4u];
}

@group(0) @binding(0) var<uniform> p: SumToParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn sum_to(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let o = gid.x + gid.y * nwg.x * WG;
  if (o >= p.n_out) { return; }
  // Base offset from the kept dims (output coordinates).
  var rem = o;
  var base = 0u;
  for (var k = 0u; k < p.ndim; k++) {
    let d = p.ndim - 1u - k;
    if (dim(p.red, d) == 0u) {
      let s = dim(p.shape, d);
      base += (rem % s) * dim(p.istr, d);
      rem = rem / s;
    }
  }
  // Walk the reduced index space.
  var acc = 0.0;
  for (var r = 0u; r < p.n_red; r++) {
    var rr = r;
    var off = base;
    for (var k = 0u; k < p.ndim; k++) {
      let d = p.ndim - 1u - k;
      if (dim(p.red, d) == 1u) {
        let s = dim(p.shape, d);
        off += (rr % s) * dim(p.istr, d);
        rr = rr / s;
      }
    }
    acc += x[off];
  }
  out[o] = acc;
}
