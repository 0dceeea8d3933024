// LayerNorm without affine parameters over the last dim, adaLN modulation and gated residuals.
//
// Row kernels (ln_*): TPR invocations per row of D elements, WG / TPR rows per workgroup, row =
// (wid.x + wid.y * nwg.x) * (WG / TPR) + lid / TPR. Each invocation sums its lane's elements (lane, lane +
// TPR, ... in order), then a fixed-shape tree reduction over the row's TPR lanes in workgroup memory
// combines them: deterministic. Statistics are two-pass (mean first, then the mean of squared deviations),
// the variance is biased (divides by D) like torch. The `*4` variants read rows as vec4 (D % 4 == 0).
// MOD = 1 applies the adaLN modulation y = xhat (1 + scale[n]) + shift[n] in the same kernel (MOD = 0:
// plain LayerNorm; the caller binds x in place of shift and scale, which are then never read).
// `stats` holds (mean, rstd) per row, interleaved: stats[2 r] = mean, stats[2 r + 1] = rstd.
//
// Conditioned kernels: x is [N, T, D] (rows = N T), shift / scale / gate are [N, D] and broadcast over T.
// Elementwise ones run on a grid of (column, row): j = gid.x, row = wid.y + wid.z * nwg.y (no divisions).
// Parameter gradients reduce over T: one invocation per (n, chunk of T, d) loops over its rows in order
// (coalesced over d) and writes dx on the way; the chunk sums are then summed in order: deterministic.

struct Params {
  rows: u32, // number of rows (N T)
  d: u32,    // row length D
  t: u32,    // rows per conditioning row (T)
  eps: f32,
}

// Invocations per workgroup (a multiple of TPR) and per row (a power of two).
override WG: u32 = 64u;
override TPR: u32 = 8u;
override MOD: u32 = 0u;

var<workgroup> red_a: array<f32, WG>;
var<workgroup> red_b: array<f32, WG>;

fn row_of(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * (WG / TPR) + lid / TPR;
}

fn lin(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

fn hsum(v: vec4f) -> f32 {
  return (v.x + v.y) + (v.z + v.w);
}

// Tree sum over the TPR lanes of a row; every lane gets the total.
fn row_sum(lid: u32, v: f32) -> f32 {
  red_a[lid] = v;
  workgroupBarrier();
  let lane = lid % TPR;
  for (var s = TPR / 2u; s > 0u; s = s / 2u) {
    if (lane < s) { red_a[lid] = red_a[lid] + red_a[lid + s]; }
    workgroupBarrier();
  }
  let r = red_a[lid - lane];
  workgroupBarrier();
  return r;
}

// Two row sums at once.
fn row_sum2(lid: u32, u: f32, v: f32) -> vec2f {
  red_a[lid] = u;
  red_b[lid] = v;
  workgroupBarrier();
  let lane = lid % TPR;
  for (var s = TPR / 2u; s > 0u; s = s / 2u) {
    if (lane < s) {
      red_a[lid] = red_a[lid] + red_a[lid + s];
      red_b[lid] = red_b[lid] + red_b[lid + s];
    }
    workgroupBarrier();
  }
  let r = vec2f(red_a[lid - lane], red_b[lid - lane]);
  workgroupBarrier();
  return r;
}

// --- forward: y = (x - mean) rstd [then (1 + scale) y + shift] ------------------------------------------
@group(0) @binding(0) var<uniform> fp: Params;
@group(0) @binding(1) var<storage, read> fx: array<f32>;
@group(0) @binding(2) var<storage, read> fshift: array<f32>;
@group(0) @binding(3) var<storage, read> fscale: array<f32>;
@group(0) @binding(4) var<storage, read_write> fy: array<f32>;
@group(0) @binding(5) var<storage, read_write> fstats: array<f32>;

@compute @workgroup_size(WG)
fn ln_forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = row_of(wid, nwg, lid);
  let lane = lid % TPR;
  let valid = row < fp.rows;
  let d = fp.d;
  let n = select(0u, d, valid);
  let base = row * d;
  let cbase = (row / fp.t) * d;
  var s = 0.0;
  for (var j = lane; j < n; j += TPR) { s += fx[base + j]; }
  let mean = row_sum(lid, s) / f32(d);
  var q = 0.0;
  for (var j = lane; j < n; j += TPR) {
    let c = fx[base + j] - mean;
    q += c * c;
  }
  let rstd = 1.0 / sqrt(row_sum(lid, q) / f32(d) + fp.eps);
  for (var j = lane; j < n; j += TPR) {
    let xh = (fx[base + j] - mean) * rstd;
    if (MOD == 1u) {
      fy[base + j] = xh * (1.0 + fscale[cbase + j]) + fshift[cbase + j];
    } else {
      fy[base + j] = xh;
    }
  }
  if (valid && lane == 0u) {
    fstats[2u * row] = mean;
    fstats[2u * row + 1u] = rstd;
  }
}

@group(0) @binding(0) var<uniform> f4p: Params;
@group(0) @binding(1) var<storage, read> f4x: array<vec4f>;
@group(0) @binding(2) var<storage, read> f4shift: array<vec4f>;
@group(0) @binding(3) var<storage, read> f4scale: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> f4y: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> f4stats: array<f32>;

@compute @workgroup_size(WG)
fn ln_forward4(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = row_of(wid, nwg, lid);
  let lane = lid % TPR;
  let valid = row < f4p.rows;
  let d4 = f4p.d / 4u;
  let n = select(0u, d4, valid);
  let base = row * d4;
  let cbase = (row / f4p.t) * d4;
  var s = vec4f(0.0);
  for (var j = lane; j < n; j += TPR) { s += f4x[base + j]; }
  let mean = row_sum(lid, hsum(s)) / f32(f4p.d);
  var q = vec4f(0.0);
  for (var j = lane; j < n; j += TPR) {
    let c = f4x[base + j] - mean;
    q += c * c;
  }
  let rstd = 1.0 / sqrt(row_sum(lid, hsum(q)) / f32(f4p.d) + f4p.eps);
  for (var j = lane; j < n; j += TPR) {
    let xh = (f4x[base + j] - mean) * rstd;
    if (MOD == 1u) {
      f4y[base + j] = xh * (1.0 + f4scale[cbase + j]) + f4shift[cbase + j];
    } else {
      f4y[base + j] = xh;
    }
  }
  if (valid && lane == 0u) {
    f4stats[2u * row] = mean;
    f4stats[2u * row + 1u] = rstd;
  }
}

// --- backward, x part: with gh = g [times (1 + scale)], dx = rstd (gh - mean(gh) - xhat mean(gh xhat)) ---
@group(0) @binding(0) var<uniform> bp: Params;
@group(0) @binding(1) var<storage, read> bx: array<f32>;
@group(0) @binding(2) var<storage, read> bstats: array<f32>;
@group(0) @binding(3) var<storage, read> bscale: array<f32>;
@group(0) @binding(4) var<storage, read> bg: array<f32>;
@group(0) @binding(5) var<storage, read_write> bdx: array<f32>;

@compute @workgroup_size(WG)
fn ln_backward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = row_of(wid, nwg, lid);
  let lane = lid % TPR;
  let valid = row < bp.rows;
  let d = bp.d;
  let n = select(0u, d, valid);
  let base = row * d;
  let cbase = (row / bp.t) * d;
  var mean = 0.0;
  var rstd = 0.0;
  if (valid) {
    mean = bstats[2u * row];
    rstd = bstats[2u * row + 1u];
  }
  var sg = 0.0;
  var sgx = 0.0;
  for (var j = lane; j < n; j += TPR) {
    var g = bg[base + j];
    if (MOD == 1u) { g *= 1.0 + bscale[cbase + j]; }
    sg += g;
    sgx += g * (bx[base + j] - mean) * rstd;
  }
  let tot = row_sum2(lid, sg, sgx) / f32(d);
  for (var j = lane; j < n; j += TPR) {
    var g = bg[base + j];
    if (MOD == 1u) { g *= 1.0 + bscale[cbase + j]; }
    let xh = (bx[base + j] - mean) * rstd;
    bdx[base + j] = rstd * (g - tot.x - xh * tot.y);
  }
}

@group(0) @binding(0) var<uniform> b4p: Params;
@group(0) @binding(1) var<storage, read> b4x: array<vec4f>;
@group(0) @binding(2) var<storage, read> b4stats: array<f32>;
@group(0) @binding(3) var<storage, read> b4scale: array<vec4f>;
@group(0) @binding(4) var<storage, read> b4g: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> b4dx: array<vec4f>;

@compute @workgroup_size(WG)
fn ln_backward4(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = row_of(wid, nwg, lid);
  let lane = lid % TPR;
  let valid = row < b4p.rows;
  let d4 = b4p.d / 4u;
  let n = select(0u, d4, valid);
  let base = row * d4;
  let cbase = (row / b4p.t) * d4;
  var mean = 0.0;
  var rstd = 0.0;
  if (valid) {
    mean = b4stats[2u * row];
    rstd = b4stats[2u * row + 1u];
  }
  var sg = vec4f(0.0);
  var sgx = vec4f(0.0);
  for (var j = lane; j < n; j += TPR) {
    var g = b4g[base + j];
    if (MOD == 1u) { g *= 1.0 + b4scale[cbase + j]; }
    sg += g;
    sgx += g * (b4x[base + j] - mean) * rstd;
  }
  let tot = row_sum2(lid, hsum(sg), hsum(sgx)) / f32(b4p.d);
  for (var j = lane; j < n; j += TPR) {
    var g = b4g[base + j];
    if (MOD == 1u) { g *= 1.0 + b4scale[cbase + j]; }
    let xh = (b4x[base + j] - mean) * rstd;
    b4dx[base + j] = rstd * (g - tot.x - xh * tot.y);
  }
}

// --- conditioned elementwise forward ------------------------------------------------------------------
// OP 0 modulate: y = x (1 + a[n]) + b[n]; OP 1 gate: y = x a[n]; OP 2 addGated: y = r + x a[n].
// (Unused operands are bound to x by the caller and never read.) Grid: j = gid.x over D (or D / 4),
// row = wid.y + wid.z * nwg.y over N T; params.rows = N T.
override OP: u32 = 0u;

@group(0) @binding(0) var<uniform> ep: Params;
@group(0) @binding(1) var<storage, read> ex: array<f32>;
@group(0) @binding(2) var<storage, read> ea: array<f32>;
@group(0) @binding(3) var<storage, read> eb: array<f32>;
@group(0) @binding(4) var<storage, read> er: array<f32>;
@group(0) @binding(5) var<storage, read_write> ey: array<f32>;

@compute @workgroup_size(WG)
fn cond_forward(
  @builtin(global_invocation_id) gid: vec3u,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let j = gid.x;
  let row = wid.y + wid.z * nwg.y;
  if (j >= ep.d || row >= ep.rows) { return; }
  let i = row * ep.d + j;
  let c = (row / ep.t) * ep.d + j;
  switch OP {
    case 0u: { ey[i] = ex[i] * (1.0 + ea[c]) + eb[c]; }
    case 1u: { ey[i] = ex[i] * ea[c]; }
    default: { ey[i] = er[i] + ex[i] * ea[c]; }
  }
}

@group(0) @binding(0) var<uniform> e4p: Params;
@group(0) @binding(1) var<storage, read> e4x: array<vec4f>;
@group(0) @binding(2) var<storage, read> e4a: array<vec4f>;
@group(0) @binding(3) var<storage, read> e4b: array<vec4f>;
@group(0) @binding(4) var<storage, read> e4r: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> e4y: array<vec4f>;

@compute @workgroup_size(WG)
fn cond_forward4(
  @builtin(global_invocation_id) gid: vec3u,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let d4 = e4p.d / 4u;
  let j = gid.x;
  let row = wid.y + wid.z * nwg.y;
  if (j >= d4 || row >= e4p.rows) { return; }
  let i = row * d4 + j;
  let c = (row / e4p.t) * d4 + j;
  switch OP {
    case 0u: { e4y[i] = e4x[i] * (1.0 + e4a[c]) + e4b[c]; }
    case 1u: { e4y[i] = e4x[i] * e4a[c]; }
    default: { e4y[i] = e4r[i] + e4x[i] * e4a[c]; }
  }
}

// --- conditioned backward: reductions over T ---------------------------------------------------------------
// The T rows of each sample are cut into `chunks` chunks of `tc` rows. Invocation k = (n chunks + c) D + d
// loops over the rows t of chunk c in order, writes dx there (where the op has one) and its partial sums
// p1[k], p2[k] ([N, chunks, D]); with chunks > 1 the caller sums the partials over the chunks (col_sum in
// reduce.wgsl), again in a fixed order.

struct ColParams {
  n: u32,
  d: u32,
  t: u32,
  tc: u32,
  chunks: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

struct ColIndex {
  valid: bool,
  cond: u32,   // index into [N, D]
  first: u32,  // first row (of x) of the chunk
  last: u32,   // one past the last row
  dd: u32,
}

fn col_index(k: u32, p: ColParams) -> ColIndex {
  var o: ColIndex;
  o.valid = k < p.n * p.chunks * p.d;
  o.dd = k % p.d;
  let nc = k / p.d;
  let c = nc % p.chunks;
  let nn = nc / p.chunks;
  o.cond = nn * p.d + o.dd;
  o.first = nn * p.t + c * p.tc;
  o.last = nn * p.t + min(p.t, (c + 1u) * p.tc);
  return o;
}

// layerNormModulate: p1 = sum g (dshift), p2 = sum g xhat (dscale).
@group(0) @binding(0) var<uniform> pp: ColParams;
@group(0) @binding(1) var<storage, read> px: array<f32>;
@group(0) @binding(2) var<storage, read> pstats: array<f32>;
@group(0) @binding(3) var<storage, read> pg: array<f32>;
@group(0) @binding(4) var<storage, read_write> pp1: array<f32>;
@group(0) @binding(5) var<storage, read_write> pp2: array<f32>;

@compute @workgroup_size(WG)
fn ln_mod_backward_params(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let k = lin(gid, nwg);
  let ci = col_index(k, pp);
  if (!ci.valid) { return; }
  var s1 = 0.0;
  var s2 = 0.0;
  for (var r = ci.first; r < ci.last; r++) {
    let off = r * pp.d + ci.dd;
    let g = pg[off];
    s1 += g;
    s2 += g * (px[off] - pstats[2u * r]) * pstats[2u * r + 1u];
  }
  pp1[k] = s1;
  pp2[k] = s2;
}

// modulate: dx = g (1 + scale), p1 = sum g (dshift), p2 = sum g x (dscale).
@group(0) @binding(0) var<uniform> qp: ColParams;
@group(0) @binding(1) var<storage, read> qx: array<f32>;
@group(0) @binding(2) var<storage, read> qscale: array<f32>;
@group(0) @binding(3) var<storage, read> qg: array<f32>;
@group(0) @binding(4) var<storage, read_write> qdx: array<f32>;
@group(0) @binding(5) var<storage, read_write> qp1: array<f32>;
@group(0) @binding(6) var<storage, read_write> qp2: array<f32>;

@compute @workgroup_size(WG)
fn modulate_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let k = lin(gid, nwg);
  let ci = col_index(k, qp);
  if (!ci.valid) { return; }
  let a = 1.0 + qscale[ci.cond];
  var s1 = 0.0;
  var s2 = 0.0;
  for (var r = ci.first; r < ci.last; r++) {
    let off = r * qp.d + ci.dd;
    let g = qg[off];
    qdx[off] = g * a;
    s1 += g;
    s2 += g * qx[off];
  }
  qp1[k] = s1;
  qp2[k] = s2;
}

// gate / addGated: dx = g gate, p1 = sum g x (dgate).
@group(0) @binding(0) var<uniform> hp: ColParams;
@group(0) @binding(1) var<storage, read> hx: array<f32>;
@group(0) @binding(2) var<storage, read> hgate: array<f32>;
@group(0) @binding(3) var<storage, read> hg: array<f32>;
@group(0) @binding(4) var<storage, read_write> hdx: array<f32>;
@group(0) @binding(5) var<storage, read_write> hp1: array<f32>;

@compute @workgroup_size(WG)
fn gate_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let k = lin(gid, nwg);
  let ci = col_index(k, hp);
  if (!ci.valid) { return; }
  let a = hgate[ci.cond];
  var s = 0.0;
  for (var r = ci.first; r < ci.last; r++) {
    let off = r * hp.d + ci.dd;
    let g = hg[off];
    hdx[off] = g * a;
    s += g * hx[off];
  }
  hp1[k] = s;
}

// vec4 variants of the three column kernels (D % 4 == 0): invocation k = (n chunks + c) (D / 4) + d4.

fn col_index4(k: u32, p: ColParams) -> ColIndex {
  var q = p;
  q.d = p.d / 4u;
  return col_index(k, q);
}

@group(0) @binding(0) var<uniform> pp4: ColParams;
@group(0) @binding(1) var<storage, read> px4: array<vec4f>;
@group(0) @binding(2) var<storage, read> pstats4: array<f32>;
@group(0) @binding(3) var<storage, read> pg4: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> pp14: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> pp24: array<vec4f>;

@compute @workgroup_size(WG)
fn ln_mod_backward_params4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let k = lin(gid, nwg);
  let ci = col_index4(k, pp4);
  if (!ci.valid) { return; }
  let d4 = pp4.d / 4u;
  var s1 = vec4f(0.0);
  var s2 = vec4f(0.0);
  for (var r = ci.first; r < ci.last; r++) {
    let off = r * d4 + ci.dd;
    let g = pg4[off];
    s1 += g;
    s2 += g * (px4[off] - pstats4[2u * r]) * pstats4[2u * r + 1u];
  }
  pp14[k] = s1;
  pp24[k] = s2;
}

@group(0) @binding(0) var<uniform> qp4: ColParams;
@group(0) @binding(1) var<storage, read> qx4: array<vec4f>;
@group(0) @binding(2) var<storage, read> qscale4: array<vec4f>;
@group(0) @binding(3) var<storage, read> qg4: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> qdx4: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> qp14: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> qp24: array<vec4f>;

@compute @workgroup_size(WG)
fn modulate_backward4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let k = lin(gid, nwg);
  let ci = col_index4(k, qp4);
  if (!ci.valid) { return; }
  let d4 = qp4.d / 4u;
  let a = 1.0 + qscale4[ci.cond];
  var s1 = vec4f(0.0);
  var s2 = vec4f(0.0);
  for (var r = ci.first; r < ci.last; r++) {
    let off = r * d4 + ci.dd;
    let g = qg4[off];
    qdx4[off] = g * a;
    s1 += g;
    s2 += g * qx4[off];
  }
  qp14[k] = s1;
  qp24[k] = s2;
}

@group(0) @binding(0) var<uniform> hp4: ColParams;
@group(0) @binding(1) var<storage, read> hx4: array<vec4f>;
@group(0) @binding(2) var<storage, read> hgate4: array<vec4f>;
@group(0) @binding(3) var<storage, read> hg4: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> hdx4: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> hp14: array<vec4f>;

@compute @workgroup_size(WG)
fn gate_backward4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let k = lin(gid, nwg);
  let ci = col_index4(k, hp4);
  if (!ci.valid) { return; }
  let d4 = hp4.d / 4u;
  let a = hgate4[ci.cond];
  var s = vec4f(0.0);
  for (var r = ci.first; r < ci.last; r++) {
    let off = r * d4 + ci.dd;
    let g = hg4[off];
    hdx4[off] = g * a;
    s += g * hx4[off];
  }
  hp14[k] = s;
}

// addGated: as gate_backward, and also writes dres = g (the residual's gradient) in the same pass.
@group(0) @binding(0) var<uniform> rp: ColParams;
@group(0) @binding(1) var<storage, read> rx: array<f32>;
@group(0) @binding(2) var<storage, read> rgate: array<f32>;
@group(0) @binding(3) var<storage, read> rg: array<f32>;
@group(0) @binding(4) var<storage, read_write> rdres: array<f32>;
@group(0) @binding(5) var<storage, read_write> rdx: array<f32>;
@group(0) @binding(6) var<storage, read_write> rp1: array<f32>;

@compute @workgroup_size(WG)
fn add_gated_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let k = lin(gid, nwg);
  let ci = col_index(k, rp);
  if (!ci.valid) { return; }
  let a = rgate[ci.cond];
  var s = 0.0;
  for (var r = ci.first; r < ci.last; r++) {
    let off = r * rp.d + ci.dd;
    let g = rg[off];
    rdres[off] = g;
    rdx[off] = g * a;
    s += g * rx[off];
  }
  rp1[k] = s;
}

@group(0) @binding(0) var<uniform> rp4: ColParams;
@group(0) @binding(1) var<storage, read> rx4: array<vec4f>;
@group(0) @binding(2) var<storage, read> rgate4: array<vec4f>;
@group(0) @binding(3) var<storage, read> rg4: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> rdres4: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> rdx4: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> rp14: array<vec4f>;

@compute @workgroup_size(WG)
fn add_gated_backward4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let k = lin(gid, nwg);
  let ci = col_index4(k, rp4);
  if (!ci.valid) { return; }
  let d4 = rp4.d / 4u;
  let a = rgate4[ci.cond];
  var s = vec4f(0.0);
  for (var r = ci.first; r < ci.last; r++) {
    let off = r * d4 + ci.dd;
    let g = rg4[off];
    rdres4[off] = g;
    rdx4[off] = g * a;
    s += g * rx4[off];
  }
  rp14[k] = s;
}
