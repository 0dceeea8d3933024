// Embedding lookup out[i, :] = table[idx[i], :] and its backward, a deterministic scatter-add without
// atomics.
//
// Backward in two kernels:
//  1. embed_links: one invocation per table row v scans idx[0 .. N-1] in order and threads the positions
//     i with idx[i] == v into a linked list: links[v] = first such i (the head), links[V + i] = the next
//     position after i with the same index, NONE at the end. Each position belongs to exactly one row, so
//     every link is written by exactly one invocation. Cost V·N compares of u32 (cheap: N is a batch of
//     labels), independent of D.
//  2. embed_backward: one invocation per (v, d) walks row v's list and adds g[i, d] in increasing i, the
//     same order as a sequential loop over i: bit-identical on every run. Cost N·D + V·D.
// Indices outside [0, V) give NaN rows in the forward (the debug mode names the op) and no gradient.

struct Params {
  n: u32, // number of indices
  d: u32, // embedding width
  v: u32, // table rows
  _pad: u32,
}

override WG: u32 = 256u;

const NONE: u32 = 0xffffffffu;

fn lin(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

// --- forward ---------------------------------------------------------------------------------------------
@group(0) @binding(0) var<uniform> fp: Params;
@group(0) @binding(1) var<storage, read> ftable: array<f32>;
@group(0) @binding(2) var<storage, read> fidx: array<u32>;
@group(0) @binding(3) var<storage, read_write> fout: array<f32>;

@compute @workgroup_size(WG)
fn embed_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= fp.n * fp.d) { return; }
  let row = fidx[i / fp.d];
  var val = bitcast<f32>(0x7fc00000u);
  if (row < fp.v) { val = ftable[row * fp.d + i % fp.d]; }
  fout[i] = val;
}

// --- backward 1: per-row linked lists of positions ---------------------------------------------------------
@group(0) @binding(0) var<uniform> lp: Params;
@group(0) @binding(1) var<storage, read> lidx: array<u32>;
@group(0) @binding(2) var<storage, read_write> links: array<u32>;

@compute @workgroup_size(WG)
fn embed_links(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let v = lin(gid, nwg);
  if (v >= lp.v) { return; }
  var prev = NONE;
  for (var i = 0u; i < lp.n; i++) {
    if (lidx[i] == v) {
      if (prev == NONE) { links[v] = i; } else { links[lp.v + prev] = i; }
      prev = i;
    }
  }
  if (prev == NONE) { links[v] = NONE; } else { links[lp.v + prev] = NONE; }
}

// --- backward 2: dtable[v, d] = sum over the list of v of g[i, d] -------------------------------------------
@group(0) @binding(0) var<uniform> bp: Params;
@group(0) @binding(1) var<storage, read> blinks: array<u32>;
@group(0) @binding(2) var<storage, read> bg: array<f32>;
@group(0) @binding(3) var<storage, read_write> bdtable: array<f32>;

@compute @workgroup_size(WG)
fn embed_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let k = lin(gid, nwg);
  if (k >= bp.v * bp.d) { return; }
  let v = k / bp.d;
  let dd = k % bp.d;
  var acc = 0.0;
  var i = blinks[v];
  // At most N steps, so that a corrupt list cannot hang the GPU.
  for (var step = 0u; step < bp.n && i != NONE; step++) {
    acc += bg[i * bp.d + dd];
    i = blinks[bp.v + i];
  }
  bdtable[k] = acc;
}
