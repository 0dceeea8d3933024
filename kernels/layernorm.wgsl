// LayerNorm without affine parameters over the last dim, adaLN modulation and gated residuals.
//
// Row kernels (ln_*): TPR invocations per row of D elements, WG / TPR rows per workgroup, row =
// (wid.x + wid.y * nwg.x) * (WG / TPR) + lid / TPR. Each invocation sums its lane's elements (lane, lane +
// TPR, ... in order), then a fixed-shape tree reduction over the row's TPR lanes in workgroup memory
// combines them: deterministic. Statistics are two-pass (mean first, then the mean of squared deviations),
// the variance is biased (divides by D) like torch. The `*4` variants read rows as vec4 (D % 4 == 0); a
// kernel and its `*4` variant are one `//#variants` block (lib/gpu/wgsl_variants.ts): `$T` is f32 or vec4f,
// `$4` nothing or `4`, `$T(e)` a splat, `$hsum(e)` the horizontal sum (both e itself in the f32 kernel),
// `$pick(a, b)` a in the f32 kernel and b in the vec4 one.
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
//#variants f32 vec4
@group(0) @binding(0) var<uniform> f$4p: Params;
@group(0) @binding(1) var<storage, read> f$4x: array<$T>;
@group(0) @binding(2) var<storage, read> f$4shift: array<$T>;
@group(0) @binding(3) var<storage, read> f$4scale: array<$T>;
@group(0) @binding(4) var<storage, read_write> f$4y: array<$T>;
@group(0) @binding(5) var<storage, read_write> f$4stats: array<f32>;

@compute @workgroup_size(WG)
fn ln_forward$4(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = row_of(wid, nwg, lid);
  let lane = lid % TPR;
  let valid = row < f$4p.rows;
  let d$4 = $pick(fp.d, f4p.d / 4u);
  let n = select(0u, d$4, valid);
  let base = row * d$4;
  let cbase = (row / f$4p.t) * d$4;
  var s = $T(0.0);
  for (var j = lane; j < n; j += TPR) { s += f$4x[base + j]; }
  let mean = row_sum(lid, $hsum(s)) / f32($pick(d, f4p.d));
  var q = $T(0.0);
  for (var j = lane; j < n; j += TPR) {
    let c = f$4x[base + j] - mean;
    q += c * c;
  }
  let rstd = 1.0 / sqrt(row_sum(lid, $hsum(q)) / f32($pick(d, f4p.d)) + f$4p.eps);
  for (var j = lane; j < n; j += TPR) {
    let xh = (f$4x[base + j] - mean) * rstd;
    if (MOD == 1u) {
      f$4y[base + j] = xh * (1.0 + f$4scale[cbase + j]) + f$4shift[cbase + j];
    } else {
      f$4y[base + j] = xh;
    }
  }
  if (valid && lane == 0u) {
    f$4stats[2u * row] = mean;
    f$4stats[2u * row + 1u] = rstd;
  }
}
//#end

// --- backward, x part: with gh = g [times (1 + scale)], dx = rstd (gh - mean(gh) - xhat mean(gh xhat)) ---
//#variants f32 vec4
@group(0) @binding(0) var<uniform> b$4p: Params;
@group(0) @binding(1) var<storage, read> b$4x: array<$T>;
@group(0) @binding(2) var<storage, read> b$4stats: array<f32>;
@group(0) @binding(3) var<storage, read> b$4scale: array<$T>;
@group(0) @binding(4) var<storage, read> b$4g: array<$T>;
@group(0) @binding(5) var<storage, read_write> b$4dx: array<$T>;

@compute @workgroup_size(WG)
fn ln_backward$4(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = row_of(wid, nwg, lid);
  let lane = lid % TPR;
  let valid = row < b$4p.rows;
  let d$4 = $pick(bp.d, b4p.d / 4u);
  let n = select(0u, d$4, valid);
  let base = row * d$4;
  let cbase = (row / b$4p.t) * d$4;
  var mean = 0.0;
  var rstd = 0.0;
  if (valid) {
    mean = b$4stats[2u * row];
    rstd = b$4stats[2u * row + 1u];
  }
  var sg = $T(0.0);
  var sgx = $T(0.0);
  for (var j = lane; j < n; j += TPR) {
    var g = b$4g[base + j];
    if (MOD == 1u) { g *= 1.0 + b$4scale[cbase + j]; }
    sg += g;
    sgx += g * (b$4x[base + j] - mean) * rstd;
  }
  let tot = row_sum2(lid, $hsum(sg), $hsum(sgx)) / f32($pick(d, b4p.d));
  for (var j = lane; j < n; j += TPR) {
    var g = b$4g[base + j];
    if (MOD == 1u) { g *= 1.0 + b$4scale[cbase + j]; }
    let xh = (b$4x[base + j] - mean) * rstd;
    b$4dx[base + j] = rstd * (g - tot.x - xh * tot.y);
  }
}
//#end

// --- conditioned elementwise forward ------------------------------------------------------------------
// OP 0 modulate: y = x (1 + a[n]) + b[n]; OP 1 gate: y = x a[n]; OP 2 addGated: y = r + x a[n].
// (Unused operands are bound to x by the caller and never read.) Grid: j = gid.x over D (or D / 4),
// row = wid.y + wid.z * nwg.y over N T; params.rows = N T.
override OP: u32 = 0u;

//#variants f32 vec4
@group(0) @binding(0) var<uniform> e$4p: Params;
@group(0) @binding(1) var<storage, read> e$4x: array<$T>;
@group(0) @binding(2) var<storage, read> e$4a: array<$T>;
@group(0) @binding(3) var<storage, read> e$4b: array<$T>;
@group(0) @binding(4) var<storage, read> e$4r: array<$T>;
@group(0) @binding(5) var<storage, read_write> e$4y: array<$T>;

@compute @workgroup_size(WG)
fn cond_forward$4(
  @builtin(global_invocation_id) gid: vec3u,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  $pick(, let d4 = e4p.d / 4u;)
  let j = gid.x;
  let row = wid.y + wid.z * nwg.y;
  if (j >= $pick(ep.d, d4) || row >= e$4p.rows) { return; }
  let i = row * $pick(ep.d, d4) + j;
  let c = (row / e$4p.t) * $pick(ep.d, d4) + j;
  switch OP {
    case 0u: { e$4y[i] = e$4x[i] * (1.0 + e$4a[c]) + e$4b[c]; }
    case 1u: { e$4y[i] = e$4x[i] * e$4a[c]; }
    default: { e$4y[i] = e$4r[i] + e$4x[i] * e$4a[c]; }
  }
}
//#end

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

// The f32 kernels and their vec4 twins (D % 4 == 0), invocation k = (n chunks + c) (D / 4) + d4 there.
fn col_index4(k: u32, p: ColParams) -> ColIndex {
  var q = p;
  q.d = p.d / 4u;
  return col_index(k, q);
}

//#variants f32 vec4
// layerNormModulate: p1 = sum g (dshift), p2 = sum g xhat (dscale).
@group(0) @binding(0) var<uniform> pp$4: ColParams;
@group(0) @binding(1) var<storage, read> px$4: array<$T>;
@group(0) @binding(2) var<storage, read> pstats$4: array<f32>;
@group(0) @binding(3) var<storage, read> pg$4: array<$T>;
@group(0) @binding(4) var<storage, read_write> pp1$4: array<$T>;
@group(0) @binding(5) var<storage, read_write> pp2$4: array<$T>;

@compute @workgroup_size(WG)
fn ln_mod_backward_params$4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let k = lin(gid, nwg);
  let ci = col_index$4(k, pp$4);
  if (!ci.valid) { return; }
  $pick(, let d4 = pp4.d / 4u;)
  var s1 = $T(0.0);
  var s2 = $T(0.0);
  for (var r = ci.first; r < ci.last; r++) {
    let off = r * $pick(pp.d, d4) + ci.dd;
    let g = pg$4[off];
    s1 += g;
    s2 += g * (px$4[off] - pstats$4[2u * r]) * pstats$4[2u * r + 1u];
  }
  pp1$4[k] = s1;
  pp2$4[k] = s2;
}

// modulate: dx = g (1 + scale), p1 = sum g (dshift), p2 = sum g x (dscale).
@group(0) @binding(0) var<uniform> qp$4: ColParams;
@group(0) @binding(1) var<storage, read> qx$4: array<$T>;
@group(0) @binding(2) var<storage, read> qscale$4: array<$T>;
@group(0) @binding(3) var<storage, read> qg$4: array<$T>;
@group(0) @binding(4) var<storage, read_write> qdx$4: array<$T>;
@group(0) @binding(5) var<storage, read_write> qp1$4: array<$T>;
@group(0) @binding(6) var<storage, read_write> qp2$4: array<$T>;

@compute @workgroup_size(WG)
fn modulate_backward$4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let k = lin(gid, nwg);
  let ci = col_index$4(k, qp$4);
  if (!ci.valid) { return; }
  $pick(, let d4 = qp4.d / 4u;)
  let a = 1.0 + qscale$4[ci.cond];
  var s1 = $T(0.0);
  var s2 = $T(0.0);
  for (var r = ci.first; r < ci.last; r++) {
    let off = r * $pick(qp.d, d4) + ci.dd;
    let g = qg$4[off];
    qdx$4[off] = g * a;
    s1 += g;
    s2 += g * qx$4[off];
  }
  qp1$4[k] = s1;
  qp2$4[k] = s2;
}

// gate / addGated: dx = g gate, p1 = sum g x (dgate).
@group(0) @binding(0) var<uniform> hp$4: ColParams;
@group(0) @binding(1) var<storage, read> hx$4: array<$T>;
@group(0) @binding(2) var<storage, read> hgate$4: array<$T>;
@group(0) @binding(3) var<storage, read> hg$4: array<$T>;
@group(0) @binding(4) var<storage, read_write> hdx$4: array<$T>;
@group(0) @binding(5) var<storage, read_write> hp1$4: array<$T>;

@compute @workgroup_size(WG)
fn gate_backward$4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let k = lin(gid, nwg);
  let ci = col_index$4(k, hp$4);
  if (!ci.valid) { return; }
  $pick(, let d4 = hp4.d / 4u;)
  let a = hgate$4[ci.cond];
  var s = $T(0.0);
  for (var r = ci.first; r < ci.last; r++) {
    let off = r * $pick(hp.d, d4) + ci.dd;
    let g = hg$4[off];
    hdx$4[off] = g * a;
    s += g * hx$4[off];
  }
  hp1$4[k] = s;
}

// addGated: as gate_backward, and also writes dres = g (the residual's gradient) in the same pass.
@group(0) @binding(0) var<uniform> rp$4: ColParams;
@group(0) @binding(1) var<storage, read> rx$4: array<$T>;
@group(0) @binding(2) var<storage, read> rgate$4: array<$T>;
@group(0) @binding(3) var<storage, read> rg$4: array<$T>;
@group(0) @binding(4) var<storage, read_write> rdres$4: array<$T>;
@group(0) @binding(5) var<storage, read_write> rdx$4: array<$T>;
@group(0) @binding(6) var<storage, read_write> rp1$4: array<$T>;

@compute @workgroup_size(WG)
fn add_gated_backward$4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let k = lin(gid, nwg);
  let ci = col_index$4(k, rp$4);
  if (!ci.valid) { return; }
  $pick(, let d4 = rp4.d / 4u;)
  let a = rgate$4[ci.cond];
  var s = $T(0.0);
  for (var r = ci.first; r < ci.last; r++) {
    let off = r * $pick(rp.d, d4) + ci.dd;
    let g = rg$4[off];
    rdres$4[off] = g;
    rdx$4[off] = g * a;
    s += g * rx$4[off];
  }
  rp1$4[k] = s;
}
//#end
