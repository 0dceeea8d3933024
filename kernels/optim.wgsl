// Optimiser updates: AdamW as torch.optim.AdamW (single-tensor path), the EMA of DiT's update_ema, and the
// pieces of clip_grad_norm_ (sum of squares per workgroup, a one-workgroup final reduction, scaling).
// Reductions run in a fixed order (workgroup tree reductions, no atomics): results are deterministic.
//
// Linear index of an invocation: gid.x + gid.y * num_workgroups.x * WG (2-D grids for large tensors).

override WG: u32 = 256u;

fn lin(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

// --- AdamW -----------------------------------------------------------------------------------------
// torch, per element, in this order:
//   p = p * (1 - lr wd)
//   m = m * b1 + (1 - b1) g                     (exp_avg.mul_(beta1).add_(grad, alpha=1-beta1))
//   v = v * b2 + ((1 - b2) g) g                 (exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1-beta2))
//   denom = sqrt(v) / sqrt(bc2) + eps           ((exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps))
//   p = p + (-step_size m) / denom              (param.addcdiv_(exp_avg, denom, value=-step_size))
// with the scalars computed in float64 on the host and rounded to f32, as torch does.

struct AdamParams {
  n: u32,
  decay: f32,     // 1 - lr * weight_decay
  b1: f32,
  omb1: f32,      // 1 - beta1
  b2: f32,
  omb2: f32,      // 1 - beta2
  bc2_sqrt: f32,  // sqrt(1 - beta2^t)
  eps: f32,
  neg_step: f32,  // -lr / (1 - beta1^t)
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

// Each update is written once for f32 and vec4 elements (`adamw`/`adamw4`, `ema`/`ema4`; a
// `//#variants` block, lib/gpu/wgsl_variants.ts): the same per-component arithmetic, four elements per
// invocation in the vec4 kernel (n a multiple of 4), which llvmpipe runs about twice as fast.
//#variants f32 vec4
@group(0) @binding(0) var<uniform> a$4u: AdamParams;
@group(0) @binding(1) var<storage, read_write> a$4_p: array<$T>;
@group(0) @binding(2) var<storage, read> a$4_g: array<$T>;
@group(0) @binding(3) var<storage, read_write> a$4_m: array<$T>;
@group(0) @binding(4) var<storage, read_write> a$4_v: array<$T>;

@compute @workgroup_size(WG)
fn adamw$4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  let ap = a$4u;
  if (i >= $pick(ap.n, ap.n / 4u)) { return; }
  let x = a$4_p[i] * ap.decay;
  let g = a$4_g[i];
  let m = a$4_m[i] * ap.b1 + ap.omb1 * g;
  let v = a$4_v[i] * ap.b2 + (ap.omb2 * g) * g;
  a$4_m[i] = m;
  a$4_v[i] = v;
  let denom = sqrt(v) / ap.bc2_sqrt + ap.eps;
  a$4_p[i] = x + (ap.neg_step * m) / denom;
}
//#end

// --- EMA: e = e * decay + (1 - decay) p  (ema.mul_(decay).add_(p, alpha=1-decay)) --------------------

struct EmaParams {
  n: u32,
  decay: f32,
  alpha: f32,  // 1 - decay, computed in float64 and rounded
  _pad: u32,
}

//#variants f32 vec4
@group(0) @binding(0) var<uniform> e$4u: EmaParams;
@group(0) @binding(1) var<storage, read_write> e$4_e: array<$T>;
@group(0) @binding(2) var<storage, read> e$4_p: array<$T>;

@compute @workgroup_size(WG)
fn ema$4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  let ep = e$4u;
  if (i >= $pick(ep.n, ep.n / 4u)) { return; }
  e$4_e[i] = e$4_e[i] * ep.decay + ep.alpha * e$4_p[i];
}
//#end

// --- gradient norm ---------------------------------------------------------------------------------
// sumsq_partial: workgroup w sums the squares of elements [w * WG * PER, (w + 1) * WG * PER) into
// partials[offset + w]; each invocation takes PER elements strided by WG, then a tree reduction.

override PER: u32 = 64u;

struct SqParams {
  n: u32,
  offset: u32,
  _pad0: u32,
  _pad1: u32,
}

var<workgroup> red: array<f32, WG>;

@group(0) @binding(0) var<uniform> sq: SqParams;
@group(0) @binding(1) var<storage, read> sq_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> sq_part: array<f32>;

@compute @workgroup_size(WG)
fn sumsq_partial(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_index) lid: u32,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let w = wid.x + wid.y * nwg.x;
  let base = w * WG * PER;
  var acc = 0.0;
  for (var k = 0u; k < PER; k++) {
    let i = base + k * WG + lid;
    if (i < sq.n) {
      let x = sq_x[i];
      acc = acc + x * x;
    }
  }
  red[lid] = acc;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) {
      red[lid] = red[lid] + red[lid + s];
    }
    workgroupBarrier();
  }
  if (lid == 0u && base < sq.n) {
    sq_part[sq.offset + w] = red[0];
  }
}

// norm_final (one workgroup): out[0] = sqrt(sum of partials[0..count)),
// out[1] = min(max_norm / (out[0] + 1e-6), 1) (torch's clip_coef_clamped).
struct NormParams {
  count: u32,
  max_norm: f32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> np: NormParams;
@group(0) @binding(1) var<storage, read> nf_part: array<f32>;
@group(0) @binding(2) var<storage, read_write> nf_out: array<f32>;

@compute @workgroup_size(WG)
fn norm_final(@builtin(local_invocation_index) lid: u32) {
  var acc = 0.0;
  for (var i = lid; i < np.count; i += WG) {
    acc = acc + nf_part[i];
  }
  red[lid] = acc;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) {
      red[lid] = red[lid] + red[lid + s];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let norm = sqrt(red[0]);
    nf_out[0] = norm;
    nf_out[1] = min(np.max_norm / (norm + 1e-6), 1.0);
  }
}

// scale_by: x *= coef[1] (the clip coefficient written by norm_final).
struct ScaleParams {
  n: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> sp: ScaleParams;
@group(0) @binding(1) var<storage, read_write> sc_x: array<f32>;
@group(0) @binding(2) var<storage, read> sc_coef: array<f32>;

@compute @workgroup_size(WG)
fn scale_by(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= sp.n) { return; }
  sc_x[i] = sc_x[i] * sc_coef[1];
}
