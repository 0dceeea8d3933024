// Matrix multiply: C[z] = op(A[z]) · op(B[z]) (+ bias), where op(A) = A or Aᵀ (TA) and op(B) = B or Bᵀ (TB),
// and the column sums of the bias gradient.
//
// Layouts (row-major, contiguous): A is [M, K] (TA = false) or [K, M] (TA = true); B is [K, N] (TB = false)
// or [N, K] (TB = true); C is [M, N]; bias is [N]. Batches are z = workgroup_id.z + z0 with element
// strides strideA / strideB / strideC (0 broadcasts an operand over the batch). Every output element is
// written by exactly one invocation, which sums over k in a fixed order (with split-K: each split over its
// own k range, then the splits in order): results are bit-identical from run to run (no atomics).
//
// Backward passes are the same kernels with other transpose flags (dA = dC·Bᵀ, dB = Aᵀ·dC, ...); the bias
// gradient is `colsum` below.
//
// Three matmul entry points:
// - mm_reg4: register-blocked, no workgroup memory, no barriers; vec4 loads and stores. Made for CPU
//   adapters (llvmpipe), where every storage-buffer load is executed lane by lane (8 scalar loads per SIMD
//   group), so the only lever is many FMAs per loaded vec4: each invocation keeps TM rows × TN vec4
//   columns (up to 32 × 32 floats) of C in registers and walks k in steps of 4. Written without loops over
//   the register tile (helper functions with constant indices) so that llvmpipe's NIR keeps the tile in
//   registers; TM and TN select how much of the unrolled code is live. llvmpipe runs 8 consecutive
//   invocations along x as one SIMD group (along y each row is its own, mostly idle, group) and pays per
//   lane for every load, so the cost per flop is set by the tile one invocation owns (TM + 4·TN vec4 loads
//   per 16·TM·TN FMAs); the params field lc spreads the WX invocations of x as lc along the columns × WX / lc
//   along the rows, so that a 16 × 16 tile per invocation also fits narrow outputs (N = 96: lc = 2 covers 32 columns
//   × 64 rows) without idle lanes.
//   Needs the contiguous dimension of every operand to be a multiple of 4 (A: K or M, B: N or K, C: N);
//   only the TA && !TB layout allows K % 4 != 0, and there the last k block reads rows k >= K as zero.
// - mm_reg1: the same with scalar loads, for any shapes (odd sizes); slower.
// - mm_tile4: workgroup-memory tiled kernel for GPUs: a BM × BN tile of C per workgroup of 16 × 16
//   invocations, each computing (BM/16) × (BN/16) outputs as 4 × 4 quads; K streams through workgroup
//   memory in BK slices with a register prefetch of the next slice. Same vec4 requirements as mm_reg4.
//   When there are too few tiles to fill a GPU (the weight gradients: small M·N, long K), K is split
//   into `splits` chunks, each written to its own partial output, and splitk_sum adds the partials in a
//   fixed order (still deterministic).

struct MMParams {
  M: u32,
  N: u32,
  K: u32,
  z0: u32,        // z offset of this dispatch (dispatches are split at 65535 in z)
  strideA: u32,   // batch strides in elements of the entry point's array type (vec4 or f32)
  strideB: u32,
  strideC: u32,
  hasBias: u32,   // 1: add bias[n] (the bias binding is always bound; a dummy when 0)
  kChunk: u32,    // split-K (mm_tile4, mm_reg4): k values per split (a multiple of BK, of 4)
  splits: u32,    // split-K: z = batch · splits + split; 1 = no split (always 1 for mm_reg1)
  lc: u32,        // mm_reg4: invocations of x along the columns (a divisor of WX; 0: all WX), the other
                  // WX / lc of x take consecutive row blocks of TM rows; a uniform, not an override, so
                  // that one compiled variant serves every lane split (the 32 × 32 tile compiles for ~20 s)
  _pad1: u32,
}

override TA: bool = false;   // A is stored [K, M]
override TB: bool = false;   // B is stored [N, K]

// ---- mm_reg4 / mm_reg1: register-blocked, no workgroup memory ------------------------------------------
override TM: u32 = 16u;      // rows per invocation: a multiple of 4 up to 32 (mm_reg1: up to 16)
override TN: u32 = 4u;       // vec4 columns per invocation: 1..8 (strided by lc)
override WX: u32 = 8u;       // workgroup size x
override WY: u32 = 1u;       // workgroup size y (row direction)

alias Row = array<vec4f, 8>;   // one row of the register tile: TN vec4s of C
alias BBlock = array<Row, 4>;  // B values for 4 consecutive k: [u][j] = B[k0 + u, column vec4 j]
alias Quad = array<vec4f, 4>;  // 4 loaded vec4s (4 rows of A, or 4 k values of one B column vec4)

fn fma4(acc: vec4f, a: vec4f, b0: vec4f, b1: vec4f, b2: vec4f, b3: vec4f) -> vec4f {
  return fma(vec4f(a.w), b3, fma(vec4f(a.z), b2, fma(vec4f(a.y), b1, fma(vec4f(a.x), b0, acc))));
}

// acc += a (4 k values of one row) · b (4 k rows × TN vec4 columns).
fn rowUpdate(acc: Row, a: vec4f, b: BBlock) -> Row {
  var r = acc;
  r[0] = fma4(r[0], a, b[0][0], b[1][0], b[2][0], b[3][0]);
  if (TN > 1u) { r[1] = fma4(r[1], a, b[0][1], b[1][1], b[2][1], b[3][1]); }
  if (TN > 2u) { r[2] = fma4(r[2], a, b[0][2], b[1][2], b[2][2], b[3][2]); }
  if (TN > 3u) { r[3] = fma4(r[3], a, b[0][3], b[1][3], b[2][3], b[3][3]); }
  if (TN > 4u) { r[4] = fma4(r[4], a, b[0][4], b[1][4], b[2][4], b[3][4]); }
  if (TN > 5u) { r[5] = fma4(r[5], a, b[0][5], b[1][5], b[2][5], b[3][5]); }
  if (TN > 6u) { r[6] = fma4(r[6], a, b[0][6], b[1][6], b[2][6], b[3][6]); }
  if (TN > 7u) { r[7] = fma4(r[7], a, b[0][7], b[1][7], b[2][7], b[3][7]); }
  return r;
}

// acc += a (one k value of one row) · b (TN vec4 columns at that k).
fn rowUpdate1(acc: Row, a: f32, b: Row) -> Row {
  var r = acc;
  let av = vec4f(a);
  r[0] = fma(av, b[0], r[0]);
  if (TN > 1u) { r[1] = fma(av, b[1], r[1]); }
  if (TN > 2u) { r[2] = fma(av, b[2], r[2]); }
  if (TN > 3u) { r[3] = fma(av, b[3], r[3]); }
  return r;
}

fn transpose4(v0: vec4f, v1: vec4f, v2: vec4f, v3: vec4f) -> Quad {
  return Quad(vec4f(v0.x, v1.x, v2.x, v3.x), vec4f(v0.y, v1.y, v2.y, v3.y), vec4f(v0.z, v1.z, v2.z, v3.z),
    vec4f(v0.w, v1.w, v2.w, v3.w));
}

@group(0) @binding(0) var<uniform> rp: MMParams;
@group(0) @binding(1) var<storage, read> ra: array<vec4f>;
@group(0) @binding(2) var<storage, read> rb: array<vec4f>;
@group(0) @binding(3) var<storage, read> rbias: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> rc: array<vec4f>;

// A values of rows m0 + 4g .. m0 + 4g + 3 at k = 4kb .. 4kb + 3: result[r] is row r's vec4 over k.
fn regLoadA(aBase: u32, m0: u32, g: u32, kb: u32) -> Quad {
  let M = rp.M;
  if (!TA) {
    let K4 = rp.K / 4u;
    let m = m0 + 4u * g;
    return Quad(ra[aBase + min(m, M - 1u) * K4 + kb], ra[aBase + min(m + 1u, M - 1u) * K4 + kb],
      ra[aBase + min(m + 2u, M - 1u) * K4 + kb], ra[aBase + min(m + 3u, M - 1u) * K4 + kb]);
  }
  let M4 = M / 4u;
  let mq = aBase + min(m0 / 4u + g, M4 - 1u);
  let k = kb * 4u;
  if (TB) {
    return transpose4(ra[mq + k * M4], ra[mq + (k + 1u) * M4], ra[mq + (k + 2u) * M4], ra[mq + (k + 3u) * M4]);
  }
  // TA && !TB: K may not be a multiple of 4; rows k >= K of the last block read as zero.
  return transpose4(kRow(mq, k, M4), kRow(mq, k + 1u, M4), kRow(mq, k + 2u, M4), kRow(mq, k + 3u, M4));
}

// ra[o + k · stride] for k < K, else 0 (the last, partial k block of the TA && !TB layout).
fn kRow(o: u32, k: u32, stride: u32) -> vec4f {
  let K = rp.K;
  return select(vec4f(0.0), ra[o + min(k, K - 1u) * stride], k < K);
}

fn kRowB(o: u32, k: u32, stride: u32) -> vec4f {
  let K = rp.K;
  return select(vec4f(0.0), rb[o + min(k, K - 1u) * stride], k < K);
}

// B values at k = 4kb + u (u = 0..3) of column vec4 `col`: result[u].
fn regLoadB(bBase: u32, col: u32, kb: u32) -> Quad {
  let k = kb * 4u;
  if (!TB) {
    let N4 = rp.N / 4u;
    let o = bBase + col;
    if (TA) {
      return Quad(kRowB(o, k, N4), kRowB(o, k + 1u, N4), kRowB(o, k + 2u, N4), kRowB(o, k + 3u, N4));
    }
    return Quad(rb[o + k * N4], rb[o + (k + 1u) * N4], rb[o + (k + 2u) * N4], rb[o + (k + 3u) * N4]);
  }
  let K4 = rp.K / 4u;
  let o = bBase + col * 4u * K4 + kb;
  return transpose4(rb[o], rb[o + K4], rb[o + 2u * K4], rb[o + 3u * K4]);
}

fn regStoreRow(cBase: u32, m: u32, c0: u32, acc: Row) {
  if (m >= rp.M) { return; }
  let N4 = rp.N / 4u;
  let lc = select(WX, rp.lc, rp.lc != 0u);
  for (var j = 0u; j < TN; j++) {
    let cv = c0 + j * lc;
    if (cv < N4) {
      var v = acc[j];
      if (rp.hasBias != 0u) { v += rbias[cv]; }
      rc[cBase + m * N4 + cv] = v;
    }
  }
}

@compute @workgroup_size(WX, WY)
fn mm_reg4(@builtin(local_invocation_id) l: vec3u, @builtin(workgroup_id) w: vec3u) {
  let N4 = rp.N / 4u;
  let K = rp.K;
  // k blocks of 4 (the last one partial in the TA && !TB layout, the only one that allows K % 4 != 0).
  // Split-K (z = batch · splits + split): this split takes blocks kb0 .. kb1 - 1 and writes its own partial
  // output; on CPUs that keeps a long K's operand panels in cache (splitk_sum adds the partials in order).
  let K4 = (K + 3u) / 4u;
  let zz = w.z + rp.z0;
  let bz = zz / rp.splits;
  let kb0 = (zz % rp.splits) * (rp.kChunk / 4u);
  let kb1 = min(K4, kb0 + rp.kChunk / 4u);
  let aBase = bz * rp.strideA;
  let bBase = bz * rp.strideB;
  let cBase = zz * rp.strideC;
  let lc = select(WX, rp.lc, rp.lc != 0u);
  let rl = WX / lc;
  let m0 = ((w.y * WY + l.y) * rl + l.x / lc) * TM;
  let c0 = w.x * lc * TN + l.x % lc;
  // Column vec4s j = c0 + j * lc, clamped for the loads (results past N are not stored).
  let col0 = min(c0, N4 - 1u);
  let col1 = min(c0 + lc, N4 - 1u);
  let col2 = min(c0 + 2u * lc, N4 - 1u);
  let col3 = min(c0 + 3u * lc, N4 - 1u);
  let col4 = min(c0 + 4u * lc, N4 - 1u);
  let col5 = min(c0 + 5u * lc, N4 - 1u);
  let col6 = min(c0 + 6u * lc, N4 - 1u);
  let col7 = min(c0 + 7u * lc, N4 - 1u);
  var acc0: Row;
  var acc1: Row;
  var acc2: Row;
  var acc3: Row;
  var acc4: Row;
  var acc5: Row;
  var acc6: Row;
  var acc7: Row;
  var acc8: Row;
  var acc9: Row;
  var acc10: Row;
  var acc11: Row;
  var acc12: Row;
  var acc13: Row;
  var acc14: Row;
  var acc15: Row;
  var acc16: Row;
  var acc17: Row;
  var acc18: Row;
  var acc19: Row;
  var acc20: Row;
  var acc21: Row;
  var acc22: Row;
  var acc23: Row;
  var acc24: Row;
  var acc25: Row;
  var acc26: Row;
  var acc27: Row;
  var acc28: Row;
  var acc29: Row;
  var acc30: Row;
  var acc31: Row;
  for (var kb = kb0; kb < kb1; kb++) {
    var b: BBlock;
    let q0 = regLoadB(bBase, col0, kb);
    b[0][0] = q0[0];
    b[1][0] = q0[1];
    b[2][0] = q0[2];
    b[3][0] = q0[3];
    if (TN > 1u) {
      let q1 = regLoadB(bBase, col1, kb);
      b[0][1] = q1[0];
      b[1][1] = q1[1];
      b[2][1] = q1[2];
      b[3][1] = q1[3];
    }
    if (TN > 2u) {
      let q2 = regLoadB(bBase, col2, kb);
      b[0][2] = q2[0];
      b[1][2] = q2[1];
      b[2][2] = q2[2];
      b[3][2] = q2[3];
    }
    if (TN > 3u) {
      let q3 = regLoadB(bBase, col3, kb);
      b[0][3] = q3[0];
      b[1][3] = q3[1];
      b[2][3] = q3[2];
      b[3][3] = q3[3];
    }
    if (TN > 4u) {
      let q4 = regLoadB(bBase, col4, kb);
      b[0][4] = q4[0];
      b[1][4] = q4[1];
      b[2][4] = q4[2];
      b[3][4] = q4[3];
    }
    if (TN > 5u) {
      let q5 = regLoadB(bBase, col5, kb);
      b[0][5] = q5[0];
      b[1][5] = q5[1];
      b[2][5] = q5[2];
      b[3][5] = q5[3];
    }
    if (TN > 6u) {
      let q6 = regLoadB(bBase, col6, kb);
      b[0][6] = q6[0];
      b[1][6] = q6[1];
      b[2][6] = q6[2];
      b[3][6] = q6[3];
    }
    if (TN > 7u) {
      let q7 = regLoadB(bBase, col7, kb);
      b[0][7] = q7[0];
      b[1][7] = q7[1];
      b[2][7] = q7[2];
      b[3][7] = q7[3];
    }
    let a0 = regLoadA(aBase, m0, 0u, kb);
    acc0 = rowUpdate(acc0, a0[0], b);
    acc1 = rowUpdate(acc1, a0[1], b);
    acc2 = rowUpdate(acc2, a0[2], b);
    acc3 = rowUpdate(acc3, a0[3], b);
    if (TM > 4u) {
      let a1 = regLoadA(aBase, m0, 1u, kb);
      acc4 = rowUpdate(acc4, a1[0], b);
      acc5 = rowUpdate(acc5, a1[1], b);
      acc6 = rowUpdate(acc6, a1[2], b);
      acc7 = rowUpdate(acc7, a1[3], b);
    }
    if (TM > 8u) {
      let a2 = regLoadA(aBase, m0, 2u, kb);
      acc8 = rowUpdate(acc8, a2[0], b);
      acc9 = rowUpdate(acc9, a2[1], b);
      acc10 = rowUpdate(acc10, a2[2], b);
      acc11 = rowUpdate(acc11, a2[3], b);
    }
    if (TM > 12u) {
      let a3 = regLoadA(aBase, m0, 3u, kb);
      acc12 = rowUpdate(acc12, a3[0], b);
      acc13 = rowUpdate(acc13, a3[1], b);
      acc14 = rowUpdate(acc14, a3[2], b);
      acc15 = rowUpdate(acc15, a3[3], b);
    }
    if (TM > 16u) {
      let a4 = regLoadA(aBase, m0, 4u, kb);
      acc16 = rowUpdate(acc16, a4[0], b);
      acc17 = rowUpdate(acc17, a4[1], b);
      acc18 = rowUpdate(acc18, a4[2], b);
      acc19 = rowUpdate(acc19, a4[3], b);
    }
    if (TM > 20u) {
      let a5 = regLoadA(aBase, m0, 5u, kb);
      acc20 = rowUpdate(acc20, a5[0], b);
      acc21 = rowUpdate(acc21, a5[1], b);
      acc22 = rowUpdate(acc22, a5[2], b);
      acc23 = rowUpdate(acc23, a5[3], b);
    }
    if (TM > 24u) {
      let a6 = regLoadA(aBase, m0, 6u, kb);
      acc24 = rowUpdate(acc24, a6[0], b);
      acc25 = rowUpdate(acc25, a6[1], b);
      acc26 = rowUpdate(acc26, a6[2], b);
      acc27 = rowUpdate(acc27, a6[3], b);
    }
    if (TM > 28u) {
      let a7 = regLoadA(aBase, m0, 7u, kb);
      acc28 = rowUpdate(acc28, a7[0], b);
      acc29 = rowUpdate(acc29, a7[1], b);
      acc30 = rowUpdate(acc30, a7[2], b);
      acc31 = rowUpdate(acc31, a7[3], b);
    }
  }
  regStoreRow(cBase, m0, c0, acc0);
  regStoreRow(cBase, m0 + 1u, c0, acc1);
  regStoreRow(cBase, m0 + 2u, c0, acc2);
  regStoreRow(cBase, m0 + 3u, c0, acc3);
  if (TM > 4u) {
    regStoreRow(cBase, m0 + 4u, c0, acc4);
    regStoreRow(cBase, m0 + 5u, c0, acc5);
    regStoreRow(cBase, m0 + 6u, c0, acc6);
    regStoreRow(cBase, m0 + 7u, c0, acc7);
  }
  if (TM > 8u) {
    regStoreRow(cBase, m0 + 8u, c0, acc8);
    regStoreRow(cBase, m0 + 9u, c0, acc9);
    regStoreRow(cBase, m0 + 10u, c0, acc10);
    regStoreRow(cBase, m0 + 11u, c0, acc11);
  }
  if (TM > 12u) {
    regStoreRow(cBase, m0 + 12u, c0, acc12);
    regStoreRow(cBase, m0 + 13u, c0, acc13);
    regStoreRow(cBase, m0 + 14u, c0, acc14);
    regStoreRow(cBase, m0 + 15u, c0, acc15);
  }
  if (TM > 16u) {
    regStoreRow(cBase, m0 + 16u, c0, acc16);
    regStoreRow(cBase, m0 + 17u, c0, acc17);
    regStoreRow(cBase, m0 + 18u, c0, acc18);
    regStoreRow(cBase, m0 + 19u, c0, acc19);
  }
  if (TM > 20u) {
    regStoreRow(cBase, m0 + 20u, c0, acc20);
    regStoreRow(cBase, m0 + 21u, c0, acc21);
    regStoreRow(cBase, m0 + 22u, c0, acc22);
    regStoreRow(cBase, m0 + 23u, c0, acc23);
  }
  if (TM > 24u) {
    regStoreRow(cBase, m0 + 24u, c0, acc24);
    regStoreRow(cBase, m0 + 25u, c0, acc25);
    regStoreRow(cBase, m0 + 26u, c0, acc26);
    regStoreRow(cBase, m0 + 27u, c0, acc27);
  }
  if (TM > 28u) {
    regStoreRow(cBase, m0 + 28u, c0, acc28);
    regStoreRow(cBase, m0 + 29u, c0, acc29);
    regStoreRow(cBase, m0 + 30u, c0, acc30);
    regStoreRow(cBase, m0 + 31u, c0, acc31);
  }
}

// ---- mm_reg1: scalar loads, any shapes ------------------------------------------------------------------
// Invocation: TM rows × TN column quads (quad j covers columns 4 (c0 + j WX) .. + 3), k one at a time.
@group(0) @binding(0) var<uniform> sp: MMParams;
@group(0) @binding(1) var<storage, read> sa: array<f32>;
@group(0) @binding(2) var<storage, read> sb: array<f32>;
@group(0) @binding(3) var<storage, read> sbias: array<f32>;
@group(0) @binding(4) var<storage, read_write> sc: array<f32>;

fn sLoadA(aBase: u32, m: u32, k: u32) -> f32 {
  let mc = min(m, sp.M - 1u);
  if (TA) { return sa[aBase + k * sp.M + mc]; }
  return sa[aBase + mc * sp.K + k];
}

// B values of the 4 columns of quad `q` at row k (columns past N are clamped; never stored).
fn sLoadB(bBase: u32, q: u32, k: u32) -> vec4f {
  let N = sp.N;
  let n0 = min(4u * q, N - 1u);
  let n1 = min(4u * q + 1u, N - 1u);
  let n2 = min(4u * q + 2u, N - 1u);
  let n3 = min(4u * q + 3u, N - 1u);
  if (TB) {
    let K = sp.K;
    return vec4f(sb[bBase + n0 * K + k], sb[bBase + n1 * K + k], sb[bBase + n2 * K + k], sb[bBase + n3 * K + k]);
  }
  let o = bBase + k * N;
  return vec4f(sb[o + n0], sb[o + n1], sb[o + n2], sb[o + n3]);
}

fn sStoreRow(cBase: u32, m: u32, c0: u32, acc: Row) {
  if (m >= sp.M) { return; }
  let N = sp.N;
  for (var j = 0u; j < TN; j++) {
    let q = c0 + j * WX;
    for (var e = 0u; e < 4u; e++) {
      let n = 4u * q + e;
      if (n < N) {
        var v = acc[j][e];
        if (sp.hasBias != 0u) { v += sbias[n]; }
        sc[cBase + m * N + n] = v;
      }
    }
  }
}

@compute @workgroup_size(WX, WY)
fn mm_reg1(@builtin(local_invocation_id) l: vec3u, @builtin(workgroup_id) w: vec3u) {
  let K = sp.K;
  let bz = w.z + sp.z0;
  let aBase = bz * sp.strideA;
  let bBase = bz * sp.strideB;
  let cBase = bz * sp.strideC;
  let m0 = (w.y * WY + l.y) * TM;
  let c0 = w.x * WX * TN + l.x;
  var acc0: Row;
  var acc1: Row;
  var acc2: Row;
  var acc3: Row;
  var acc4: Row;
  var acc5: Row;
  var acc6: Row;
  var acc7: Row;
  var acc8: Row;
  var acc9: Row;
  var acc10: Row;
  var acc11: Row;
  var acc12: Row;
  var acc13: Row;
  var acc14: Row;
  var acc15: Row;
  for (var k = 0u; k < K; k++) {
    var b: Row;
    b[0] = sLoadB(bBase, c0, k);
    if (TN > 1u) { b[1] = sLoadB(bBase, c0 + WX, k); }
    if (TN > 2u) { b[2] = sLoadB(bBase, c0 + 2u * WX, k); }
    if (TN > 3u) { b[3] = sLoadB(bBase, c0 + 3u * WX, k); }
    acc0 = rowUpdate1(acc0, sLoadA(aBase, m0, k), b);
    acc1 = rowUpdate1(acc1, sLoadA(aBase, m0 + 1u, k), b);
    acc2 = rowUpdate1(acc2, sLoadA(aBase, m0 + 2u, k), b);
    acc3 = rowUpdate1(acc3, sLoadA(aBase, m0 + 3u, k), b);
    if (TM > 4u) {
      acc4 = rowUpdate1(acc4, sLoadA(aBase, m0 + 4u, k), b);
      acc5 = rowUpdate1(acc5, sLoadA(aBase, m0 + 5u, k), b);
      acc6 = rowUpdate1(acc6, sLoadA(aBase, m0 + 6u, k), b);
      acc7 = rowUpdate1(acc7, sLoadA(aBase, m0 + 7u, k), b);
    }
    if (TM > 8u) {
      acc8 = rowUpdate1(acc8, sLoadA(aBase, m0 + 8u, k), b);
      acc9 = rowUpdate1(acc9, sLoadA(aBase, m0 + 9u, k), b);
      acc10 = rowUpdate1(acc10, sLoadA(aBase, m0 + 10u, k), b);
      acc11 = rowUpdate1(acc11, sLoadA(aBase, m0 + 11u, k), b);
    }
    if (TM > 12u) {
      acc12 = rowUpdate1(acc12, sLoadA(aBase, m0 + 12u, k), b);
      acc13 = rowUpdate1(acc13, sLoadA(aBase, m0 + 13u, k), b);
      acc14 = rowUpdate1(acc14, sLoadA(aBase, m0 + 14u, k), b);
      acc15 = rowUpdate1(acc15, sLoadA(aBase, m0 + 15u, k), b);
    }
  }
  sStoreRow(cBase, m0, c0, acc0);
  sStoreRow(cBase, m0 + 1u, c0, acc1);
  sStoreRow(cBase, m0 + 2u, c0, acc2);
  sStoreRow(cBase, m0 + 3u, c0, acc3);
  if (TM > 4u) {
    sStoreRow(cBase, m0 + 4u, c0, acc4);
    sStoreRow(cBase, m0 + 5u, c0, acc5);
    sStoreRow(cBase, m0 + 6u, c0, acc6);
    sStoreRow(cBase, m0 + 7u, c0, acc7);
  }
  if (TM > 8u) {
    sStoreRow(cBase, m0 + 8u, c0, acc8);
    sStoreRow(cBase, m0 + 9u, c0, acc9);
    sStoreRow(cBase, m0 + 10u, c0, acc10);
    sStoreRow(cBase, m0 + 11u, c0, acc11);
  }
  if (TM > 12u) {
    sStoreRow(cBase, m0 + 12u, c0, acc12);
    sStoreRow(cBase, m0 + 13u, c0, acc13);
    sStoreRow(cBase, m0 + 14u, c0, acc14);
    sStoreRow(cBase, m0 + 15u, c0, acc15);
  }
}

// ---- mm_tile4: workgroup-memory tiled kernel for GPUs ------------------------------------------------
// Workgroup 16 × 16; tile BM × BN of C (BM, BN ∈ {64, 128}); invocation (tx, ty) owns the 4 × 4 quads at
// rows ty·4 + 64·qm and columns tx·4 + 64·qn (qm < BM/64, qn < BN/64), so that reads of the B slice are
// contiguous across a warp and reads of the A slice are broadcasts. Slices of BK k values (multiple of 4)
// are stored k-major: tA[k][m/4], tB[k][n/4] (vec4s). The next slice is loaded into registers while the
// current one is multiplied.
override BM: u32 = 128u;
override BN: u32 = 128u;
override BK: u32 = 16u;

const TWG: u32 = 256u;       // invocations per workgroup (16 × 16)
const MAX_LOADS: u32 = 4u;   // vec4 loads per invocation per slice and operand: BM · BK / 4 / 256 <= 4

var<workgroup> tA: array<vec4f, BK * BM / 4u>;
var<workgroup> tB: array<vec4f, BK * BN / 4u>;

@group(0) @binding(0) var<uniform> tp: MMParams;
@group(0) @binding(1) var<storage, read> ta: array<vec4f>;
@group(0) @binding(2) var<storage, read> tb: array<vec4f>;
@group(0) @binding(3) var<storage, read> tbias: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> tc: array<vec4f>;

// The i-th vec4 (i < BM·BK/4) of the A slice starting at k0, from global memory (zero at m >= M or
// k >= kEnd).
fn tileLoadA(aBase: u32, mBase: u32, k0: u32, kEnd: u32, i: u32) -> vec4f {
  let M = tp.M;
  let K = tp.K;
  if (!TA) {
    // vec4 along k: i = m · (BK/4) + kq
    let m = mBase + i / (BK / 4u);
    let kq = k0 / 4u + i % (BK / 4u);
    if (m < M && kq < kEnd / 4u) { return ta[aBase + m * (K / 4u) + kq]; }
    return vec4f(0.0);
  }
  // vec4 along m: i = k · (BM/4) + mq
  let k = k0 + i / (BM / 4u);
  let mq = mBase / 4u + i % (BM / 4u);
  if (k < kEnd && mq < M / 4u) { return ta[aBase + k * (M / 4u) + mq]; }
  return vec4f(0.0);
}

fn tileStoreA(i: u32, v: vec4f) {
  if (!TA) {
    let m = i / (BK / 4u);
    let k = 4u * (i % (BK / 4u));
    let o = m / 4u;
    let e = m % 4u;
    tA[k * (BM / 4u) + o][e] = v.x;
    tA[(k + 1u) * (BM / 4u) + o][e] = v.y;
    tA[(k + 2u) * (BM / 4u) + o][e] = v.z;
    tA[(k + 3u) * (BM / 4u) + o][e] = v.w;
  } else {
    tA[i] = v;
  }
}

fn tileLoadB(bBase: u32, nBase: u32, k0: u32, kEnd: u32, i: u32) -> vec4f {
  let N = tp.N;
  let K = tp.K;
  if (TB) {
    // vec4 along k: i = n · (BK/4) + kq
    let n = nBase + i / (BK / 4u);
    let kq = k0 / 4u + i % (BK / 4u);
    if (n < N && kq < kEnd / 4u) { return tb[bBase + n * (K / 4u) + kq]; }
    return vec4f(0.0);
  }
  let k = k0 + i / (BN / 4u);
  let nq = nBase / 4u + i % (BN / 4u);
  if (k < kEnd && nq < N / 4u) { return tb[bBase + k * (N / 4u) + nq]; }
  return vec4f(0.0);
}

fn tileStoreB(i: u32, v: vec4f) {
  if (TB) {
    let n = i / (BK / 4u);
    let k = 4u * (i % (BK / 4u));
    let o = n / 4u;
    let e = n % 4u;
    tB[k * (BN / 4u) + o][e] = v.x;
    tB[(k + 1u) * (BN / 4u) + o][e] = v.y;
    tB[(k + 2u) * (BN / 4u) + o][e] = v.z;
    tB[(k + 3u) * (BN / 4u) + o][e] = v.w;
  } else {
    tB[i] = v;
  }
}

@compute @workgroup_size(16, 16)
fn mm_tile4(
  @builtin(local_invocation_id) l: vec3u,
  @builtin(local_invocation_index) tid: u32,
  @builtin(workgroup_id) w: vec3u,
) {
  // z = batch · splits + split; split s sums k in [s · kChunk, min(K, (s + 1) · kChunk)) into its own
  // partial output (summed in order by splitk_sum).
  let zz = w.z + tp.z0;
  let bz = zz / tp.splits;
  let kBeg = (zz % tp.splits) * tp.kChunk;
  let kEnd = min(tp.K, kBeg + tp.kChunk);
  let aBase = bz * tp.strideA;
  let bBase = bz * tp.strideB;
  let cBase = zz * tp.strideC;
  let mBase = w.y * BM;
  let nBase = w.x * BN;
  let QM = BM / 64u;
  let QN = BN / 64u;
  let nA = BM * BK / 4u / TWG;
  let nB = BN * BK / 4u / TWG;
  var acc: array<array<vec4f, 2>, 8>;  // [4 · qm + r][qn]: row r of row quad qm, column quad qn
  var ra4: array<vec4f, MAX_LOADS>;
  var rb4: array<vec4f, MAX_LOADS>;
  let nSlices = select(0u, (kEnd - kBeg + BK - 1u) / BK, kEnd > kBeg);
  for (var s = 0u; s < nA; s++) { ra4[s] = tileLoadA(aBase, mBase, kBeg, kEnd, tid + s * TWG); }
  for (var s = 0u; s < nB; s++) { rb4[s] = tileLoadB(bBase, nBase, kBeg, kEnd, tid + s * TWG); }
  for (var t = 0u; t < nSlices; t++) {
    workgroupBarrier();
    for (var s = 0u; s < nA; s++) { tileStoreA(tid + s * TWG, ra4[s]); }
    for (var s = 0u; s < nB; s++) { tileStoreB(tid + s * TWG, rb4[s]); }
    workgroupBarrier();
    if (t + 1u < nSlices) {
      let k0 = kBeg + (t + 1u) * BK;
      for (var s = 0u; s < nA; s++) { ra4[s] = tileLoadA(aBase, mBase, k0, kEnd, tid + s * TWG); }
      for (var s = 0u; s < nB; s++) { rb4[s] = tileLoadB(bBase, nBase, k0, kEnd, tid + s * TWG); }
    }
    for (var k = 0u; k < BK; k++) {
      var av: array<vec4f, 2>;
      var bv: array<vec4f, 2>;
      for (var q = 0u; q < QM; q++) { av[q] = tA[k * (BM / 4u) + l.y + 16u * q]; }
      for (var q = 0u; q < QN; q++) { bv[q] = tB[k * (BN / 4u) + l.x + 16u * q]; }
      for (var qm = 0u; qm < QM; qm++) {
        for (var r = 0u; r < 4u; r++) {
          let a = vec4f(av[qm][r]);
          for (var qn = 0u; qn < QN; qn++) {
            acc[4u * qm + r][qn] = fma(a, bv[qn], acc[4u * qm + r][qn]);
          }
        }
      }
    }
  }
  let N4 = tp.N / 4u;
  for (var qm = 0u; qm < QM; qm++) {
    for (var r = 0u; r < 4u; r++) {
      let m = mBase + 4u * (l.y + 16u * qm) + r;
      if (m < tp.M) {
        for (var qn = 0u; qn < QN; qn++) {
          let cv = nBase / 4u + l.x + 16u * qn;
          if (cv < N4) {
            var v = acc[4u * qm + r][qn];
            if (tp.hasBias != 0u) { v += tbias[cv]; }
            tc[cBase + m * N4 + cv] = v;
          }
        }
      }
    }
  }
}

// ---- splitk_sum: out[b, i] = Σ_s part[b, s, i] (+ bias), s in order ---------------------------------------
struct SplitParams {
  n4: u32,      // vec4s per output matrix (M · N / 4)
  splits: u32,
  N4: u32,      // vec4 columns (for the bias)
  hasBias: u32,
  total: u32,   // batch · n4
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

override SWG: u32 = 256u;

@group(0) @binding(0) var<uniform> kp: SplitParams;
@group(0) @binding(1) var<storage, read> kpart: array<vec4f>;
@group(0) @binding(2) var<storage, read> kbias: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> kout: array<vec4f>;

@compute @workgroup_size(SWG)
fn splitk_sum(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = g.x + g.y * nwg.x * SWG;
  if (idx >= kp.total) { return; }
  let b = idx / kp.n4;
  let i = idx % kp.n4;
  let base = b * kp.splits * kp.n4 + i;
  var s = kpart[base];
  for (var j = 1u; j < kp.splits; j++) { s += kpart[base + j * kp.n4]; }
  if (kp.hasBias != 0u) { s += kbias[i % kp.N4]; }
  kout[idx] = s;
}

// ---- colsum: out[n] = Σ_m x[m, n] (the bias gradient), deterministic two-pass -----------------------------
// Pass 1 (colsum_partial): invocation (n, chunk) sums rows chunk·R .. chunk·R + R - 1 in order into
// part[chunk, n]. Pass 2 (colsum_final): invocation n sums part[0..chunks, n] in order. With one chunk,
// pass 1 writes the result directly.
struct ColsumParams {
  rows: u32,
  cols: u32,
  rowsPerChunk: u32,
  chunks: u32,
}

override CWG: u32 = 64u;

@group(0) @binding(0) var<uniform> cp: ColsumParams;
@group(0) @binding(1) var<storage, read> cx: array<f32>;
@group(0) @binding(2) var<storage, read_write> cpart: array<f32>;

@compute @workgroup_size(CWG)
fn colsum_partial(@builtin(global_invocation_id) g: vec3u) {
  let n = g.x;
  let chunk = g.y;
  if (n >= cp.cols || chunk >= cp.chunks) { return; }
  let r0 = chunk * cp.rowsPerChunk;
  let r1 = min(r0 + cp.rowsPerChunk, cp.rows);
  var s = 0.0;
  for (var r = r0; r < r1; r++) { s += cx[r * cp.cols + n]; }
  cpart[chunk * cp.cols + n] = s;
}

@group(0) @binding(0) var<uniform> fp: ColsumParams;
@group(0) @binding(1) var<storage, read> fpart: array<f32>;
@group(0) @binding(2) var<storage, read_write> fout: array<f32>;

@compute @workgroup_size(CWG)
fn colsum_final(@builtin(global_invocation_id) g: vec3u) {
  let n = g.x;
  if (n >= fp.cols) { return; }
  var s = 0.0;
  for (var c = 0u; c < fp.chunks; c++) { s += fpart[c * fp.cols + n]; }
  fout[n] = s;
}
