// Elementwise ops: broadcast binary ops, unary activations and their backward passes.
//
// Linear index of an invocation: gid.x + gid.y * num_workgroups.x * WG (2-D grids for large tensors).
// Broadcasting: up to 8 dims; each operand has strides per output dim (0 on broadcast dims).

struct BroadcastParams {
  n: u32,
  ndim: u32,
  alpha: f32,
  beta: f32,
  shape: array<vec4u, 2>,
  astr: array<vec4u, 2>,
  bstr: array<vec4u, 2>,
}

struct Params {
  n: u32,
  alpha: f32,
  beta: f32,
  _pad: u32,
}

override WG: u32 = 256u;
// 0 add, 1 sub, 2 mul, 3 div (binary ops); for unary ops see unary_f.
override OP: u32 = 0u;
// Rank of the (collapsed) broadcast: a pipeline constant, so that the index loop unrolls (a loop bound
// read from a uniform costs about 8x on llvmpipe).
override NDIM: u32 = 8u;

fn lin(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

fn dim(v: array<vec4u, 2>, d: u32) -> u32 {
  return v[d / 4u][d % 4u];
}

fn binary_f(a: f32, b: f32) -> f32 {
  switch OP {
    case 0u: { return a + b; }
    case 1u: { return a - b; }
    case 2u: { return a * b; }
    default: { return a / b; }
  }
}

// --- broadcast binary: out = op(a, b) ------------------------------------------------------------
@group(0) @binding(0) var<uniform> bp: BroadcastParams;
@group(0) @binding(1) var<storage, read> ba: array<f32>;
@group(0) @binding(2) var<storage, read> bb: array<f32>;
@group(0) @binding(3) var<storage, read_write> bout: array<f32>;

@compute @workgroup_size(WG)
fn binary(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= bp.n) { return; }
  var rem = i;
  var ao = 0u;
  var bo = 0u;
  for (var k = 0u; k < NDIM; k++) {
    let d = NDIM - 1u - k;
    let s = dim(bp.shape, d);
    let c = rem % s;
    rem = rem / s;
    ao += c * dim(bp.astr, d);
    bo += c * dim(bp.bstr, d);
  }
  bout[i] = binary_f(ba[ao], bb[bo]);
}

// --- same-shape binary, no index arithmetic: out = op(alpha * a, beta * b) ------------------------
// The same-shape kernels below come in f32 and vec4 forms (`//#variants` blocks, lib/gpu/wgsl_variants.ts;
// entry points `binary_same4`, `unary4`, `unary_backward4`, `sum_n4` for n a multiple of 4): four elements
// per invocation with the same per-element arithmetic (the *4 helpers apply the scalar function to each
// component), which halves the time of these memory-bound kernels on llvmpipe.
fn binary_f4(a: vec4f, b: vec4f) -> vec4f {
  return vec4f(binary_f(a.x, b.x), binary_f(a.y, b.y), binary_f(a.z, b.z), binary_f(a.w, b.w));
}

//#variants f32 vec4
@group(0) @binding(0) var<uniform> s$4p: Params;
@group(0) @binding(1) var<storage, read> s$4a: array<$T>;
@group(0) @binding(2) var<storage, read> s$4b: array<$T>;
@group(0) @binding(3) var<storage, read_write> s$4out: array<$T>;

@compute @workgroup_size(WG)
fn binary_same$4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= $pick(s$4p.n, s$4p.n / 4u)) { return; }
  s$4out[i] = $pick(binary_f, binary_f4)(s$4p.alpha * s$4a[i], s$4p.beta * s$4b[i]);
}
//#end

// --- unary ops -----------------------------------------------------------------------------------
// OP: 0 affine (alpha*x + beta), 1 silu, 2 gelu (tanh form), 3 exp, 4 square, 5 sqrt, 6 tanh,
//     7 abs, 8 log, 9 sigmoid, 10 clamp to [alpha, beta]

const GELU_K: f32 = 0.7978845608028654; // sqrt(2/pi)
const GELU_C: f32 = 0.044715;

fn sigmoid(x: f32) -> f32 {
  // Stable in both tails.
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}

fn tanh_stable(x: f32) -> f32 {
  // tanh(x) = 2*sigmoid(2x) - 1, accurate and finite for large |x|.
  let ax = abs(x);
  let e = exp(-2.0 * ax);
  let t = (1.0 - e) / (1.0 + e);
  return select(-t, t, x >= 0.0);
}

fn unary_f(x: f32, alpha: f32, beta: f32) -> f32 {
  switch OP {
    case 0u: { return alpha * x + beta; }
    case 1u: { return x * sigmoid(x); }
    case 2u: {
      let u = GELU_K * (x + GELU_C * x * x * x);
      return 0.5 * x * (1.0 + tanh_stable(u));
    }
    case 3u: { return exp(x); }
    case 4u: { return x * x; }
    case 5u: { return sqrt(x); }
    case 6u: { return tanh_stable(x); }
    case 7u: { return abs(x); }
    case 8u: { return log(x); }
    case 10u: { return clamp(x, alpha, beta); }
    default: { return sigmoid(x); }
  }
}

// d unary_f / dx
fn unary_df(x: f32, alpha: f32, beta: f32) -> f32 {
  switch OP {
    case 0u: { return alpha; }
    case 1u: {
      let s = sigmoid(x);
      return s * (1.0 + x * (1.0 - s));
    }
    case 2u: {
      let u = GELU_K * (x + GELU_C * x * x * x);
      let t = tanh_stable(u);
      let du = GELU_K * (1.0 + 3.0 * GELU_C * x * x);
      return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du;
    }
    case 3u: { return exp(x); }
    case 4u: { return 2.0 * x; }
    case 5u: { return 0.5 / sqrt(x); }
    case 6u: {
      let t = tanh_stable(x);
      return 1.0 - t * t;
    }
    case 7u: { return sign(x); }
    case 8u: { return 1.0 / x; }
    // clamp: 1 strictly inside the range, 0 where the value is clamped (as torch.clamp)
    case 10u: { return select(0.0, 1.0, x > alpha && x < beta); }
    default: {
      let s = sigmoid(x);
      return s * (1.0 - s);
    }
  }
}

fn unary_f4(x: vec4f, alpha: f32, beta: f32) -> vec4f {
  return vec4f(unary_f(x.x, alpha, beta), unary_f(x.y, alpha, beta), unary_f(x.z, alpha, beta),
    unary_f(x.w, alpha, beta));
}

fn unary_df4(x: vec4f, alpha: f32, beta: f32) -> vec4f {
  return vec4f(unary_df(x.x, alpha, beta), unary_df(x.y, alpha, beta), unary_df(x.z, alpha, beta),
    unary_df(x.w, alpha, beta));
}

//#variants f32 vec4
@group(0) @binding(0) var<uniform> u$4p: Params;
@group(0) @binding(1) var<storage, read> u$4x: array<$T>;
@group(0) @binding(2) var<storage, read_write> u$4out: array<$T>;

@compute @workgroup_size(WG)
fn unary$4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= $pick(u$4p.n, u$4p.n / 4u)) { return; }
  u$4out[i] = $pick(unary_f, unary_f4)(u$4x[i], u$4p.alpha, u$4p.beta);
}

// gx = gy * f'(x)
@group(0) @binding(0) var<uniform> ub$4p: Params;
@group(0) @binding(1) var<storage, read> ub$4x: array<$T>;
@group(0) @binding(2) var<storage, read> ub$4g: array<$T>;
@group(0) @binding(3) var<storage, read_write> ub$4out: array<$T>;

@compute @workgroup_size(WG)
fn unary_backward$4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= $pick(ub$4p.n, ub$4p.n / 4u)) { return; }
  ub$4out[i] = ub$4g[i] * $pick(unary_df, unary_df4)(ub$4x[i], ub$4p.alpha, ub$4p.beta);
}
//#end

// --- n-ary sum of same-shape tensors, left to right: out = ((a0 + a1) + a2) + ... (NIN of 2..6 inputs;
// unused slots are bound to a0 and never read). The same f32 rounding as a chain of binary adds. -------
override NIN: u32 = 2u;

//#variants f32 vec4
@group(0) @binding(0) var<uniform> n$4p_: Params;
@group(0) @binding(1) var<storage, read> n$4_0: array<$T>;
@group(0) @binding(2) var<storage, read> n$4_1: array<$T>;
@group(0) @binding(3) var<storage, read> n$4_2: array<$T>;
@group(0) @binding(4) var<storage, read> n$4_3: array<$T>;
@group(0) @binding(5) var<storage, read> n$4_4: array<$T>;
@group(0) @binding(6) var<storage, read> n$4_5: array<$T>;
@group(0) @binding(7) var<storage, read_write> n$4out: array<$T>;

@compute @workgroup_size(WG)
fn sum_n$4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= $pick(n$4p_.n, n$4p_.n / 4u)) { return; }
  var acc = n$4_0[i] + n$4_1[i];
  if (NIN > 2u) { acc = acc + n$4_2[i]; }
  if (NIN > 3u) { acc = acc + n$4_3[i]; }
  if (NIN > 4u) { acc = acc + n$4_4[i]; }
  if (NIN > 5u) { acc = acc + n$4_5[i]; }
  n$4out[i] = acc;
}
//#end
