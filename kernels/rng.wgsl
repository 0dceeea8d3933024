// Counter-based random numbers: Philox-4x32-10 (Salmon et al., SC'11; Random123), and integer-only
// transforms to uniform floats, standard normals, bounded integers and Bernoulli masks.
//
// Stream layout (mirrored bit for bit by lib/tensor/rng.ts, which documents it in full): a draw of n values
// at block offset `off` (64-bit, lo/hi words) uses Philox blocks off, off+1, ... with counter
// (block_lo, block_hi, 0, 0) and key (key0, key1). One invocation computes one block of four 32-bit words
// x0..x3 and writes its values:
//   MODE 0 uniform:   4 values, u = (x >> 8) * 2^-24 in [0, 1)
//   MODE 1 normal:    4 values, Box-Muller on (x0, x1) -> (r cos, r sin) and on (x2, x3) likewise
//   MODE 2 randint:   2 values, floor(((x1 << 32) | x0) * bound / 2^64), and the same for (x3, x2)
//   MODE 3 bernoulli: 4 values, (x >> 8) < thr
// Everything is integer arithmetic (the float of a normal is assembled from its bits), so the numbers are
// the same on every adapter and equal to the CPU implementation: no transcendental or fused float op.
//
// Linear invocation index: gid.x + gid.y * num_workgroups.x * WG (2-D grids for large draws).

struct Params {
  n: u32,       // number of values to write
  key0: u32,
  key1: u32,
  off_lo: u32,  // first block (64-bit)
  off_hi: u32,
  arg: u32,     // randint: bound; bernoulli: threshold in [0, 2^24]
  _pad0: u32,
  _pad1: u32,
}

override WG: u32 = 256u;
// 0 uniform, 1 normal, 2 randint, 3 bernoulli
override MODE: u32 = 0u;

const PHILOX_M0: u32 = 0xD2511F53u;
const PHILOX_M1: u32 = 0xCD9E8D57u;
const PHILOX_W0: u32 = 0x9E3779B9u;
const PHILOX_W1: u32 = 0xBB67AE85u;

// (hi, lo) of the 64-bit product a * b, from 16-bit halves.
fn mulhilo(a: u32, b: u32) -> vec2u {
  let a0 = a & 0xFFFFu;
  let a1 = a >> 16u;
  let b0 = b & 0xFFFFu;
  let b1 = b >> 16u;
  let p01 = a0 * b1;
  let p10 = a1 * b0;
  let mid = ((a0 * b0) >> 16u) + (p01 & 0xFFFFu) + (p10 & 0xFFFFu);
  let hi = a1 * b1 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
  return vec2u(hi, a * b);
}

fn philox(c: vec4u, k: vec2u) -> vec4u {
  var ctr = c;
  var key = k;
  for (var r = 0u; r < 10u; r++) {
    if (r > 0u) {
      key = key + vec2u(PHILOX_W0, PHILOX_W1);
    }
    let p0 = mulhilo(PHILOX_M0, ctr.x);
    let p1 = mulhilo(PHILOX_M1, ctr.z);
    ctr = vec4u(p1.x ^ ctr.y ^ key.x, p1.y, p0.x ^ ctr.w ^ key.y, p0.y);
  }
  return ctr;
}

// ---- fixed-point Box-Muller ---------------------------------------------------------------------
// 64-bit values are vec2u(hi, lo). A non-negative real is carried as (mantissa, k) = mantissa * 2^-k so
// that small radii and small sines keep their relative precision.

const TWO_LN2_Q31: u32 = 2977044472u; // round(2 ln 2 * 2^31)
const PI_Q30: u32 = 3373259426u;      // round(pi * 2^30)
const ONE_Q31: u32 = 0x80000000u;

fn mulq31(a: u32, b: u32) -> u32 {
  let p = mulhilo(a, b);
  return (p.x << 1u) | (p.y >> 31u);
}

// v << s for s in [0, 63]
fn shl64(v: vec2u, s: u32) -> vec2u {
  if (s == 0u) { return v; }
  if (s < 32u) { return vec2u((v.x << s) | (v.y >> (32u - s)), v.y << s); }
  return vec2u(v.y << (s - 32u), 0u);
}

// v >> s for s in [0, 63]
fn shr64(v: vec2u, s: u32) -> vec2u {
  if (s == 0u) { return v; }
  if (s < 32u) { return vec2u(v.x >> s, (v.y >> s) | (v.x << (32u - s))); }
  return vec2u(0u, v.x >> (s - 32u));
}

fn clz64(v: vec2u) -> u32 {
  if (v.x != 0u) { return countLeadingZeros(v.x); }
  return 32u + countLeadingZeros(v.y);
}

// -2 ln(u) in Q58 for u = ((w >> 8) + 1) / 2^24 in (0, 1].
fn neg2ln_q58(w: u32) -> vec2u {
  let d = 0xFFFFFFu - (w >> 8u); // 2^24 (1 - u)
  if (d < 0x80000u) {
    // 1 - u < 2^-5: -ln(u) = v (1 + v/2 + v^2/3 + ... + v^6/7), v = 1 - u, relative error ~2^-30.
    let v = d << 7u; // Q31
    var h = 306783378u;
    h = 357913941u + mulq31(v, h);
    h = 429496730u + mulq31(v, h);
    h = 536870912u + mulq31(v, h);
    h = 715827883u + mulq31(v, h);
    h = 1073741824u + mulq31(v, h);
    let sr = ONE_Q31 + mulq31(v, h);
    return shl64(mulhilo(d, sr), 4u); // 2 (d / 2^24) (sr / 2^31) in Q58
  }
  // log2 by repeated squaring of the mantissa: 32 fraction bits.
  let u = (w >> 8u) + 1u; // < 2^24 here
  let e = 31u - countLeadingZeros(u);
  var x = u << (31u - e); // mantissa in [1, 2), Q31
  var f = 0u;
  for (var i = 0u; i < 32u; i++) {
    let sq = mulhilo(x, x);
    f = f << 1u;
    if (sq.x >= 0x80000000u) {
      f = f | 1u;
      x = sq.x;
    } else {
      x = (sq.x << 1u) | (sq.y >> 31u);
    }
  }
  // a = (24 - log2(2^24 u)) 2^32 = (24 - e) 2^32 - f, then a (2 ln 2) 2^31 / 2^37 in Q58.
  let ah = select(24u - e, 23u - e, f != 0u);
  let al = 0u - f;
  let p1 = mulhilo(al, TWO_LN2_Q31);
  let p2 = mulhilo(ah, TWO_LN2_Q31);
  let w1 = p1.x + p2.y;
  let w2 = p2.x + select(0u, 1u, w1 < p1.x);
  return vec2u((w2 << 27u) | (w1 >> 5u), (w1 << 27u) | (p1.y >> 5u));
}

// floor(sqrt(n)) of a 64-bit n, digit by digit.
fn isqrt64(n: vec2u) -> u32 {
  var nh = n.x;
  var nl = n.y;
  var rh = 0u;
  var rl = 0u;
  var root = 0u;
  for (var i = 0u; i < 32u; i++) {
    rh = (rh << 2u) | (rl >> 30u);
    rl = (rl << 2u) | (nh >> 30u);
    nh = (nh << 2u) | (nl >> 30u);
    nl = nl << 2u;
    let th = root >> 30u;
    let tl = (root << 2u) | 1u;
    root = root << 1u;
    if (rh > th || (rh == th && rl >= tl)) {
      let borrow = select(0u, 1u, rl < tl);
      rl = rl - tl;
      rh = rh - th - borrow;
      root = root | 1u;
    }
  }
  return root;
}

// f32 bits of p * 2^-k (p 64-bit), rounded to nearest (ties up), negated when neg == 1.
fn to_f32_bits(p: vec2u, k: u32, neg: u32) -> u32 {
  if (p.x == 0u && p.y == 0u) { return 0u; }
  let msb = 63u - clz64(p);
  var m25: u32;
  if (msb >= 24u) {
    m25 = shr64(p, msb - 24u).y;
  } else {
    m25 = p.y << (24u - msb);
  }
  var m = (m25 + 1u) >> 1u;
  var e = msb;
  if (m == 0x1000000u) {
    m = 0x800000u;
    e = e + 1u;
  }
  return ((e + 127u - k) << 23u) | (m & 0x7FFFFFu) | (neg << 31u);
}

// Two standard normals (f32 bits) from two words: (r cos(theta), r sin(theta)).
fn box_muller(w0: u32, w1: u32) -> vec2u {
  // radius: r = root 2^-(29 + s) after normalising -2 ln u (Q58) by 4^s
  let n = neg2ln_q58(w0);
  if (n.x == 0u && n.y == 0u) { return vec2u(0u, 0u); }
  let s = clz64(n) >> 1u;
  let root = isqrt64(shl64(n, 2u * s));
  let rk = 29u + s;
  // angle 2 pi w1 / 2^32: quadrant q, reflected into theta in [0, pi/4]
  let q = w1 >> 30u;
  let f = w1 & 0x3FFFFFFFu;
  let swap = f > 0x20000000u;
  let g = select(f, 0x40000000u - f, swap); // theta = g pi / 2^31
  let tp = mulhilo(g, PI_Q30);
  let th = (tp.x << 2u) | (tp.y >> 30u);     // theta, Q31
  let t = mulq31(th, th);
  var sp = ONE_Q31 - mulhilo(t, 39045157u).x; // sin(theta)/theta, Taylor to theta^10
  sp = ONE_Q31 - mulq31(mulhilo(t, 59652324u).x, sp);
  sp = ONE_Q31 - mulq31(mulhilo(t, 102261126u).x, sp);
  sp = ONE_Q31 - mulq31(mulhilo(t, 214748365u).x, sp);
  sp = ONE_Q31 - mulq31(mulhilo(t, 715827883u).x, sp);
  var c = ONE_Q31 - mulhilo(t, 32537631u).x;  // cos(theta), Taylor to theta^12, Q31
  c = ONE_Q31 - mulq31(mulhilo(t, 47721859u).x, c);
  c = ONE_Q31 - mulq31(mulhilo(t, 76695845u).x, c);
  c = ONE_Q31 - mulq31(mulhilo(t, 143165577u).x, c);
  c = ONE_Q31 - mulq31(mulhilo(t, 357913941u).x, c);
  c = ONE_Q31 - mulq31(mulhilo(t, 0x80000000u).x, c);
  // sin(theta) = g (pi sp) 2^-61, normalised to 32 bits
  let sg = mulhilo(g, mulq31(PI_Q30, sp));
  var sm = sg.y;
  var sk = 61u;
  if (sg.x != 0u) {
    let sh = 32u - countLeadingZeros(sg.x);
    sm = shr64(sg, sh).y;
    sk = 61u - sh;
  }
  // (sin, cos) of the quadrant angle q pi/2 + phi, phi = theta or pi/2 - theta
  let odd = (q & 1u) == 1u;
  let sin_is_s = swap == odd; // the sine of the full angle is the polynomial sine
  let s_m = select(c, sm, sin_is_s);
  let s_k = select(31u, sk, sin_is_s);
  let c_m = select(sm, c, sin_is_s);
  let c_k = select(sk, 31u, sin_is_s);
  let s_neg = select(0u, 1u, q >= 2u);
  let c_neg = select(0u, 1u, q == 1u || q == 2u);
  return vec2u(
    to_f32_bits(mulhilo(root, c_m), rk + c_k, c_neg),
    to_f32_bits(mulhilo(root, s_m), rk + s_k, s_neg),
  );
}

// floor(((hi << 32) | lo) * bound / 2^64)
fn bounded(lo: u32, hi: u32, bound: u32) -> u32 {
  let a = mulhilo(lo, bound);
  let b = mulhilo(hi, bound);
  let mid = b.y + a.x;
  return b.x + select(0u, 1u, mid < a.x);
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(WG)
fn generate(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let b = gid.x + gid.y * nwg.x * WG;
  let per = select(4u, 2u, MODE == 2u);
  let first = b * per;
  if (first >= p.n) { return; }
  let lo = p.off_lo + b;
  let hi = p.off_hi + select(0u, 1u, lo < b);
  let x = philox(vec4u(lo, hi, 0u, 0u), vec2u(p.key0, p.key1));
  var v = vec4u(0u);
  switch MODE {
    case 0u: {
      v = vec4u(
        bitcast<u32>(f32(x.x >> 8u) * 5.9604644775390625e-8),
        bitcast<u32>(f32(x.y >> 8u) * 5.9604644775390625e-8),
        bitcast<u32>(f32(x.z >> 8u) * 5.9604644775390625e-8),
        bitcast<u32>(f32(x.w >> 8u) * 5.9604644775390625e-8),
      );
    }
    case 1u: {
      let a = box_muller(x.x, x.y);
      let c = box_muller(x.z, x.w);
      v = vec4u(a.x, a.y, c.x, c.y);
    }
    case 2u: {
      v = vec4u(bounded(x.x, x.y, p.arg), bounded(x.z, x.w, p.arg), 0u, 0u);
    }
    default: {
      v = vec4u(
        select(0u, 1u, (x.x >> 8u) < p.arg),
        select(0u, 1u, (x.y >> 8u) < p.arg),
        select(0u, 1u, (x.z >> 8u) < p.arg),
        select(0u, 1u, (x.w >> 8u) < p.arg),
      );
    }
  }
  for (var k = 0u; k < per; k++) {
    if (first + k < p.n) {
      out[first + k] = v[k];
    }
  }
}
