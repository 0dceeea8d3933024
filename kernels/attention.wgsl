// Fused multi-head attention (flash-attention style) and the head split/merge permutes of a DiT block.
//
// Layouts (row-major, contiguous, as vec4s: the head dim Dh is a multiple of 4 here, the TS side pads
// other head dims with zeros): q, o, dq: [BH, Tq, Dh]; k, v, dk, dv: [BH, Tk, Dh]; lse, delta: [BH, Tq].
//
// Each kernel gives every invocation RQ rows of its own operand (query rows in attn_fwd and attn_bwd_dq,
// key rows in attn_bwd_dkdv; rows rb·WG·RQ + r·WG + li), kept in registers as ND4 = Dh/4 vec4s, and
// streams the other operand through workgroup memory in tiles of BT rows (BT a multiple of 4, loaded
// cooperatively). Keys (or queries) are consumed four at a time: four scores per row as one vec4.
//
// Tiles: with LOOP = true one dispatch walks all tiles (the usual GPU form). With LOOP = false each
// dispatch handles the tiles [t0, t1) = one tile, and the running state (softmax max/sum and output
// accumulator, or the gradient accumulators) is carried between dispatches in the output buffers. That
// form has no loop around the arithmetic, so shader compilers unroll it completely and every
// workgroup-memory address becomes a constant: llvmpipe (software Vulkan) then loads each value once and
// broadcasts it to the SIMD lanes instead of gathering it lane by lane, which is ~5x faster there (Mesa
// takes that path only for constant addresses outside any loop or branch). The repetitive call lists
// below (keys 0..60 in steps of 4, dims 0..28 in steps of 4, own rows 0..7, each guarded by an override so
// that the unused ones fold away) exist so that every loop left has at most 4 iterations: NIR unrolls
// only loops whose trip count times body size is small.
//
// Rows past the end are clamped for the arithmetic (every invocation reaches every barrier) and not
// written; keys past the end score -inf. No atomics: every output element is written by one invocation and
// summed in a fixed order, so results are bit-identical from run to run.
//
// Scores are kept in base 2: s2 = (q . k) * scale * log2(e), p = exp2(s2 - lse2). The saved lse is the
// natural-log logsumexp of the scaled scores, lse = ln(sum_j exp(scale * q . k_j)).
//
// Workgroup index: wid = workgroup_id.x + workgroup_id.y * num_workgroups.x (2-D grids), clamped to the
// last block (no early return: it would put all the arithmetic under control flow); row block
// rb = wid % nrb and bh = wid / nrb.

struct AttnParams {
  bh: u32,      // B * H
  tq: u32,      // query rows
  tk: u32,      // key rows
  nrb: u32,     // row blocks per (batch, head)
  scale: f32,   // softmax scale
  scale2: f32,  // scale * log2(e)
  t0: u32,      // first streamed row of this dispatch
  t1: u32,      // end of the streamed rows of this dispatch
}

override WG: u32 = 64u;     // invocations per workgroup
override RQ: u32 = 1u;      // rows per invocation (RQ * ND4 <= MAX_RQD4)
override BT: u32 = 32u;     // rows per workgroup-memory tile: a multiple of 4, <= 64
override ND4: u32 = 16u;    // Dh / 4, <= 32
override LOOP: bool = true; // all tiles in one dispatch, or one tile per dispatch

const MAX_RQ: u32 = 8u;
const MAX_RQD4: u32 = 64u;
const NEG_BIG: f32 = -3.0e38;
const LOG2E: f32 = 1.4426950408889634;
const LN2: f32 = 0.6931471805599453;

var<workgroup> tA: array<vec4f, BT * ND4>;
var<workgroup> tB: array<vec4f, BT * ND4>;
var<workgroup> tL: array<f32, BT>;
var<workgroup> tD: array<f32, BT>;

// Per-invocation state (registers once unrolled).
var<private> pa: array<vec4f, MAX_RQD4>;   // own rows: q·scale2 (fwd, dq) or k·scale2 (dkdv)
var<private> pb: array<vec4f, MAX_RQD4>;   // own rows: dO (dq) or v (dkdv)
var<private> acc1: array<vec4f, MAX_RQD4>; // o (fwd), dq (dq) or dk (dkdv) accumulator
var<private> acc2: array<vec4f, MAX_RQD4>; // dv accumulator (dkdv)
var<private> s1: array<vec4f, MAX_RQ>;     // scores, then p (fwd, dkdv) or ds (dq), of 4 keys per row
var<private> s2: array<vec4f, MAX_RQ>;     // dO . v of 4 keys per row, then ds (dkdv)
var<private> rm: array<f32, MAX_RQ>;       // running max (fwd) or lse2 (dq)
var<private> rl: array<f32, MAX_RQ>;       // running sum (fwd) or delta (dq)
var<private> ralpha: array<f32, MAX_RQ>;   // rescale factor of the step (fwd)

fn valid4(j0: u32, n: u32) -> vec4<bool> {
  return vec4u(j0, j0 + 1u, j0 + 2u, j0 + 3u) < vec4u(n);
}

// --- forward: o = softmax(scale q k^T) v, lse ------------------------------------------------------------
@group(0) @binding(0) var<uniform> fp: AttnParams;
@group(0) @binding(1) var<storage, read> fq: array<vec4f>;
@group(0) @binding(2) var<storage, read> fk: array<vec4f>;
@group(0) @binding(3) var<storage, read> fv: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> fo: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> flse: array<f32>;
@group(0) @binding(6) var<storage, read_write> fml: array<vec2f>; // running (max, sum) between dispatches

// Scores of keys j0 .. j0 + 3 over dims 4*c0 .. 4*c0 + 15.
fn fwd_dots(j0: u32, c0: u32) {
  for (var c = c0; c < min(c0 + 4u, ND4); c++) {
    let k0 = tA[j0 * ND4 + c];
    let k1 = tA[(j0 + 1u) * ND4 + c];
    let k2 = tA[(j0 + 2u) * ND4 + c];
    let k3 = tA[(j0 + 3u) * ND4 + c];
    for (var r = 0u; r < RQ; r++) {
      let x = pa[r * ND4 + c];
      s1[r] += vec4f(dot(x, k0), dot(x, k1), dot(x, k2), dot(x, k3));
    }
  }
}

fn fwd_accum(j0: u32, c0: u32) {
  for (var c = c0; c < min(c0 + 4u, ND4); c++) {
    let v0 = tB[j0 * ND4 + c];
    let v1 = tB[(j0 + 1u) * ND4 + c];
    let v2 = tB[(j0 + 2u) * ND4 + c];
    let v3 = tB[(j0 + 3u) * ND4 + c];
    for (var r = 0u; r < RQ; r++) {
      let p = s1[r];
      acc1[r * ND4 + c] = acc1[r * ND4 + c] * ralpha[r] + ((p.x * v0 + p.y * v1) + (p.z * v2 + p.w * v3));
    }
  }
}

// Online-softmax step over keys j0 .. j0 + 3 of the tile (n valid keys).
fn fwd_keys4(j0: u32, n: u32) {
  for (var r = 0u; r < RQ; r++) { s1[r] = vec4f(0.0); }
  fwd_dots(j0, 0u);
  if (ND4 > 4u) { fwd_dots(j0, 4u); }
  if (ND4 > 8u) { fwd_dots(j0, 8u); }
  if (ND4 > 12u) { fwd_dots(j0, 12u); }
  if (ND4 > 16u) { fwd_dots(j0, 16u); }
  if (ND4 > 20u) { fwd_dots(j0, 20u); }
  if (ND4 > 24u) { fwd_dots(j0, 24u); }
  if (ND4 > 28u) { fwd_dots(j0, 28u); }
  let valid = valid4(j0, n);
  for (var r = 0u; r < RQ; r++) {
    let s = select(vec4f(NEG_BIG), s1[r], valid);
    let mnew = max(rm[r], max(max(s.x, s.y), max(s.z, s.w)));
    ralpha[r] = exp2(rm[r] - mnew);
    let p = exp2(s - vec4f(mnew));
    rl[r] = rl[r] * ralpha[r] + ((p.x + p.y) + (p.z + p.w));
    rm[r] = mnew;
    s1[r] = p;
  }
  fwd_accum(j0, 0u);
  if (ND4 > 4u) { fwd_accum(j0, 4u); }
  if (ND4 > 8u) { fwd_accum(j0, 8u); }
  if (ND4 > 12u) { fwd_accum(j0, 12u); }
  if (ND4 > 16u) { fwd_accum(j0, 16u); }
  if (ND4 > 20u) { fwd_accum(j0, 20u); }
  if (ND4 > 24u) { fwd_accum(j0, 24u); }
  if (ND4 > 28u) { fwd_accum(j0, 28u); }
}

fn fwd_tile(li: u32, kbase: u32, t0: u32) {
  let n = min(BT, fp.tk - t0);
  workgroupBarrier();
  for (var i = li; i < BT * ND4; i += WG) {
    let j = i / ND4;
    let src = kbase + min(t0 + j, fp.tk - 1u) * ND4 + i % ND4;
    tA[i] = select(vec4f(0.0), fk[src], j < n);
    tB[i] = select(vec4f(0.0), fv[src], j < n);
  }
  workgroupBarrier();
  fwd_keys4(0u, n);
  if (BT > 4u) { fwd_keys4(4u, n); }
  if (BT > 8u) { fwd_keys4(8u, n); }
  if (BT > 12u) { fwd_keys4(12u, n); }
  if (BT > 16u) { fwd_keys4(16u, n); }
  if (BT > 20u) { fwd_keys4(20u, n); }
  if (BT > 24u) { fwd_keys4(24u, n); }
  if (BT > 28u) { fwd_keys4(28u, n); }
  if (BT > 32u) { fwd_keys4(32u, n); }
  if (BT > 36u) { fwd_keys4(36u, n); }
  if (BT > 40u) { fwd_keys4(40u, n); }
  if (BT > 44u) { fwd_keys4(44u, n); }
  if (BT > 48u) { fwd_keys4(48u, n); }
  if (BT > 52u) { fwd_keys4(52u, n); }
  if (BT > 56u) { fwd_keys4(56u, n); }
  if (BT > 60u) { fwd_keys4(60u, n); }
}

// Loads own row r (q, and the carried accumulator) over dims 4*c0 .. 4*c0 + 15.
fn fwd_init(r: u32, row: u32, c0: u32, first: bool) {
  for (var c = c0; c < min(c0 + 4u, ND4); c++) {
    pa[r * ND4 + c] = fq[row * ND4 + c] * fp.scale2;
    acc1[r * ND4 + c] = select(fo[row * ND4 + c], vec4f(0.0), first);
  }
}

fn fwd_init_row(r: u32, rbase: u32, bh: u32, first: bool) {
  let row = bh * fp.tq + min(rbase + r * WG, fp.tq - 1u);
  fwd_init(r, row, 0u, first);
  if (ND4 > 4u) { fwd_init(r, row, 4u, first); }
  if (ND4 > 8u) { fwd_init(r, row, 8u, first); }
  if (ND4 > 12u) { fwd_init(r, row, 12u, first); }
  if (ND4 > 16u) { fwd_init(r, row, 16u, first); }
  if (ND4 > 20u) { fwd_init(r, row, 20u, first); }
  if (ND4 > 24u) { fwd_init(r, row, 24u, first); }
  if (ND4 > 28u) { fwd_init(r, row, 28u, first); }
  let ml = select(fml[row], vec2f(NEG_BIG, 0.0), first);
  rm[r] = ml.x;
  rl[r] = ml.y;
}

fn fwd_store(r: u32, row: u32, c0: u32, f: f32) {
  for (var c = c0; c < min(c0 + 4u, ND4); c++) { fo[row * ND4 + c] = acc1[r * ND4 + c] * f; }
}

fn fwd_store_row(r: u32, rbase: u32, bh: u32, own: bool, last: bool) {
  if (own && rbase + r * WG < fp.tq) {
    let row = bh * fp.tq + rbase + r * WG;
    let f = select(1.0, 1.0 / rl[r], last);
    fwd_store(r, row, 0u, f);
    if (ND4 > 4u) { fwd_store(r, row, 4u, f); }
    if (ND4 > 8u) { fwd_store(r, row, 8u, f); }
    if (ND4 > 12u) { fwd_store(r, row, 12u, f); }
    if (ND4 > 16u) { fwd_store(r, row, 16u, f); }
    if (ND4 > 20u) { fwd_store(r, row, 20u, f); }
    if (ND4 > 24u) { fwd_store(r, row, 24u, f); }
    if (ND4 > 28u) { fwd_store(r, row, 28u, f); }
    fml[row] = vec2f(rm[r], rl[r]);
    if (last) { flse[row] = (rm[r] + log2(rl[r])) * LN2; }
  }
}

@compute @workgroup_size(WG)
fn attn_fwd(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  // Workgroups past the end (2-D grid rounding) redo the last block but write nothing.
  let wid0 = wg.x + wg.y * nwg.x;
  let own = wid0 < fp.bh * fp.nrb;
  let wid = min(wid0, fp.bh * fp.nrb - 1u);
  let rb = wid % fp.nrb;
  let bh = wid / fp.nrb;
  let first = fp.t0 == 0u;
  let last = fp.t1 >= fp.tk;
  let rbase = rb * WG * RQ + li;
  fwd_init_row(0u, rbase, bh, first);
  if (RQ > 1u) { fwd_init_row(1u, rbase, bh, first); }
  if (RQ > 2u) { fwd_init_row(2u, rbase, bh, first); }
  if (RQ > 3u) { fwd_init_row(3u, rbase, bh, first); }
  if (RQ > 4u) { fwd_init_row(4u, rbase, bh, first); }
  if (RQ > 5u) { fwd_init_row(5u, rbase, bh, first); }
  if (RQ > 6u) { fwd_init_row(6u, rbase, bh, first); }
  if (RQ > 7u) { fwd_init_row(7u, rbase, bh, first); }
  let kbase = bh * fp.tk * ND4;
  if (LOOP) {
    for (var t0 = fp.t0; t0 < fp.t1; t0 += BT) { fwd_tile(li, kbase, t0); }
  } else {
    fwd_tile(li, kbase, fp.t0);
  }
  fwd_store_row(0u, rbase, bh, own, last);
  if (RQ > 1u) { fwd_store_row(1u, rbase, bh, own, last); }
  if (RQ > 2u) { fwd_store_row(2u, rbase, bh, own, last); }
  if (RQ > 3u) { fwd_store_row(3u, rbase, bh, own, last); }
  if (RQ > 4u) { fwd_store_row(4u, rbase, bh, own, last); }
  if (RQ > 5u) { fwd_store_row(5u, rbase, bh, own, last); }
  if (RQ > 6u) { fwd_store_row(6u, rbase, bh, own, last); }
  if (RQ > 7u) { fwd_store_row(7u, rbase, bh, own, last); }
}

// --- backward, step 1: delta_i = sum_d dO_id * O_id ---------------------------------------------------------
struct DeltaParams {
  rows: u32,
  nd4: u32,
  _p0: u32,
  _p1: u32,
}

@group(0) @binding(0) var<uniform> dp: DeltaParams;
@group(0) @binding(1) var<storage, read> dgo: array<vec4f>;
@group(0) @binding(2) var<storage, read> dout: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> ddelta: array<f32>;

@compute @workgroup_size(WG)
fn attn_bwd_delta(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = gid.x + gid.y * nwg.x * WG;
  if (r >= dp.rows) { return; }
  var acc = vec4f(0.0);
  for (var c = 0u; c < dp.nd4; c++) { acc += dgo[r * dp.nd4 + c] * dout[r * dp.nd4 + c]; }
  ddelta[r] = (acc.x + acc.y) + (acc.z + acc.w);
}

// --- backward, step 2: dQ, RQ query rows per invocation, streaming key tiles ---------------------------------
// ds_ij = p_ij (dO_i . v_j - delta_i), dq_i = scale * sum_j ds_ij k_j.
@group(0) @binding(0) var<uniform> qp: AttnParams;
@group(0) @binding(1) var<storage, read> qq: array<vec4f>;
@group(0) @binding(2) var<storage, read> qk: array<vec4f>;
@group(0) @binding(3) var<storage, read> qv: array<vec4f>;
@group(0) @binding(4) var<storage, read> qgo: array<vec4f>;
@group(0) @binding(5) var<storage, read> qlse: array<f32>;
@group(0) @binding(6) var<storage, read> qdelta: array<f32>;
@group(0) @binding(7) var<storage, read_write> qdq: array<vec4f>;

fn dq_dots(j0: u32, c0: u32) {
  for (var c = c0; c < min(c0 + 4u, ND4); c++) {
    let k0 = tA[j0 * ND4 + c];
    let k1 = tA[(j0 + 1u) * ND4 + c];
    let k2 = tA[(j0 + 2u) * ND4 + c];
    let k3 = tA[(j0 + 3u) * ND4 + c];
    let v0 = tB[j0 * ND4 + c];
    let v1 = tB[(j0 + 1u) * ND4 + c];
    let v2 = tB[(j0 + 2u) * ND4 + c];
    let v3 = tB[(j0 + 3u) * ND4 + c];
    for (var r = 0u; r < RQ; r++) {
      let x = pa[r * ND4 + c];
      let g = pb[r * ND4 + c];
      s1[r] += vec4f(dot(x, k0), dot(x, k1), dot(x, k2), dot(x, k3));
      s2[r] += vec4f(dot(g, v0), dot(g, v1), dot(g, v2), dot(g, v3));
    }
  }
}

fn dq_accum(j0: u32, c0: u32) {
  for (var c = c0; c < min(c0 + 4u, ND4); c++) {
    let k0 = tA[j0 * ND4 + c];
    let k1 = tA[(j0 + 1u) * ND4 + c];
    let k2 = tA[(j0 + 2u) * ND4 + c];
    let k3 = tA[(j0 + 3u) * ND4 + c];
    for (var r = 0u; r < RQ; r++) {
      let ds = s1[r];
      acc1[r * ND4 + c] += (ds.x * k0 + ds.y * k1) + (ds.z * k2 + ds.w * k3);
    }
  }
}

fn dq_keys4(j0: u32, n: u32) {
  for (var r = 0u; r < RQ; r++) {
    s1[r] = vec4f(0.0);
    s2[r] = vec4f(0.0);
  }
  dq_dots(j0, 0u);
  if (ND4 > 4u) { dq_dots(j0, 4u); }
  if (ND4 > 8u) { dq_dots(j0, 8u); }
  if (ND4 > 12u) { dq_dots(j0, 12u); }
  if (ND4 > 16u) { dq_dots(j0, 16u); }
  if (ND4 > 20u) { dq_dots(j0, 20u); }
  if (ND4 > 24u) { dq_dots(j0, 24u); }
  if (ND4 > 28u) { dq_dots(j0, 28u); }
  let valid = valid4(j0, n);
  for (var r = 0u; r < RQ; r++) {
    let p = exp2(select(vec4f(NEG_BIG), s1[r], valid) - vec4f(rm[r]));
    s1[r] = p * (s2[r] - vec4f(rl[r]));
  }
  dq_accum(j0, 0u);
  if (ND4 > 4u) { dq_accum(j0, 4u); }
  if (ND4 > 8u) { dq_accum(j0, 8u); }
  if (ND4 > 12u) { dq_accum(j0, 12u); }
  if (ND4 > 16u) { dq_accum(j0, 16u); }
  if (ND4 > 20u) { dq_accum(j0, 20u); }
  if (ND4 > 24u) { dq_accum(j0, 24u); }
  if (ND4 > 28u) { dq_accum(j0, 28u); }
}

fn dq_tile(li: u32, kbase: u32, t0: u32) {
  let n = min(BT, qp.tk - t0);
  workgroupBarrier();
  for (var i = li; i < BT * ND4; i += WG) {
    let j = i / ND4;
    let src = kbase + min(t0 + j, qp.tk - 1u) * ND4 + i % ND4;
    tA[i] = select(vec4f(0.0), qk[src], j < n);
    tB[i] = select(vec4f(0.0), qv[src], j < n);
  }
  workgroupBarrier();
  dq_keys4(0u, n);
  if (BT > 4u) { dq_keys4(4u, n); }
  if (BT > 8u) { dq_keys4(8u, n); }
  if (BT > 12u) { dq_keys4(12u, n); }
  if (BT > 16u) { dq_keys4(16u, n); }
  if (BT > 20u) { dq_keys4(20u, n); }
  if (BT > 24u) { dq_keys4(24u, n); }
  if (BT > 28u) { dq_keys4(28u, n); }
  if (BT > 32u) { dq_keys4(32u, n); }
  if (BT > 36u) { dq_keys4(36u, n); }
  if (BT > 40u) { dq_keys4(40u, n); }
  if (BT > 44u) { dq_keys4(44u, n); }
  if (BT > 48u) { dq_keys4(48u, n); }
  if (BT > 52u) { dq_keys4(52u, n); }
  if (BT > 56u) { dq_keys4(56u, n); }
  if (BT > 60u) { dq_keys4(60u, n); }
}

fn dq_init(r: u32, row: u32, c0: u32, first: bool) {
  for (var c = c0; c < min(c0 + 4u, ND4); c++) {
    pa[r * ND4 + c] = qq[row * ND4 + c] * qp.scale2;
    pb[r * ND4 + c] = qgo[row * ND4 + c];
    acc1[r * ND4 + c] = select(qdq[row * ND4 + c], vec4f(0.0), first);
  }
}

fn dq_init_row(r: u32, rbase: u32, bh: u32, first: bool) {
  let row = bh * qp.tq + min(rbase + r * WG, qp.tq - 1u);
  dq_init(r, row, 0u, first);
  if (ND4 > 4u) { dq_init(r, row, 4u, first); }
  if (ND4 > 8u) { dq_init(r, row, 8u, first); }
  if (ND4 > 12u) { dq_init(r, row, 12u, first); }
  if (ND4 > 16u) { dq_init(r, row, 16u, first); }
  if (ND4 > 20u) { dq_init(r, row, 20u, first); }
  if (ND4 > 24u) { dq_init(r, row, 24u, first); }
  if (ND4 > 28u) { dq_init(r, row, 28u, first); }
  rm[r] = qlse[row] * LOG2E;
  rl[r] = qdelta[row];
}

fn dq_store(r: u32, row: u32, c0: u32, f: f32) {
  for (var c = c0; c < min(c0 + 4u, ND4); c++) { qdq[row * ND4 + c] = acc1[r * ND4 + c] * f; }
}

fn dq_store_row(r: u32, rbase: u32, bh: u32, own: bool, f: f32) {
  if (own && rbase + r * WG < qp.tq) {
    let row = bh * qp.tq + rbase + r * WG;
    dq_store(r, row, 0u, f);
    if (ND4 > 4u) { dq_store(r, row, 4u, f); }
    if (ND4 > 8u) { dq_store(r, row, 8u, f); }
    if (ND4 > 12u) { dq_store(r, row, 12u, f); }
    if (ND4 > 16u) { dq_store(r, row, 16u, f); }
    if (ND4 > 20u) { dq_store(r, row, 20u, f); }
    if (ND4 > 24u) { dq_store(r, row, 24u, f); }
    if (ND4 > 28u) { dq_store(r, row, 28u, f); }
  }
}

@compute @workgroup_size(WG)
fn attn_bwd_dq(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  let wid0 = wg.x + wg.y * nwg.x;
  let own = wid0 < qp.bh * qp.nrb;
  let wid = min(wid0, qp.bh * qp.nrb - 1u);
  let rb = wid % qp.nrb;
  let bh = wid / qp.nrb;
  let first = qp.t0 == 0u;
  let last = qp.t1 >= qp.tk;
  let rbase = rb * WG * RQ + li;
  dq_init_row(0u, rbase, bh, first);
  if (RQ > 1u) { dq_init_row(1u, rbase, bh, first); }
  if (RQ > 2u) { dq_init_row(2u, rbase, bh, first); }
  if (RQ > 3u) { dq_init_row(3u, rbase, bh, first); }
  if (RQ > 4u) { dq_init_row(4u, rbase, bh, first); }
  if (RQ > 5u) { dq_init_row(5u, rbase, bh, first); }
  if (RQ > 6u) { dq_init_row(6u, rbase, bh, first); }
  if (RQ > 7u) { dq_init_row(7u, rbase, bh, first); }
  let kbase = bh * qp.tk * ND4;
  if (LOOP) {
    for (var t0 = qp.t0; t0 < qp.t1; t0 += BT) { dq_tile(li, kbase, t0); }
  } else {
    dq_tile(li, kbase, qp.t0);
  }
  let f = select(1.0, qp.scale, last);
  dq_store_row(0u, rbase, bh, own, f);
  if (RQ > 1u) { dq_store_row(1u, rbase, bh, own, f); }
  if (RQ > 2u) { dq_store_row(2u, rbase, bh, own, f); }
  if (RQ > 3u) { dq_store_row(3u, rbase, bh, own, f); }
  if (RQ > 4u) { dq_store_row(4u, rbase, bh, own, f); }
  if (RQ > 5u) { dq_store_row(5u, rbase, bh, own, f); }
  if (RQ > 6u) { dq_store_row(6u, rbase, bh, own, f); }
  if (RQ > 7u) { dq_store_row(7u, rbase, bh, own, f); }
}

// --- backward, step 3: dK and dV, RQ key rows per invocation, streaming query tiles --------------------------
// dv_j = sum_i p_ij dO_i, dk_j = scale * sum_i ds_ij q_i.
@group(0) @binding(0) var<uniform> kp: AttnParams;
@group(0) @binding(1) var<storage, read> kq: array<vec4f>;
@group(0) @binding(2) var<storage, read> kk: array<vec4f>;
@group(0) @binding(3) var<storage, read> kv: array<vec4f>;
@group(0) @binding(4) var<storage, read> kgo: array<vec4f>;
@group(0) @binding(5) var<storage, read> klse: array<f32>;
@group(0) @binding(6) var<storage, read> kdelta: array<f32>;
@group(0) @binding(7) var<storage, read_write> kdk: array<vec4f>;
@group(0) @binding(8) var<storage, read_write> kdv: array<vec4f>;

fn kv_dots(i0: u32, c0: u32) {
  for (var c = c0; c < min(c0 + 4u, ND4); c++) {
    let q0 = tA[i0 * ND4 + c];
    let q1 = tA[(i0 + 1u) * ND4 + c];
    let q2 = tA[(i0 + 2u) * ND4 + c];
    let q3 = tA[(i0 + 3u) * ND4 + c];
    let g0 = tB[i0 * ND4 + c];
    let g1 = tB[(i0 + 1u) * ND4 + c];
    let g2 = tB[(i0 + 2u) * ND4 + c];
    let g3 = tB[(i0 + 3u) * ND4 + c];
    for (var r = 0u; r < RQ; r++) {
      let x = pa[r * ND4 + c];
      let y = pb[r * ND4 + c];
      s1[r] += vec4f(dot(x, q0), dot(x, q1), dot(x, q2), dot(x, q3));
      s2[r] += vec4f(dot(y, g0), dot(y, g1), dot(y, g2), dot(y, g3));
    }
  }
}

fn kv_accum(i0: u32, c0: u32) {
  for (var c = c0; c < min(c0 + 4u, ND4); c++) {
    let q0 = tA[i0 * ND4 + c];
    let q1 = tA[(i0 + 1u) * ND4 + c];
    let q2 = tA[(i0 + 2u) * ND4 + c];
    let q3 = tA[(i0 + 3u) * ND4 + c];
    let g0 = tB[i0 * ND4 + c];
    let g1 = tB[(i0 + 1u) * ND4 + c];
    let g2 = tB[(i0 + 2u) * ND4 + c];
    let g3 = tB[(i0 + 3u) * ND4 + c];
    for (var r = 0u; r < RQ; r++) {
      let p = s1[r];
      let ds = s2[r];
      acc2[r * ND4 + c] += (p.x * g0 + p.y * g1) + (p.z * g2 + p.w * g3);
      acc1[r * ND4 + c] += (ds.x * q0 + ds.y * q1) + (ds.z * q2 + ds.w * q3);
    }
  }
}

fn kv_queries4(i0: u32, n: u32) {
  for (var r = 0u; r < RQ; r++) {
    s1[r] = vec4f(0.0);
    s2[r] = vec4f(0.0);
  }
  kv_dots(i0, 0u);
  if (ND4 > 4u) { kv_dots(i0, 4u); }
  if (ND4 > 8u) { kv_dots(i0, 8u); }
  if (ND4 > 12u) { kv_dots(i0, 12u); }
  if (ND4 > 16u) { kv_dots(i0, 16u); }
  if (ND4 > 20u) { kv_dots(i0, 20u); }
  if (ND4 > 24u) { kv_dots(i0, 24u); }
  if (ND4 > 28u) { kv_dots(i0, 28u); }
  let valid = valid4(i0, n);
  let lse2 = vec4f(tL[i0], tL[i0 + 1u], tL[i0 + 2u], tL[i0 + 3u]);
  let delta = vec4f(tD[i0], tD[i0 + 1u], tD[i0 + 2u], tD[i0 + 3u]);
  for (var r = 0u; r < RQ; r++) {
    let p = exp2(select(vec4f(NEG_BIG), s1[r], valid) - lse2);
    s2[r] = p * (s2[r] - delta);
    s1[r] = p;
  }
  kv_accum(i0, 0u);
  if (ND4 > 4u) { kv_accum(i0, 4u); }
  if (ND4 > 8u) { kv_accum(i0, 8u); }
  if (ND4 > 12u) { kv_accum(i0, 12u); }
  if (ND4 > 16u) { kv_accum(i0, 16u); }
  if (ND4 > 20u) { kv_accum(i0, 20u); }
  if (ND4 > 24u) { kv_accum(i0, 24u); }
  if (ND4 > 28u) { kv_accum(i0, 28u); }
}

fn kv_tile(li: u32, bh: u32, t0: u32) {
  let n = min(BT, kp.tq - t0);
  workgroupBarrier();
  for (var i = li; i < BT * ND4; i += WG) {
    let j = i / ND4;
    let src = (bh * kp.tq + min(t0 + j, kp.tq - 1u)) * ND4 + i % ND4;
    tA[i] = select(vec4f(0.0), kq[src], j < n);
    tB[i] = select(vec4f(0.0), kgo[src], j < n);
  }
  for (var j = li; j < BT; j += WG) {
    let src = bh * kp.tq + min(t0 + j, kp.tq - 1u);
    tL[j] = select(0.0, klse[src] * LOG2E, j < n);
    tD[j] = select(0.0, kdelta[src], j < n);
  }
  workgroupBarrier();
  kv_queries4(0u, n);
  if (BT > 4u) { kv_queries4(4u, n); }
  if (BT > 8u) { kv_queries4(8u, n); }
  if (BT > 12u) { kv_queries4(12u, n); }
  if (BT > 16u) { kv_queries4(16u, n); }
  if (BT > 20u) { kv_queries4(20u, n); }
  if (BT > 24u) { kv_queries4(24u, n); }
  if (BT > 28u) { kv_queries4(28u, n); }
  if (BT > 32u) { kv_queries4(32u, n); }
  if (BT > 36u) { kv_queries4(36u, n); }
  if (BT > 40u) { kv_queries4(40u, n); }
  if (BT > 44u) { kv_queries4(44u, n); }
  if (BT > 48u) { kv_queries4(48u, n); }
  if (BT > 52u) { kv_queries4(52u, n); }
  if (BT > 56u) { kv_queries4(56u, n); }
  if (BT > 60u) { kv_queries4(60u, n); }
}

fn kv_init(r: u32, row: u32, c0: u32, first: bool) {
  for (var c = c0; c < min(c0 + 4u, ND4); c++) {
    pa[r * ND4 + c] = kk[row * ND4 + c] * kp.scale2;
    pb[r * ND4 + c] = kv[row * ND4 + c];
    acc1[r * ND4 + c] = select(kdk[row * ND4 + c], vec4f(0.0), first);
    acc2[r * ND4 + c] = select(kdv[row * ND4 + c], vec4f(0.0), first);
  }
}

fn kv_init_row(r: u32, rbase: u32, bh: u32, first: bool) {
  let row = bh * kp.tk + min(rbase + r * WG, kp.tk - 1u);
  kv_init(r, row, 0u, first);
  if (ND4 > 4u) { kv_init(r, row, 4u, first); }
  if (ND4 > 8u) { kv_init(r, row, 8u, first); }
  if (ND4 > 12u) { kv_init(r, row, 12u, first); }
  if (ND4 > 16u) { kv_init(r, row, 16u, first); }
  if (ND4 > 20u) { kv_init(r, row, 20u, first); }
  if (ND4 > 24u) { kv_init(r, row, 24u, first); }
  if (ND4 > 28u) { kv_init(r, row, 28u, first); }
}

fn kv_store(r: u32, row: u32, c0: u32, f: f32) {
  for (var c = c0; c < min(c0 + 4u, ND4); c++) {
    kdk[row * ND4 + c] = acc1[r * ND4 + c] * f;
    kdv[row * ND4 + c] = acc2[r * ND4 + c];
  }
}

fn kv_store_row(r: u32, rbase: u32, bh: u32, own: bool, f: f32) {
  if (own && rbase + r * WG < kp.tk) {
    let row = bh * kp.tk + rbase + r * WG;
    kv_store(r, row, 0u, f);
    if (ND4 > 4u) { kv_store(r, row, 4u, f); }
    if (ND4 > 8u) { kv_store(r, row, 8u, f); }
    if (ND4 > 12u) { kv_store(r, row, 12u, f); }
    if (ND4 > 16u) { kv_store(r, row, 16u, f); }
    if (ND4 > 20u) { kv_store(r, row, 20u, f); }
    if (ND4 > 24u) { kv_store(r, row, 24u, f); }
    if (ND4 > 28u) { kv_store(r, row, 28u, f); }
  }
}

@compute @workgroup_size(WG)
fn attn_bwd_dkdv(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  let wid0 = wg.x + wg.y * nwg.x;
  let own = wid0 < kp.bh * kp.nrb;
  let wid = min(wid0, kp.bh * kp.nrb - 1u);
  let rb = wid % kp.nrb;
  let bh = wid / kp.nrb;
  let first = kp.t0 == 0u;
  let last = kp.t1 >= kp.tq;
  let rbase = rb * WG * RQ + li;
  kv_init_row(0u, rbase, bh, first);
  if (RQ > 1u) { kv_init_row(1u, rbase, bh, first); }
  if (RQ > 2u) { kv_init_row(2u, rbase, bh, first); }
  if (RQ > 3u) { kv_init_row(3u, rbase, bh, first); }
  if (RQ > 4u) { kv_init_row(4u, rbase, bh, first); }
  if (RQ > 5u) { kv_init_row(5u, rbase, bh, first); }
  if (RQ > 6u) { kv_init_row(6u, rbase, bh, first); }
  if (RQ > 7u) { kv_init_row(7u, rbase, bh, first); }
  if (LOOP) {
    for (var t0 = kp.t0; t0 < kp.t1; t0 += BT) { kv_tile(li, bh, t0); }
  } else {
    kv_tile(li, bh, kp.t0);
  }
  let f = select(1.0, kp.scale, last);
  kv_store_row(0u, rbase, bh, own, f);
  if (RQ > 1u) { kv_store_row(1u, rbase, bh, own, f); }
  if (RQ > 2u) { kv_store_row(2u, rbase, bh, own, f); }
  if (RQ > 3u) { kv_store_row(3u, rbase, bh, own, f); }
  if (RQ > 4u) { kv_store_row(4u, rbase, bh, own, f); }
  if (RQ > 5u) { kv_store_row(5u, rbase, bh, own, f); }
  if (RQ > 6u) { kv_store_row(6u, rbase, bh, own, f); }
  if (RQ > 7u) { kv_store_row(7u, rbase, bh, own, f); }
}

// --- column padding: out [R, C_out] = in [R, C_in] cut or zero-padded (head dims that are not a multiple of 4)
struct PadParams {
  n: u32,     // elements of out
  cin: u32,
  cout: u32,
  _p: u32,
}

override PWG: u32 = 256u;

@group(0) @binding(0) var<uniform> pp: PadParams;
@group(0) @binding(1) var<storage, read> pin: array<f32>;
@group(0) @binding(2) var<storage, read_write> pout: array<f32>;

@compute @workgroup_size(PWG)
fn pad_cols(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * PWG;
  if (i >= pp.n) { return; }
  let c = i % pp.cout;
  let r = i / pp.cout;
  var x = 0.0;
  if (c < pp.cin) { x = pin[r * pp.cin + c]; }
  pout[i] = x;
}

// --- head permutes --------------------------------------------------------------------------------------
// split_qkv: qkv [B, T, 3, H, Dh] (a [B, T, 3D] tensor) -> q, k, v [B, H, T, Dh] (the layout of the official
// DiT: qkv.reshape(B, T, 3, H, Dh).permute(2, 0, 3, 1, 4)).
// join_qkv: its adjoint, q, k, v [B, H, T, Dh] -> qkv [B, T, 3D] (splitHeads' backward).
// heads_merge: src [B, H, T, Dh] -> out [B, T, H, Dh] (mergeHeads).
// heads_split: src [B, T, H, Dh] -> out [B, H, T, Dh] (mergeHeads' backward).
// One invocation per (b, h, t), from a 3-D grid (x: t, y: h, z: b - z0), no integer division (which CPU
// adapters execute lane by lane); it moves the Dh values of one head row. `dh` counts elements of the
// entry point's array type: the *4 entry points (vec4f) serve Dh % 4 == 0 with dh = Dh / 4. Each pair is
// one `//#variants` block (lib/gpu/wgsl_variants.ts): `$T` is f32 or vec4f, `$4` nothing or `4`.

struct HeadParams {
  t: u32,     // tokens
  h: u32,     // heads
  dh: u32,    // head dim, in array elements (f32 or vec4f)
  z0: u32,    // batch offset of this dispatch (dispatches are split at 65535 in z)
}

override HWG: u32 = 64u;

//#variants f32 vec4
@group(0) @binding(0) var<uniform> sp$4: HeadParams;
@group(0) @binding(1) var<storage, read> sqkv$4: array<$T>;
@group(0) @binding(2) var<storage, read_write> sq$4: array<$T>;
@group(0) @binding(3) var<storage, read_write> sk$4: array<$T>;
@group(0) @binding(4) var<storage, read_write> sv$4: array<$T>;

@compute @workgroup_size(HWG)
fn split_qkv$4(@builtin(global_invocation_id) g: vec3u) {
  let t = g.x;
  if (t >= sp$4.t) { return; }
  let b = g.z + sp$4.z0;
  let dm = sp$4.h * sp$4.dh;
  let src = (b * sp$4.t + t) * 3u * dm + g.y * sp$4.dh;
  let dst = ((b * sp$4.h + g.y) * sp$4.t + t) * sp$4.dh;
  for (var d = 0u; d < sp$4.dh; d++) {
    sq$4[dst + d] = sqkv$4[src + d];
    sk$4[dst + d] = sqkv$4[src + dm + d];
    sv$4[dst + d] = sqkv$4[src + 2u * dm + d];
  }
}
//#end

// The adjoint of split_qkv: qkv [B, T, 3·H·Dh] from q, k, v [B, H, T, Dh] (one dispatch, no zeros).
//#variants f32 vec4
@group(0) @binding(0) var<uniform> jp$4: HeadParams;
@group(0) @binding(1) var<storage, read> jq$4: array<$T>;
@group(0) @binding(2) var<storage, read> jk$4: array<$T>;
@group(0) @binding(3) var<storage, read> jv$4: array<$T>;
@group(0) @binding(4) var<storage, read_write> jqkv$4: array<$T>;

@compute @workgroup_size(HWG)
fn join_qkv$4(@builtin(global_invocation_id) g: vec3u) {
  let t = g.x;
  if (t >= jp$4.t) { return; }
  let b = g.z + jp$4.z0;
  let dm = jp$4.h * jp$4.dh;
  let dst = (b * jp$4.t + t) * 3u * dm + g.y * jp$4.dh;
  let src = ((b * jp$4.h + g.y) * jp$4.t + t) * jp$4.dh;
  for (var d = 0u; d < jp$4.dh; d++) {
    jqkv$4[dst + d] = jq$4[src + d];
    jqkv$4[dst + dm + d] = jk$4[src + d];
    jqkv$4[dst + 2u * dm + d] = jv$4[src + d];
  }
}
//#end

//#variants f32 vec4
@group(0) @binding(0) var<uniform> mp$4: HeadParams;
@group(0) @binding(1) var<storage, read> msrc$4: array<$T>;
@group(0) @binding(2) var<storage, read_write> mout$4: array<$T>;

@compute @workgroup_size(HWG)
fn heads_merge$4(@builtin(global_invocation_id) g: vec3u) {
  let t = g.x;
  if (t >= mp$4.t) { return; }
  let b = g.z + mp$4.z0;
  let src = ((b * mp$4.h + g.y) * mp$4.t + t) * mp$4.dh;
  let dst = (b * mp$4.t + t) * mp$4.h * mp$4.dh + g.y * mp$4.dh;
  for (var d = 0u; d < mp$4.dh; d++) { mout$4[dst + d] = msrc$4[src + d]; }
}
//#end

//#variants f32 vec4
@group(0) @binding(0) var<uniform> hp$4: HeadParams;
@group(0) @binding(1) var<storage, read> hsrc$4: array<$T>;
@group(0) @binding(2) var<storage, read_write> hout$4: array<$T>;

@compute @workgroup_size(HWG)
fn heads_split$4(@builtin(global_invocation_id) g: vec3u) {
  let t = g.x;
  if (t >= hp$4.t) { return; }
  let b = g.z + hp$4.z0;
  let src = (b * hp$4.t + t) * hp$4.h * hp$4.dh + g.y * hp$4.dh;
  let dst = ((b * hp$4.h + g.y) * hp$4.t + t) * hp$4.dh;
  for (var d = 0u; d < hp$4.dh; d++) { hout$4[dst + d] = hsrc$4[src + d]; }
}
//#end
