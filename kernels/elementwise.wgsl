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
@group(0) @binding(0) var<uniform> sp: Params;
@group(0) @binding(1) var<storage, read> sa: array<f32>;
@group(0) @binding(2) var<storage, read> sb: array<f32>;
@group(0) @binding(3) var<storage, read_write> sout: array<f32>;

@compute @workgroup_size(WG)
fn binary_same(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= sp.n) { return; }
  sout[i] = binary_f(sp.alpha * sa[i], sp.beta * sb[i]);
}

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

@group(0) @binding(0) var<uniform> up: Params;
@group(0) @binding(1) var<storage, read> ux: array<f32>;
@group(0) @binding(2) var<storage, read_write> uout: array<f32>;

@compute @workgroup_size(WG)
fn unary(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= up.n) { return; }
  uout[i] = unary_f(ux[i], up.alpha, up.beta);
}

// gx = gy * f'(x)
@group(0) @binding(0) var<uniform> ubp: Params;
@group(0) @binding(1) var<storage, read> ubx: array<f32>;
@group(0) @binding(2) var<storage, read> ubg: array<f32>;
@group(0) @binding(3) var<storage, read_write> ubout: array<f32>;

@compute @workgroup_size(WG)
fn unary_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= ubp.n) { return; }
  ubout[i] = ubg[i] * unary_df(ubx[i], ubp.alpha, ubp.beta);
}

// --- n-ary sum of same-shape tensors, left to right: out = ((a0 + a1) + a2) + ... (NIN of 2..6 inputs;
// unused slots are bound to a0 and never read). The same f32 rounding as a chain of binary adds. -------
override NIN: u32 = 2u;

@group(0) @binding(0) var<uniform> np_: Params;
@group(0) @binding(1) var<storage, read> n0: array<f32>;
@group(0) @binding(2) var<storage, read> n1: array<f32>;
@group(0) @binding(3) var<storage, read> n2: array<f32>;
@group(0) @binding(4) var<storage, read> n3: array<f32>;
@group(0) @binding(5) var<storage, read> n4: array<f32>;
@group(0) @binding(6) var<storage, read> n5: array<f32>;
@group(0) @binding(7) var<storage, read_write> nout: array<f32>;

@compute @workgroup_size(WG)
fn sum_n(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= np_.n) { return; }
  var acc = n0[i] + n1[i];
  if (NIN > 2u) { acc = acc + n2[i]; }
  if (NIN > 3u) { acc = acc + n3[i]; }
  if (NIN > 4u) { acc = acc + n4[i]; }
  if (NIN > 5u) { acc = acc + n5[i]; }
  nout[i] = acc;
}
