// GroupNorm over x [N, C, ...spatial] (torch.nn.GroupNorm): the C channels form G groups of C / G
// consecutive channels; each (n, g) row of L = (C / G)·S contiguous elements (S = spatial size) is
// normalised with its mean and biased variance, then scaled and shifted per channel.
//
// Row kernels: one workgroup of WG invocations per row, row = wid.x + wid.y · nwg.x. Invocation `lid` sums
// elements lid, lid + WG, ... in order, then a fixed-shape tree reduction combines the lanes:
// deterministic. Statistics are two-pass (mean, then the mean of squared deviations).
// `stats` holds (mean, rstd) per row, interleaved: stats[2 r] = mean, stats[2 r + 1] = rstd.
// Parameter gradients: one workgroup per channel c sums over n (in order) and the spatial positions.

struct Params {
  rows: u32, // N · G
  cpg: u32,  // channels per group
  s: u32,    // spatial size (H · W)
  c: u32,    // channels
  eps: f32,
  n: u32,    // batch
  _a: u32,
  _b: u32,
}

override WG: u32 = 256u;

var<workgroup> red_a: array<f32, WG>;
var<workgroup> red_b: array<f32, WG>;

fn row_id(wid: vec3u, nwg: vec3u) -> u32 {
  return wid.x + wid.y * nwg.x;
}

// Tree sum over the workgroup; every invocation gets the total.
fn wg_sum(lid: u32, v: f32) -> f32 {
  red_a[lid] = v;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k = k / 2u) {
    if (lid < k) { red_a[lid] = red_a[lid] + red_a[lid + k]; }
    workgroupBarrier();
  }
  let r = red_a[0];
  workgroupBarrier();
  return r;
}

// Two sums at once.
fn wg_sum2(lid: u32, u: f32, v: f32) -> vec2f {
  red_a[lid] = u;
  red_b[lid] = v;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k = k / 2u) {
    if (lid < k) {
      red_a[lid] = red_a[lid] + red_a[lid + k];
      red_b[lid] = red_b[lid] + red_b[lid + k];
    }
    workgroupBarrier();
  }
  let r = vec2f(red_a[0], red_b[0]);
  workgroupBarrier();
  return r;
}

// --- forward: y = (x − mean) · rstd · weight[c] + bias[c] -------------------------------------------------
@group(0) @binding(0) var<uniform> fp: Params;
@group(0) @binding(1) var<storage, read> fx: array<f32>;
@group(0) @binding(2) var<storage, read> fw: array<f32>;
@group(0) @binding(3) var<storage, read> fb: array<f32>;
@group(0) @binding(4) var<storage, read_write> fy: array<f32>;
@group(0) @binding(5) var<storage, read_write> fstats: array<f32>;

@compute @workgroup_size(WG)
fn gn_forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = row_id(wid, nwg);
  if (row >= fp.rows) { return; } // uniform per workgroup
  let L = fp.cpg * fp.s;
  let base = row * L;
  var s = 0.0;
  for (var e = lid; e < L; e += WG) { s += fx[base + e]; }
  let mean = wg_sum(lid, s) / f32(L);
  var q = 0.0;
  for (var e = lid; e < L; e += WG) {
    let d = fx[base + e] - mean;
    q = fma(d, d, q);
  }
  let rstd = inverseSqrt(wg_sum(lid, q) / f32(L) + fp.eps);
  let g = row % (fp.rows / fp.n);
  for (var e = lid; e < L; e += WG) {
    let c = g * fp.cpg + e / fp.s;
    fy[base + e] = (fx[base + e] - mean) * rstd * fw[c] + fb[c];
  }
  if (lid == 0u) {
    fstats[2u * row] = mean;
    fstats[2u * row + 1u] = rstd;
  }
}

// --- backward dx: with xhat = (x − mean)·rstd and gy = dy·weight[c],
// dx = rstd · (gy − mean(gy) − xhat · mean(gy · xhat)) ------------------------------------------------------
@group(0) @binding(0) var<uniform> bp: Params;
@group(0) @binding(1) var<storage, read> bx: array<f32>;
@group(0) @binding(2) var<storage, read> bw: array<f32>;
@group(0) @binding(3) var<storage, read> bstats: array<f32>;
@group(0) @binding(4) var<storage, read> bdy: array<f32>;
@group(0) @binding(5) var<storage, read_write> bdx: array<f32>;

@compute @workgroup_size(WG)
fn gn_backward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = row_id(wid, nwg);
  if (row >= bp.rows) { return; }
  let L = bp.cpg * bp.s;
  let base = row * L;
  let mean = bstats[2u * row];
  let rstd = bstats[2u * row + 1u];
  let g = row % (bp.rows / bp.n);
  var s1 = 0.0;
  var s2 = 0.0;
  for (var e = lid; e < L; e += WG) {
    let c = g * bp.cpg + e / bp.s;
    let gy = bdy[base + e] * bw[c];
    s1 += gy;
    s2 = fma(gy, (bx[base + e] - mean) * rstd, s2);
  }
  let sums = wg_sum2(lid, s1, s2) / f32(L);
  for (var e = lid; e < L; e += WG) {
    let c = g * bp.cpg + e / bp.s;
    let gy = bdy[base + e] * bw[c];
    let xh = (bx[base + e] - mean) * rstd;
    bdx[base + e] = rstd * (gy - sums.x - xh * sums.y);
  }
}

// --- backward weight and bias: dw[c] = Σ dy · xhat, db[c] = Σ dy over n and space -------------------------
@group(0) @binding(0) var<uniform> pp: Params;
@group(0) @binding(1) var<storage, read> px: array<f32>;
@group(0) @binding(2) var<storage, read> pstats: array<f32>;
@group(0) @binding(3) var<storage, read> pdy: array<f32>;
@group(0) @binding(4) var<storage, read_write> pdw: array<f32>;
@group(0) @binding(5) var<storage, read_write> pdb: array<f32>;

@compute @workgroup_size(WG)
fn gn_backward_params(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let c = row_id(wid, nwg);
  if (c >= pp.c) { return; }
  let G = pp.rows / pp.n;
  let g = c / pp.cpg;
  var sw = 0.0;
  var sb = 0.0;
  for (var n = 0u; n < pp.n; n++) {
    let row = n * G + g;
    let mean = pstats[2u * row];
    let rstd = pstats[2u * row + 1u];
    let base = (n * pp.c + c) * pp.s;
    for (var e = lid; e < pp.s; e += WG) {
      let dy = pdy[base + e];
      sw = fma(dy, (px[base + e] - mean) * rstd, sw);
      sb += dy;
    }
  }
  let sums = wg_sum2(lid, sw, sb);
  if (lid == 0u) {
    pdw[c] = sums.x;
    pdb[c] = sums.y;
  }
}
