// Layout ops: strided gathers and scatters (permute, transpose, narrow, concat, split, flip, patchify,
// unpatchify and their backward passes), row gathers with a deterministic scatter-add backward (a bitonic
// sort of (index, position) keys, then one ordered segment sum per output element; no atomics), and a
// select on a u32 mask.
//
// Data moves as u32 bits, so every dtype is copied exactly. Strided addressing: up to 8 dims; source (or
// destination) offset = base + sum_k coord_k * stride_k in wrapping u32 arithmetic, so negative strides
// (flip) are passed as their two's complement.
// Linear index of an invocation: gid.x + gid.y * num_workgroups.x * WG (2-D grids for large tensors).

struct StridedParams {
  n: u32,
  base: u32,
  _pad0: u32,
  _pad1: u32,
  shape: array<vec4u, 2>,
  str: array<vec4u, 2>,
}

override WG: u32 = 256u;

fn lin(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

fn dim(v: array<vec4u, 2>, d: u32) -> u32 {
  return v[d / 4u][d % 4u];
}

// The number of dims the strided kernels walk, as a pipeline constant: loops with a constant trip count
// are unrolled and index the params with constants (a loop bound read from the uniform costs ~8x on
// llvmpipe). The caller collapses dims first, so few pipelines exist.
override NDIM: u32 = 1u;

// The walked dims 1..7 as pipeline constants (0: read them from the params). Large walks are specialised
// to their shape (lib/tensor/ops/layout.ts): after unrolling, `rem % s` and `rem / s` then divide by
// constants, a vectorised multiply and shift, where a division by a uniform is scalarised per lane on
// llvmpipe (a permute of the DiT's qkv: ~1.25x faster).
override GS1: u32 = 0u;
override GS2: u32 = 0u;
override GS3: u32 = 0u;
override GS4: u32 = 0u;
override GS5: u32 = 0u;
override GS6: u32 = 0u;
override GS7: u32 = 0u;

fn shape_dim(shape: array<vec4u, 2>, d: u32) -> u32 {
  var c = 0u;
  switch d {
    case 1u: { c = GS1; }
    case 2u: { c = GS2; }
    case 3u: { c = GS3; }
    case 4u: { c = GS4; }
    case 5u: { c = GS5; }
    case 6u: { c = GS6; }
    case 7u: { c = GS7; }
    default: {}
  }
  return select(dim(shape, d), c, c != 0u);
}

// The outermost coordinate is what remains after the inner dims (i < n), so it needs no division.
fn strided_offset(i: u32, base: u32, shape: array<vec4u, 2>, str: array<vec4u, 2>) -> u32 {
  var rem = i;
  var off = base;
  for (var k = 1u; k < NDIM; k++) {
    let d = NDIM - k;
    let s = shape_dim(shape, d);
    off += (rem % s) * dim(str, d);
    rem = rem / s;
  }
  if (NDIM > 0u) {
    off += rem * dim(str, 0u);
  }
  return off;
}

// --- out[i] = x[strided(i)]: out contiguous in `shape` -------------------------------------------
@group(0) @binding(0) var<uniform> gp: StridedParams;
@group(0) @binding(1) var<storage, read> g_x: array<u32>;
@group(0) @binding(2) var<storage, read_write> g_out: array<u32>;

@compute @workgroup_size(WG)
fn gather_strided(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= gp.n) { return; }
  g_out[i] = g_x[strided_offset(i, gp.base, gp.shape, gp.str)];
}

// --- out[strided(i)] = x[i]: x contiguous in `shape` (the adjoint of gather_strided) -------------
@group(0) @binding(0) var<uniform> sp: StridedParams;
@group(0) @binding(1) var<storage, read> s_x: array<u32>;
@group(0) @binding(2) var<storage, read_write> s_out: array<u32>;

@compute @workgroup_size(WG)
fn scatter_strided(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= sp.n) { return; }
  s_out[strided_offset(i, sp.base, sp.shape, sp.str)] = s_x[i];
}

// --- rows: out[m, c] = x[idx[m], c] (0 where idx[m] >= rows) ------------------------------------
struct RowsParams {
  n: u32,     // M * D
  d: u32,     // row width
  rows: u32,  // N
  m: u32,     // number of indices
}

@group(0) @binding(0) var<uniform> rp: RowsParams;
@group(0) @binding(1) var<storage, read> r_x: array<u32>;
@group(0) @binding(2) var<storage, read> r_idx: array<u32>;
@group(0) @binding(3) var<storage, read_write> r_out: array<u32>;

@compute @workgroup_size(WG)
fn gather_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= rp.n) { return; }
  let m = i / rp.d;
  let c = i - m * rp.d;
  let r = r_idx[m];
  r_out[i] = select(0u, r_x[r * rp.d + c], r < rp.rows);
}

// --- bitonic sort of keys (idx[m], m), padded with (~0, ~0) to a power of two >= 2 * WG ------------
struct SortParams {
  n: u32,  // padded length (power of two)
  m: u32,  // real keys
  k: u32,  // bitonic stage
  j: u32,  // step within the stage (sort_global)
}

@group(0) @binding(0) var<uniform> kp: SortParams;
@group(0) @binding(1) var<storage, read> k_idx: array<u32>;
@group(0) @binding(2) var<storage, read_write> k_keys: array<vec2u>;

@compute @workgroup_size(WG)
fn sort_init(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= kp.n) { return; }
  if (i < kp.m) {
    k_keys[i] = vec2u(k_idx[i], i);
  } else {
    k_keys[i] = vec2u(0xFFFFFFFFu, 0xFFFFFFFFu);
  }
}

fn key_greater(a: vec2u, b: vec2u) -> bool {
  return a.x > b.x || (a.x == b.x && a.y > b.y);
}

var<workgroup> tile: array<vec2u, 2u * WG>;

@group(0) @binding(0) var<uniform> lp: SortParams;
@group(0) @binding(1) var<storage, read_write> l_keys: array<vec2u>;

// Bitonic steps with j <= WG inside one block of 2 * WG keys in workgroup memory: every stage
// k = 2 .. 2 WG when lp.k == 0 (sorts each block into alternating runs), else the tail j = WG .. 1 of
// stage lp.k.
@compute @workgroup_size(WG)
fn sort_local(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_index) lid: u32,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let base = (wid.x + wid.y * nwg.x) * 2u * WG;
  let inside = base < lp.n;
  if (inside) {
    tile[lid] = l_keys[base + lid];
    tile[lid + WG] = l_keys[base + lid + WG];
  }
  workgroupBarrier();
  var k0 = 2u;
  var k1 = 2u * WG;
  if (lp.k != 0u) {
    k0 = lp.k;
    k1 = lp.k;
  }
  for (var k = k0; k <= k1; k = k * 2u) {
    for (var j = min(k / 2u, WG); j > 0u; j = j / 2u) {
      let i = 2u * j * (lid / j) + (lid % j);
      let asc = ((base + i) & k) == 0u;
      let a = tile[i];
      let b = tile[i + j];
      if (key_greater(a, b) == asc) {
        tile[i] = b;
        tile[i + j] = a;
      }
      workgroupBarrier();
    }
  }
  if (inside) {
    l_keys[base + lid] = tile[lid];
    l_keys[base + lid + WG] = tile[lid + WG];
  }
}

// One bitonic step (k, j) with j > WG across the whole array: one invocation per pair.
@compute @workgroup_size(WG)
fn sort_global(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = lin(gid, nwg);
  if (t >= lp.n / 2u) { return; }
  let j = lp.j;
  let i = 2u * j * (t / j) + (t % j);
  let asc = (i & lp.k) == 0u;
  let a = l_keys[i];
  let b = l_keys[i + j];
  if (key_greater(a, b) == asc) {
    l_keys[i] = b;
    l_keys[i + j] = a;
  }
}

// --- gather_rows backward: dx[r, c] = sum of g[m, c] over idx[m] == r, in increasing m ------------
// keys: the sorted (idx, m) pairs; a binary search finds the segment of r.
@group(0) @binding(0) var<uniform> bp: RowsParams; // n = N * D, d = D, rows = N, m = M
@group(0) @binding(1) var<storage, read> b_g: array<f32>;
@group(0) @binding(2) var<storage, read> b_keys: array<vec2u>;
@group(0) @binding(3) var<storage, read_write> b_dx: array<f32>;

@compute @workgroup_size(WG)
fn gather_rows_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= bp.n) { return; }
  let r = i / bp.d;
  let c = i - r * bp.d;
  var lo = 0u;
  var hi = bp.m;
  while (lo < hi) {
    let mid = (lo + hi) / 2u;
    if (b_keys[mid].x < r) {
      lo = mid + 1u;
    } else {
      hi = mid;
    }
  }
  var acc = 0.0;
  for (var k = lo; k < bp.m; k++) {
    let key = b_keys[k];
    if (key.x != r) { break; }
    acc = acc + b_g[key.y * bp.d + c];
  }
  b_dx[i] = acc;
}

// --- where: out = mask != 0 ? a : b, with broadcasting ------------------------------------------
struct WhereParams {
  n: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
  shape: array<vec4u, 2>,
  astr: array<vec4u, 2>,
  bstr: array<vec4u, 2>,
  mstr: array<vec4u, 2>,
}

@group(0) @binding(0) var<uniform> wp: WhereParams;
@group(0) @binding(1) var<storage, read> w_mask: array<u32>;
@group(0) @binding(2) var<storage, read> w_a: array<u32>;
@group(0) @binding(3) var<storage, read> w_b: array<u32>;
@group(0) @binding(4) var<storage, read_write> w_out: array<u32>;

@compute @workgroup_size(WG)
fn where_select(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= wp.n) { return; }
  var rem = i;
  var ao = 0u;
  var bo = 0u;
  var mo = 0u;
  for (var k = 1u; k < NDIM; k++) {
    let d = NDIM - k;
    let s = dim(wp.shape, d);
    let c = rem % s;
    rem = rem / s;
    ao += c * dim(wp.astr, d);
    bo += c * dim(wp.bstr, d);
    mo += c * dim(wp.mstr, d);
  }
  if (NDIM > 0u) {
    ao += rem * dim(wp.astr, 0u);
    bo += rem * dim(wp.bstr, 0u);
    mo += rem * dim(wp.mstr, 0u);
  }
  w_out[i] = select(w_b[bo], w_a[ao], w_mask[mo] != 0u);
}

// where backward: out = g where (mask != 0) == (SIDE == 0), else 0 (full output shape; the caller sums
// it down to the operand's shape). Uses shape and mstr of WhereParams.
override SIDE: u32 = 0u;

@group(0) @binding(0) var<uniform> wbp: WhereParams;
@group(0) @binding(1) var<storage, read> wb_mask: array<u32>;
@group(0) @binding(2) var<storage, read> wb_g: array<f32>;
@group(0) @binding(3) var<storage, read_write> wb_out: array<f32>;

@compute @workgroup_size(WG)
fn where_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= wbp.n) { return; }
  var rem = i;
  var mo = 0u;
  for (var k = 1u; k < NDIM; k++) {
    let d = NDIM - k;
    let s = dim(wbp.shape, d);
    mo += (rem % s) * dim(wbp.mstr, d);
    rem = rem / s;
  }
  if (NDIM > 0u) {
    mo += rem * dim(wbp.mstr, 0u);
  }
  let take = (wb_mask[mo] != 0u) == (SIDE == 0u);
  wb_out[i] = select(0.0, wb_g[i], take);
}

// --- split into up to 6 parts in one dispatch (forward), and the parts joined back (its backward) --------
// x viewed as [outer, size, inner]; part k is [outer, sizes[k], inner] from starts[k] along the middle dim.
// One invocation per element of a part: the grid's z is the part (uniform per workgroup), x and y its
// elements, so each part's side is contiguous and the other a run of sizes[k]·inner per outer index.
// Unused part slots are bound to distinct dummy buffers, never touched.

struct SplitParams {
  outer: u32,
  size: u32,
  inner: u32,
  parts: u32,
  starts: vec4u,  // starts[0..3]
  starts2: vec4u, // starts[4..5], then size (as a sentinel end), unused
}

@group(0) @binding(0) var<uniform> spl: SplitParams;
@group(0) @binding(1) var<storage, read_write> sp_x: array<u32>;
@group(0) @binding(2) var<storage, read_write> sp_0: array<u32>;
@group(0) @binding(3) var<storage, read_write> sp_1: array<u32>;
@group(0) @binding(4) var<storage, read_write> sp_2: array<u32>;
@group(0) @binding(5) var<storage, read_write> sp_3: array<u32>;
@group(0) @binding(6) var<storage, read_write> sp_4: array<u32>;
@group(0) @binding(7) var<storage, read_write> sp_5: array<u32>;

fn split_start(k: u32) -> u32 {
  if (k < 4u) { return spl.starts[k]; }
  if (k < 6u) { return spl.starts2[k - 4u]; }
  return spl.size;
}

// JOIN = false: parts[k] = x[...] (split); JOIN = true: x[...] = parts[k] (concat of the parts).
override JOIN: bool = false;
// sizes[k]·inner when every part has the same size, as a pipeline constant for large splits (0: computed
// from the params): the division by it is then by a constant (see GS1 above).
override SPART: u32 = 0u;

@compute @workgroup_size(WG)
fn split_multi(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  let k = gid.z;
  let s0 = split_start(k);
  let m = select((split_start(k + 1u) - s0) * spl.inner, SPART, SPART != 0u); // elements per outer index
  if (i >= spl.outer * m) { return; }
  let o = i / m;
  let xi = o * spl.size * spl.inner + s0 * spl.inner + (i - o * m);
  switch k {
    case 0u: { if (JOIN) { sp_x[xi] = sp_0[i]; } else { sp_0[i] = sp_x[xi]; } }
    case 1u: { if (JOIN) { sp_x[xi] = sp_1[i]; } else { sp_1[i] = sp_x[xi]; } }
    case 2u: { if (JOIN) { sp_x[xi] = sp_2[i]; } else { sp_2[i] = sp_x[xi]; } }
    case 3u: { if (JOIN) { sp_x[xi] = sp_3[i]; } else { sp_3[i] = sp_x[xi]; } }
    case 4u: { if (JOIN) { sp_x[xi] = sp_4[i]; } else { sp_4[i] = sp_x[xi]; } }
    default: { if (JOIN) { sp_x[xi] = sp_5[i]; } else { sp_5[i] = sp_x[xi]; } }
  }
}

// The same split on vec4u (each part's run sizes[k]·inner and every start·inner a multiple of 4): a
// quarter of the invocations, each moving 16 bytes (llvmpipe loads and stores per lane, so a scalar copy
// costs about as much per element as this one per vec4). `spl4` is in vec4 units (inner / 4, SPART / 4).
@group(0) @binding(0) var<uniform> spl4: SplitParams;
@group(0) @binding(1) var<storage, read_write> sq_x: array<vec4u>;
@group(0) @binding(2) var<storage, read_write> sq_0: array<vec4u>;
@group(0) @binding(3) var<storage, read_write> sq_1: array<vec4u>;
@group(0) @binding(4) var<storage, read_write> sq_2: array<vec4u>;
@group(0) @binding(5) var<storage, read_write> sq_3: array<vec4u>;
@group(0) @binding(6) var<storage, read_write> sq_4: array<vec4u>;
@group(0) @binding(7) var<storage, read_write> sq_5: array<vec4u>;

fn split_start4(k: u32) -> u32 {
  if (k < 4u) { return spl4.starts[k]; }
  if (k < 6u) { return spl4.starts2[k - 4u]; }
  return spl4.size;
}

@compute @workgroup_size(WG)
fn split_multi4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  let k = gid.z;
  let s0 = split_start4(k);
  let m = select((split_start4(k + 1u) - s0) * spl4.inner, SPART, SPART != 0u);
  if (i >= spl4.outer * m) { return; }
  let o = i / m;
  let xi = o * spl4.size * spl4.inner + s0 * spl4.inner + (i - o * m);
  switch k {
    case 0u: { if (JOIN) { sq_x[xi] = sq_0[i]; } else { sq_0[i] = sq_x[xi]; } }
    case 1u: { if (JOIN) { sq_x[xi] = sq_1[i]; } else { sq_1[i] = sq_x[xi]; } }
    case 2u: { if (JOIN) { sq_x[xi] = sq_2[i]; } else { sq_2[i] = sq_x[xi]; } }
    case 3u: { if (JOIN) { sq_x[xi] = sq_3[i]; } else { sq_3[i] = sq_x[xi]; } }
    case 4u: { if (JOIN) { sq_x[xi] = sq_4[i]; } else { sq_4[i] = sq_x[xi]; } }
    default: { if (JOIN) { sq_x[xi] = sq_5[i]; } else { sq_5[i] = sq_x[xi]; } }
  }
}
