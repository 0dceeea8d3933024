// Bilinear resizing of NCHW images, like torch.nn.functional.interpolate(x, size=(ho, wo), mode="bilinear",
// align_corners=False).
//
// The taps and weights come from the host (lib/tensor/ops/resize.ts computes them as ATen's CPU kernel does,
// with float64 source coordinates, which WGSL cannot): for every output row oy the first tap i0 = taps[oy]
// (the second is i0 + 1 unless i0 is the last row) and λ1 = lam[oy], λ0 = 1 − λ1; the columns follow at
// offset ho in both tables. The output is
//   y = λ0ʸ (λ0ˣ x[i0, j0] + λ1ˣ x[i0, j1]) + λ1ʸ (λ0ˣ x[i1, j0] + λ1ˣ x[i1, j1]).
// `resize_bilinear_backward` is the adjoint as a gather: every input pixel (y, x) sums, in a fixed order,
// w(oy) · w(ox) · g[oy, ox] over the outputs that read it, w(oy) = [i0(oy) = y] λ0 + [i1(oy) = y] λ1. The
// first output row that can read input row y (the first with i0 ≥ y − 1) is taps[ho + wo + y], the first
// column taps[ho + wo + h + x]; i0 is non-decreasing, so the scan stops at the first i0 > y.
// No atomics: deterministic.
//
// Grids are 2-D: idx = gid.x + gid.y · (nwg.x · WG).

struct ResizeParams {
  total: u32, // elements the dispatch covers
  h: u32,     // input height
  w: u32,     // input width
  ho: u32,    // output height
  wo: u32,    // output width
  _p0: u32,
  _p1: u32,
  _p2: u32,
}

override WG: u32 = 256u;

fn lin(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

// --- forward: y[nc, oy, ox] from the four taps of x[nc] -----------------------------------------------------
@group(0) @binding(0) var<uniform> fp: ResizeParams;
@group(0) @binding(1) var<storage, read> fx: array<f32>;
@group(0) @binding(2) var<storage, read> ftaps: array<u32>;
@group(0) @binding(3) var<storage, read> flam: array<f32>;
@group(0) @binding(4) var<storage, read_write> fy: array<f32>;

@compute @workgroup_size(WG)
fn resize_bilinear_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = lin(gid, nwg);
  if (idx >= fp.total) { return; }
  let ox = idx % fp.wo;
  let t = idx / fp.wo;
  let oy = t % fp.ho;
  let nc = t / fp.ho;
  let y0 = ftaps[oy];
  var y1 = y0;
  if (y0 < fp.h - 1u) { y1 = y0 + 1u; }
  let x0 = ftaps[fp.ho + ox];
  var x1 = x0;
  if (x0 < fp.w - 1u) { x1 = x0 + 1u; }
  let ly1 = flam[oy];
  let lx1 = flam[fp.ho + ox];
  let ly0 = 1.0 - ly1;
  let lx0 = 1.0 - lx1;
  let base = nc * fp.h * fp.w;
  let r0 = base + y0 * fp.w;
  let r1 = base + y1 * fp.w;
  fy[idx] = ly0 * (lx0 * fx[r0 + x0] + lx1 * fx[r0 + x1]) + ly1 * (lx0 * fx[r1 + x0] + lx1 * fx[r1 + x1]);
}

// --- backward (gather): dx[nc, y, x] = Σ_oy Σ_ox w(oy, y) w(ox, x) g[nc, oy, ox] -----------------------------
@group(0) @binding(0) var<uniform> bp: ResizeParams;
@group(0) @binding(1) var<storage, read> bg: array<f32>;
@group(0) @binding(2) var<storage, read> btaps: array<u32>;
@group(0) @binding(3) var<storage, read> blam: array<f32>;
@group(0) @binding(4) var<storage, read_write> bdx: array<f32>;

// The weight with which output index o (table offset `off`, `n` input pixels) reads input index y.
fn tap_weight(o: u32, off: u32, y: u32, n: u32) -> f32 {
  let i0 = btaps[off + o];
  var i1 = i0;
  if (i0 < n - 1u) { i1 = i0 + 1u; }
  let l1 = blam[off + o];
  var wt = 0.0;
  if (i0 == y) { wt += 1.0 - l1; }
  if (i1 == y) { wt += l1; }
  return wt;
}

@compute @workgroup_size(WG)
fn resize_bilinear_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = lin(gid, nwg);
  if (idx >= bp.total) { return; }
  let xw = idx % bp.w;
  let t = idx / bp.w;
  let yh = t % bp.h;
  let nc = t / bp.h;
  let rev = bp.ho + bp.wo;
  let oy0 = btaps[rev + yh];
  let ox0 = btaps[rev + bp.h + xw];
  let gbase = nc * bp.ho * bp.wo;
  var s = 0.0;
  for (var oy = oy0; oy < bp.ho; oy++) {
    if (btaps[oy] > yh) { break; }
    let wy = tap_weight(oy, 0u, yh, bp.h);
    if (wy == 0.0) { continue; }
    var row = 0.0;
    for (var ox = ox0; ox < bp.wo; ox++) {
      if (btaps[bp.ho + ox] > xw) { break; }
      row += tap_weight(ox, bp.ho, xw, bp.w) * bg[gbase + oy * bp.wo + ox];
    }
    s += wy * row;
  }
  bdx[idx] = s;
}
