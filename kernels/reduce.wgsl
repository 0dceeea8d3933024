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
// The rank, as a pipeline constant so that the index loops unroll (see elementwise.wgsl).
override NDIM: u32 = 8u;

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
  for (var k = 0u; k < NDIM; k++) {
    let d = NDIM - 1u - k;
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
    for (var k = 0u; k < NDIM; k++) {
      let d = NDIM - 1u - k;
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

// ---------------------------------------------------------------------------------------------------------
// Segmented sums for `sum` / `mean` (lib/tensor/ops/reduce.ts). All deterministic: every partial result is
// summed in a fixed order and combined by a fixed-shape tree, and the number of partial results depends only
// on the shape.
//
// seg_sum: x holds `rows` contiguous segments of `cols` elements. Segment r is cut into `chunks` chunks of
// `chunk` elements; workgroup w = r * chunks + c (w = wid.x + wid.y * nwg.x) sums chunk c: invocation lid
// adds the elements lid, lid + WG, ... of the chunk in order (coalesced), then a tree reduction in workgroup
// memory combines the WG partial sums, and out[w] = alpha * total. With chunks > 1 the output [rows, chunks]
// is summed again by the same kernel (cols = chunks) until one value per segment remains (two stages for
// the full reduction of 16M elements). seg_sum4 is the same over vec4s (cols, chunk counted in vec4s; used
// when the segment length is a multiple of 4); each vec4's lanes are added as (x + y) + (z + w). The two are
// one `//#variants` block (lib/gpu/wgsl_variants.ts).

struct SegParams {
  rows: u32,
  cols: u32,
  chunks: u32,
  chunk: u32,
  alpha: f32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

var<workgroup> seg_red: array<f32, WG>;

// Tree sum of one value per invocation; the total is valid in invocation 0.
fn seg_tree(lid: u32, v: f32) -> f32 {
  seg_red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) { seg_red[lid] = seg_red[lid] + seg_red[lid + s]; }
    workgroupBarrier();
  }
  return seg_red[0];
}

//#variants f32 vec4
@group(0) @binding(0) var<uniform> s$4p: SegParams;
@group(0) @binding(1) var<storage, read> s$4x: array<$T>;
@group(0) @binding(2) var<storage, read_write> s$4out: array<f32>;

@compute @workgroup_size(WG)
fn seg_sum$4(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let w = wid.x + wid.y * nwg.x;
  if (w >= s$4p.rows * s$4p.chunks) { return; }
  let start = (w % s$4p.chunks) * s$4p.chunk;
  let end = min(start + s$4p.chunk, s$4p.cols);
  let base = (w / s$4p.chunks) * s$4p.cols;
  var acc = $T(0.0);
  for (var j = start + lid; j < end; j += WG) { acc += s$4x[base + j]; }
  let total = seg_tree(lid, $pick(acc, (acc.x + acc.y) + (acc.z + acc.w)));
  if (lid == 0u) { s$4out[w] = s$4p.alpha * total; }
}
//#end

// col_sum: x is [b, m, k]; sums over m. Invocation i = (bb * chunks + c) * k + kk sums the rows
// [c * crows, min((c + 1) * crows, m)) of column kk of batch bb in order: out[i] = alpha * sum, so the
// output is [b, chunks, k]; with chunks > 1 it is summed again (m = chunks). Coalesced over kk.

struct ColParams {
  b: u32,
  m: u32,
  k: u32,
  crows: u32,
  chunks: u32,
  alpha: f32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> cp: ColParams;
@group(0) @binding(1) var<storage, read> cx: array<f32>;
@group(0) @binding(2) var<storage, read_write> cout: array<f32>;

@compute @workgroup_size(WG)
fn col_sum(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= cp.b * cp.chunks * cp.k) { return; }
  let kk = i % cp.k;
  let bc = i / cp.k;
  let c = bc % cp.chunks;
  let bb = bc / cp.chunks;
  let start = c * cp.crows;
  let end = min(start + cp.crows, cp.m);
  var acc = 0.0;
  for (var r = start; r < end; r++) { acc += cx[(bb * cp.m + r) * cp.k + kk]; }
  cout[i] = cp.alpha * acc;
}

// expand: out[i] = alpha * g[off(i)], where off uses g's strides per output dim (0 on reduced dims):
// the backward of sum / mean (broadcast of the gradient back to the input shape), also a scaled copy.

struct ExpandParams {
  n: u32,
  ndim: u32,
  alpha: f32,
  _pad: u32,
  shape: array<vec4u, 2>,
  gstr: array<vec4u, 2>,
}

@group(0) @binding(0) var<uniform> ep: ExpandParams;
@group(0) @binding(1) var<storage, read> eg: array<f32>;
@group(0) @binding(2) var<storage, read_write> eout: array<f32>;

@compute @workgroup_size(WG)
fn expand(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= ep.n) { return; }
  var rem = i;
  var off = 0u;
  for (var k = 0u; k < ep.ndim; k++) {
    let d = ep.ndim - 1u - k;
    let s = dim(ep.shape, d);
    off += (rem % s) * dim(ep.gstr, d);
    rem = rem / s;
  }
  eout[i] = ep.alpha * eg[off];
}
