// Diffusion losses, as in guided-diffusion's losses.py and DiT's training loss:
//  - mean squared error, over all elements or per sample (mean_flat((a - b)^2));
//  - normal_kl(mean1, logvar1, mean2, logvar2), elementwise;
//  - discretized_gaussian_log_likelihood(x, means, log_scales), elementwise, with the tanh approximation
//    of the normal CDF, bins of width 2/255 on [-1, 1], log-probabilities clamped at 1e-12 and the edge
//    bins x < -0.999 (log cdf_plus) and x > 0.999 (log(1 - cdf_min)).
// Elementwise index: gid.x + gid.y * nwg.x * WG (2-D grids).

override WG: u32 = 256u;

fn lin(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

// --- mse, stage 1: partial sums of (a - b)^2 ----------------------------------------------------------------
// Same plan as reduce.wgsl's seg_sum: `rows` segments of `cols` elements, each cut into `chunks` chunks of
// `chunk` elements; workgroup w = r * chunks + c writes alpha * sum over its chunk (fixed order + tree).
// sqdiff_sum4: the same over vec4s (cols % 4 == 0; cols and chunk counted in vec4s).

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

var<workgroup> red: array<f32, WG>;

// Tree sum of one value per invocation; the total is valid in invocation 0.
fn tree(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  return red[0];
}

//#variants f32 vec4
@group(0) @binding(0) var<uniform> s$4p: SegParams;
@group(0) @binding(1) var<storage, read> s$4a: array<$T>;
@group(0) @binding(2) var<storage, read> s$4b: array<$T>;
@group(0) @binding(3) var<storage, read_write> s$4out: array<f32>;

@compute @workgroup_size(WG)
fn sqdiff_sum$4(
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
  for (var j = start + lid; j < end; j += WG) {
    let e = s$4a[base + j] - s$4b[base + j];
    acc += e * e;
  }
  let total = tree(lid, $pick(acc, (acc.x + acc.y) + (acc.z + acc.w)));
  if (lid == 0u) { s$4out[w] = s$4p.alpha * total; }
}
//#end

// --- mse backward: da = alpha g[i / cols] (a - b), db = -da (alpha = 2 / cols) -------------------------------
struct MseParams {
  n: u32,
  cols: u32,
  alpha: f32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> mp: MseParams;
@group(0) @binding(1) var<storage, read> ma: array<f32>;
@group(0) @binding(2) var<storage, read> mb: array<f32>;
@group(0) @binding(3) var<storage, read> mg: array<f32>;
@group(0) @binding(4) var<storage, read_write> mda: array<f32>;
@group(0) @binding(5) var<storage, read_write> mdb: array<f32>;

@compute @workgroup_size(WG)
fn mse_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= mp.n) { return; }
  let v = mp.alpha * mg[i / mp.cols] * (ma[i] - mb[i]);
  mda[i] = v;
  mdb[i] = -v;
}

struct EwParams {
  n: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

// --- normal_kl = 0.5 (-1 + lv2 - lv1 + exp(lv1 - lv2) + (m1 - m2)^2 exp(-lv2)) ---------------------------------
@group(0) @binding(0) var<uniform> kp: EwParams;
@group(0) @binding(1) var<storage, read> km1: array<f32>;
@group(0) @binding(2) var<storage, read> klv1: array<f32>;
@group(0) @binding(3) var<storage, read> km2: array<f32>;
@group(0) @binding(4) var<storage, read> klv2: array<f32>;
@group(0) @binding(5) var<storage, read_write> kout: array<f32>;

@compute @workgroup_size(WG)
fn normal_kl(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= kp.n) { return; }
  let dm = km1[i] - km2[i];
  kout[i] = 0.5 * (-1.0 + klv2[i] - klv1[i] + exp(klv1[i] - klv2[i]) + dm * dm * exp(-klv2[i]));
}

// Gradient with respect to one input, WHICH: 0 mean1, 1 logvar1, 2 mean2, 3 logvar2.
override WHICH: u32 = 0u;

@group(0) @binding(0) var<uniform> kbp: EwParams;
@group(0) @binding(1) var<storage, read> kbm1: array<f32>;
@group(0) @binding(2) var<storage, read> kblv1: array<f32>;
@group(0) @binding(3) var<storage, read> kbm2: array<f32>;
@group(0) @binding(4) var<storage, read> kblv2: array<f32>;
@group(0) @binding(5) var<storage, read> kbg: array<f32>;
@group(0) @binding(6) var<storage, read_write> kbout: array<f32>;

@compute @workgroup_size(WG)
fn normal_kl_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= kbp.n) { return; }
  let g = kbg[i];
  let dm = kbm1[i] - kbm2[i];
  let lv1 = kblv1[i];
  let lv2 = kblv2[i];
  let r = exp(lv1 - lv2);
  let q = dm * exp(-lv2);
  var v: f32;
  switch WHICH {
    case 0u: { v = g * q; }
    case 1u: { v = g * 0.5 * (r - 1.0); }
    case 2u: { v = -g * q; }
    default: { v = g * 0.5 * (1.0 - r - dm * q); }
  }
  kbout[i] = v;
}

// --- discretized_gaussian_log_likelihood -----------------------------------------------------------------------
const CDF_K: f32 = 0.7978845608028654; // sqrt(2 / pi)
const CDF_A: f32 = 0.044715;
const BIN: f32 = 0.00392156862745098;  // 1 / 255
const TINY: f32 = 1e-12;

fn tanh_stable(x: f32) -> f32 {
  let e = exp(-2.0 * abs(x));
  let t = (1.0 - e) / (1.0 + e);
  return select(-t, t, x >= 0.0);
}

// approx_standard_normal_cdf(u) and its derivative; returns (cdf, dcdf/du).
fn approx_cdf(u: f32) -> vec2f {
  let t = tanh_stable(CDF_K * (u + CDF_A * u * u * u));
  return vec2f(0.5 * (1.0 + t), 0.5 * (1.0 - t * t) * CDF_K * (1.0 + 3.0 * CDF_A * u * u));
}

struct Dgll {
  logp: f32,
  // d logp / d plus_in and d logp / d min_in
  lp: f32,
  lq: f32,
  plus_in: f32,
  min_in: f32,
  inv_stdv: f32,
}

fn dgll(x: f32, mean: f32, log_scale: f32) -> Dgll {
  var o: Dgll;
  let c = x - mean;
  let s = exp(-log_scale);
  let p = s * (c + BIN);
  let q = s * (c - BIN);
  let cp = approx_cdf(p);
  let cq = approx_cdf(q);
  o.plus_in = p;
  o.min_in = q;
  o.inv_stdv = s;
  o.lp = 0.0;
  o.lq = 0.0;
  if (x < -0.999) {
    o.logp = log(max(cp.x, TINY));
    if (cp.x >= TINY) { o.lp = cp.y / cp.x; }
  } else if (x > 0.999) {
    let om = 1.0 - cq.x;
    o.logp = log(max(om, TINY));
    if (om >= TINY) { o.lq = -cq.y / om; }
  } else {
    let delta = cp.x - cq.x;
    o.logp = log(max(delta, TINY));
    if (delta >= TINY) {
      o.lp = cp.y / delta;
      o.lq = -cq.y / delta;
    }
  }
  return o;
}

@group(0) @binding(0) var<uniform> dp: EwParams;
@group(0) @binding(1) var<storage, read> dx: array<f32>;
@group(0) @binding(2) var<storage, read> dmean: array<f32>;
@group(0) @binding(3) var<storage, read> dls: array<f32>;
@group(0) @binding(4) var<storage, read_write> dout: array<f32>;

@compute @workgroup_size(WG)
fn dgll_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= dp.n) { return; }
  dout[i] = dgll(dx[i], dmean[i], dls[i]).logp;
}

// Gradient with respect to one input, WHICH: 0 x, 1 means, 2 log_scales.
@group(0) @binding(0) var<uniform> dbp: EwParams;
@group(0) @binding(1) var<storage, read> dbx: array<f32>;
@group(0) @binding(2) var<storage, read> dbmean: array<f32>;
@group(0) @binding(3) var<storage, read> dbls: array<f32>;
@group(0) @binding(4) var<storage, read> dbg: array<f32>;
@group(0) @binding(5) var<storage, read_write> dbout: array<f32>;

@compute @workgroup_size(WG)
fn dgll_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= dbp.n) { return; }
  let o = dgll(dbx[i], dbmean[i], dbls[i]);
  let g = dbg[i];
  var v: f32;
  switch WHICH {
    // plus_in and min_in both have d/dx = inv_stdv, d/dmean = -inv_stdv, d/dlog_scale = -themselves.
    case 0u: { v = g * o.inv_stdv * (o.lp + o.lq); }
    case 1u: { v = -g * o.inv_stdv * (o.lp + o.lq); }
    default: { v = -g * (o.lp * o.plus_in + o.lq * o.min_in); }
  }
  dbout[i] = v;
}
