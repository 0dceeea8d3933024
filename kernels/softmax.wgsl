// Softmax, log-softmax and cross-entropy over the last dim.
//
// Row kernels: TPR invocations per row of C elements, WG / TPR rows per workgroup, row =
// (wid.x + wid.y * nwg.x) * (WG / TPR) + lid / TPR. Each invocation reduces its lane's elements (lane,
// lane + TPR, ... in order), then a fixed-shape tree over the row's TPR lanes in workgroup memory combines
// them: deterministic. Max-subtracted (stable) throughout.

struct Params {
  rows: u32,
  c: u32,
  _pad0: u32,
  _pad1: u32,
}

// Invocations per workgroup (a multiple of TPR) and per row (a power of two).
override WG: u32 = 64u;
override TPR: u32 = 8u;

var<workgroup> red: array<f32, WG>;

const NEG_INF: f32 = -3.402823466e+38;

fn row_of(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * (WG / TPR) + lid / TPR;
}

// Tree reduction over the TPR lanes of a row (MAX: max, else sum); every lane gets the result.
fn row_reduce(lid: u32, v: f32, is_max: bool) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  let lane = lid % TPR;
  for (var s = TPR / 2u; s > 0u; s = s / 2u) {
    if (lane < s) {
      if (is_max) {
        red[lid] = max(red[lid], red[lid + s]);
      } else {
        red[lid] = red[lid] + red[lid + s];
      }
    }
    workgroupBarrier();
  }
  let r = red[lid - lane];
  workgroupBarrier();
  return r;
}

// --- softmax forward (LOG = 0) and log-softmax forward (LOG = 1) ----------------------------------------
override LOG: u32 = 0u;

@group(0) @binding(0) var<uniform> fp: Params;
@group(0) @binding(1) var<storage, read> fx: array<f32>;
@group(0) @binding(2) var<storage, read_write> fy: array<f32>;

@compute @workgroup_size(WG)
fn softmax_forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = row_of(wid, nwg, lid);
  let lane = lid % TPR;
  let n = select(0u, fp.c, row < fp.rows);
  let base = row * fp.c;
  var m = NEG_INF;
  for (var j = lane; j < n; j += TPR) { m = max(m, fx[base + j]); }
  m = row_reduce(lid, m, true);
  var s = 0.0;
  for (var j = lane; j < n; j += TPR) { s += exp(fx[base + j] - m); }
  s = row_reduce(lid, s, false);
  if (LOG == 1u) {
    let lse = m + log(s);
    for (var j = lane; j < n; j += TPR) { fy[base + j] = fx[base + j] - lse; }
  } else {
    let inv = 1.0 / s;
    for (var j = lane; j < n; j += TPR) { fy[base + j] = exp(fx[base + j] - m) * inv; }
  }
}

// --- backward from the output y: softmax dx = y (g - sum(g y)); log-softmax dx = g - exp(y) sum(g) -------
@group(0) @binding(0) var<uniform> bp: Params;
@group(0) @binding(1) var<storage, read> by: array<f32>;
@group(0) @binding(2) var<storage, read> bg: array<f32>;
@group(0) @binding(3) var<storage, read_write> bdx: array<f32>;

@compute @workgroup_size(WG)
fn softmax_backward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = row_of(wid, nwg, lid);
  let lane = lid % TPR;
  let n = select(0u, bp.c, row < bp.rows);
  let base = row * bp.c;
  var s = 0.0;
  if (LOG == 1u) {
    for (var j = lane; j < n; j += TPR) { s += bg[base + j]; }
  } else {
    for (var j = lane; j < n; j += TPR) { s += bg[base + j] * by[base + j]; }
  }
  s = row_reduce(lid, s, false);
  if (LOG == 1u) {
    for (var j = lane; j < n; j += TPR) { bdx[base + j] = bg[base + j] - exp(by[base + j]) * s; }
  } else {
    for (var j = lane; j < n; j += TPR) { bdx[base + j] = by[base + j] * (bg[base + j] - s); }
  }
}

// --- cross-entropy per row: loss[r] = logsumexp(x[r]) - x[r, label[r]]; saves lse[r] ------------------
// A label outside [0, C) gives a NaN loss (caught by the debug mode).
@group(0) @binding(0) var<uniform> cp: Params;
@group(0) @binding(1) var<storage, read> cx: array<f32>;
@group(0) @binding(2) var<storage, read> clabel: array<u32>;
@group(0) @binding(3) var<storage, read_write> closs: array<f32>;
@group(0) @binding(4) var<storage, read_write> clse: array<f32>;

@compute @workgroup_size(WG)
fn ce_forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = row_of(wid, nwg, lid);
  let lane = lid % TPR;
  let valid = row < cp.rows;
  let n = select(0u, cp.c, valid);
  let base = row * cp.c;
  var m = NEG_INF;
  for (var j = lane; j < n; j += TPR) { m = max(m, cx[base + j]); }
  m = row_reduce(lid, m, true);
  var s = 0.0;
  for (var j = lane; j < n; j += TPR) { s += exp(cx[base + j] - m); }
  s = row_reduce(lid, s, false);
  if (valid && lane == 0u) {
    let lse = m + log(s);
    let lab = clabel[row];
    var l = bitcast<f32>(0x7fc00000u);
    if (lab < cp.c) { l = lse - cx[base + lab]; }
    closs[row] = l;
    clse[row] = lse;
  }
}

// --- cross-entropy backward: dx[r, j] = g[r] (exp(x[r, j] - lse[r]) - [j == label[r]]) -----------------
// Elementwise over rows * c (2-D grid of WG-wide workgroups).
@group(0) @binding(0) var<uniform> dp: Params;
@group(0) @binding(1) var<storage, read> dx_in: array<f32>;
@group(0) @binding(2) var<storage, read> dlabel: array<u32>;
@group(0) @binding(3) var<storage, read> dlse: array<f32>;
@group(0) @binding(4) var<storage, read> dg: array<f32>;
@group(0) @binding(5) var<storage, read_write> ddx: array<f32>;

@compute @workgroup_size(WG)
fn ce_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= dp.rows * dp.c) { return; }
  let row = i / dp.c;
  let j = i % dp.c;
  let p = exp(dx_in[i] - dlse[row]);
  ddx[i] = dg[row] * (p - select(0.0, 1.0, j == dlabel[row]));
}
