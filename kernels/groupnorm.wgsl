// GroupNorm over x [N, C, ...spatial] (torch.nn.GroupNorm): the C channels form G groups of C / G
// consecutive channels; each (n, g) row of L = (C / G)·S contiguous elements (S = spatial size) is
// normalised with its mean and biased variance, then scaled and shifted per channel.
//
// Row kernels: one small workgroup of WG invocations per row, row = wid.x + wid.y · nwg.x. The row is
// walked channel by channel (so the channel, its weight and its bias are uniform: no per-element
// division), and within a channel invocation `lid` takes elements lid, lid + WG, ... in order; the WG
// partial sums then go through workgroup memory and every invocation adds them up in lane order:
// deterministic, one barrier per reduction. Statistics are two-pass (mean, then the mean of squared
// deviations). `stats` holds (mean, rstd) per row, interleaved: stats[2 r] = mean, stats[2 r + 1] = rstd.
// Parameter gradients: one workgroup per channel c sums over n (in order) and the spatial positions.
//
// Each kernel has a `…4` twin for S % 4 == 0 that binds the data as vec4s (a channel is then S / 4 whole
// vec4s): four elements per load and store, and each invocation keeps four partial sums that it adds up
// as (x + y) + (z + w) before the lane reduction. A kernel and its twin are one `//#variants` block
// (lib/gpu/wgsl_variants.ts): `$T` is f32 or vec4f, `$4` nothing or `4`, `$T(e)` a splat, `$hsum(e)` the
// horizontal sum (both e itself in the f32 kernel), `$pick(a, b)` a in the f32 kernel and b in the twin.
//
// Why WG is small (lib/tensor/ops/groupnorm.ts uses 8): on llvmpipe a workgroup with a barrier runs its
// SIMD groups as coroutines and a workgroup costs more than linearly in its size; one 8-lane SIMD group
// per row was the fastest of 8…256 for every shape tried (8×–10× faster than the former 256-wide tree).

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

override WG: u32 = 8u;

var<workgroup> red_a: array<f32, WG>;
var<workgroup> red_b: array<f32, WG>;

fn row_id(wid: vec3u, nwg: vec3u) -> u32 {
  return wid.x + wid.y * nwg.x;
}

// Workgroup sum of one value per invocation, added up in lane order; every invocation gets the total.
// `red_a` and `red_b` alternate so that a second reduction needs no barrier between the two.
fn sum_a(lid: u32, v: f32) -> f32 {
  red_a[lid] = v;
  workgroupBarrier();
  var t = 0.0;
  for (var k = 0u; k < WG; k++) { t += red_a[k]; }
  return t;
}

fn sum_b(lid: u32, v: f32) -> f32 {
  red_b[lid] = v;
  workgroupBarrier();
  var t = 0.0;
  for (var k = 0u; k < WG; k++) { t += red_b[k]; }
  return t;
}

// Two sums at once (one barrier).
fn sum2(lid: u32, u: f32, v: f32) -> vec2f {
  red_a[lid] = u;
  red_b[lid] = v;
  workgroupBarrier();
  var t = vec2f(0.0);
  for (var k = 0u; k < WG; k++) { t += vec2f(red_a[k], red_b[k]); }
  return t;
}

fn hsum(v: vec4f) -> f32 {
  return (v.x + v.y) + (v.z + v.w);
}

// --- forward: y = (x − mean) · rstd · weight[c] + bias[c] -------------------------------------------------
@group(0) @binding(0) var<uniform> fp: Params;
@group(0) @binding(1) var<storage, read> fx: array<f32>;
@group(0) @binding(2) var<storage, read> fw: array<f32>;
@group(0) @binding(3) var<storage, read> fb: array<f32>;
@group(0) @binding(4) var<storage, read_write> fy: array<f32>;
@group(0) @binding(5) var<storage, read_write> fstats: array<f32>;
@group(0) @binding(1) var<storage, read> fx4: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> fy4: array<vec4f>;

//#variants f32 vec4
@compute @workgroup_size(WG)
fn gn_forward$4(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = row_id(wid, nwg);
  if (row >= fp.rows) { return; } // uniform per workgroup
  $pick(let L = fp.cpg * fp.s;,
        let S4 = fp.s / 4u; let L4 = fp.cpg * S4; let L = f32(4u * L4);)
  let base = row * L$4;
  var s = $T(0.0);
  for (var e = lid; e < L$4; e += WG) { s += fx$4[base + e]; }
  let mean = sum_a(lid, $hsum(s)) / $pick(f32(L), L);
  var q = $T(0.0);
  for (var e = lid; e < L$4; e += WG) {
    let d = fx$4[base + e] - mean;
    q = fma(d, d, q);
  }
  let rstd = inverseSqrt(sum_b(lid, $hsum(q)) / $pick(f32(L), L) + fp.eps);
  let c0 = (row % (fp.rows / fp.n)) * fp.cpg;
  for (var ch = 0u; ch < fp.cpg; ch++) {
    let a = $T(rstd * fw[c0 + ch]);
    let b = $T(fb[c0 + ch]);
    let cb = base + ch * $pick(fp.s, S4);
    for (var e = lid; e < $pick(fp.s, S4); e += WG) { fy$4[cb + e] = fma(fx$4[cb + e] - mean, a, b); }
  }
  if (lid == 0u) {
    fstats[2u * row] = mean;
    fstats[2u * row + 1u] = rstd;
  }
}
//#end

// --- backward dx: with xhat = (x − mean)·rstd and gy = dy·weight[c],
// dx = rstd · (gy − mean(gy) − xhat · mean(gy · xhat)) ------------------------------------------------------
@group(0) @binding(0) var<uniform> bp: Params;
@group(0) @binding(1) var<storage, read> bx: array<f32>;
@group(0) @binding(2) var<storage, read> bw: array<f32>;
@group(0) @binding(3) var<storage, read> bstats: array<f32>;
@group(0) @binding(4) var<storage, read> bdy: array<f32>;
@group(0) @binding(5) var<storage, read_write> bdx: array<f32>;
@group(0) @binding(1) var<storage, read> bx4: array<vec4f>;
@group(0) @binding(4) var<storage, read> bdy4: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> bdx4: array<vec4f>;

//#variants f32 vec4
@compute @workgroup_size(WG)
fn gn_backward$4(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = row_id(wid, nwg);
  if (row >= bp.rows) { return; }
  $pick(let L = bp.cpg * bp.s;, let S4 = bp.s / 4u;)
  let base = row * $pick(L, bp.cpg * S4);
  let mean = bstats[2u * row];
  let rstd = bstats[2u * row + 1u];
  let c0 = (row % (bp.rows / bp.n)) * bp.cpg;
  var s1 = $T(0.0);
  var s2 = $T(0.0);
  for (var ch = 0u; ch < bp.cpg; ch++) {
    let wc = bw[c0 + ch];
    let cb = base + ch * $pick(bp.s, S4);
    for (var e = lid; e < $pick(bp.s, S4); e += WG) {
      let gy = bdy$4[cb + e] * wc;
      s1 += gy;
      s2 = fma(gy, (bx$4[cb + e] - mean) * rstd, s2);
    }
  }
  let sums = sum2(lid, $hsum(s1), $hsum(s2)) / f32($pick(L, bp.cpg * bp.s));
  for (var ch = 0u; ch < bp.cpg; ch++) {
    let wc = bw[c0 + ch];
    let cb = base + ch * $pick(bp.s, S4);
    for (var e = lid; e < $pick(bp.s, S4); e += WG) {
      let gy = bdy$4[cb + e] * wc;
      let xh = (bx$4[cb + e] - mean) * rstd;
      bdx$4[cb + e] = rstd * (gy - sums.x - xh * sums.y);
    }
  }
}
//#end

// --- backward weight and bias: dw[c] = Σ dy · xhat, db[c] = Σ dy over n and space -------------------------
@group(0) @binding(0) var<uniform> pp: Params;
@group(0) @binding(1) var<storage, read> px: array<f32>;
@group(0) @binding(2) var<storage, read> pstats: array<f32>;
@group(0) @binding(3) var<storage, read> pdy: array<f32>;
@group(0) @binding(4) var<storage, read_write> pdw: array<f32>;
@group(0) @binding(5) var<storage, read_write> pdb: array<f32>;
@group(0) @binding(1) var<storage, read> px4: array<vec4f>;
@group(0) @binding(3) var<storage, read> pdy4: array<vec4f>;

//#variants f32 vec4
@compute @workgroup_size(WG)
fn gn_backward_params$4(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let c = row_id(wid, nwg);
  if (c >= pp.c) { return; }
  let G = pp.rows / pp.n;
  let g = c / pp.cpg;
  $pick(, let S4 = pp.s / 4u;)
  var sw = $T(0.0);
  var sb = $T(0.0);
  for (var n = 0u; n < pp.n; n++) {
    let row = n * G + g;
    let mean = pstats[2u * row];
    let rstd = pstats[2u * row + 1u];
    let base = (n * pp.c + c) * $pick(pp.s, S4);
    for (var e = lid; e < $pick(pp.s, S4); e += WG) {
      let dy = pdy$4[base + e];
      sw = fma(dy, (px$4[base + e] - mean) * rstd, sw);
      sb += dy;
    }
  }
  let sums = sum2(lid, $hsum(sw), $hsum(sb));
  if (lid == 0u) {
    pdw[c] = sums.x;
    pdb[c] = sums.y;
  }
}
//#end
