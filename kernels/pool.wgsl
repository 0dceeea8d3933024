// 2-D pooling (NCHW, like torch.nn.functional.max_pool2d / avg_pool2d, ceil_mode=False) and ReLU.
//
// max pool: `maxpool_forward` writes the window maximum and the flat in-plane index (y·W + x) of the FIRST
// maximum in row-major window order (a later equal value does not replace it; a NaN does, as in torch's CPU
// kernel); taps in the padding are −∞, i.e. skipped. `maxpool_backward` is a gather: every input pixel sums,
// in a fixed (oy, ox) order, the gradients of the outputs whose saved index is that pixel. No atomics.
// avg pool: the divisor is kh·kw (count_include_pad = true) or the number of taps inside the input
// (count_include_pad = false); `avgpool_backward` gathers g / divisor over the windows covering a pixel.
// relu: y = max(x, 0); dx = g where x > 0, else 0.
//
// Grids are 2-D: idx = gid.x + gid.y · (nwg.x · WG).

struct PoolParams {
  total: u32, // elements the dispatch covers
  h: u32,     // input height
  w: u32,     // input width
  ho: u32,    // output height
  wo: u32,    // output width
  kh: u32,    // window height
  kw: u32,    // window width
  sh: u32,    // stride (rows)
  sw: u32,    // stride (columns)
  ph: u32,    // padding (rows, both sides)
  pw: u32,    // padding (columns, both sides)
  include_pad: u32, // avg pool: 1 = divide by kh·kw, 0 = by the taps inside the input
}

override WG: u32 = 256u;

fn lin(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

// The first and one-past-last output index whose window (stride s, size k, padding p) covers input
// position y, clamped to [0, n).
fn cover(y: u32, k: u32, s: u32, p: u32, n: u32) -> vec2u {
  let yp = y + p; // position in the padded input
  var lo = 0u;
  if (yp + 1u > k) { lo = (yp + 1u - k + s - 1u) / s; }
  let hi = min(yp / s + 1u, n);
  return vec2u(lo, hi);
}

// Number of window taps of output (oy, ox) that lie inside the input (avg pool divisor without padding).
fn inside(oy: u32, ox: u32, p: PoolParams) -> f32 {
  let y0 = i32(oy * p.sh) - i32(p.ph);
  let x0 = i32(ox * p.sw) - i32(p.pw);
  let y1 = min(y0 + i32(p.kh), i32(p.h));
  let x1 = min(x0 + i32(p.kw), i32(p.w));
  return f32((y1 - max(y0, 0)) * (x1 - max(x0, 0)));
}

// --- max pool forward: out[nc, oy, ox] = max over the window; idx = in-plane index of the first max ---------
@group(0) @binding(0) var<uniform> mp: PoolParams;
@group(0) @binding(1) var<storage, read> mx: array<f32>;
@group(0) @binding(2) var<storage, read_write> mout: array<f32>;
@group(0) @binding(3) var<storage, read_write> midx: array<u32>;

@compute @workgroup_size(WG)
fn maxpool_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = lin(gid, nwg);
  if (idx >= mp.total) { return; }
  let ox = idx % mp.wo;
  let t = idx / mp.wo;
  let oy = t % mp.ho;
  let nc = t / mp.ho;
  let base = nc * mp.h * mp.w;
  let y0 = i32(oy * mp.sh) - i32(mp.ph);
  let x0 = i32(ox * mp.sw) - i32(mp.pw);
  var best = 0.0;
  var bi = 0xffffffffu;
  for (var i = 0u; i < mp.kh; i++) {
    let y = y0 + i32(i);
    if (y < 0 || y >= i32(mp.h)) { continue; }
    for (var j = 0u; j < mp.kw; j++) {
      let x = x0 + i32(j);
      if (x < 0 || x >= i32(mp.w)) { continue; }
      let k = u32(y) * mp.w + u32(x);
      let v = mx[base + k];
      if (bi == 0xffffffffu || v > best || v != v) {
        best = v;
        bi = k;
      }
    }
  }
  mout[idx] = best;
  midx[idx] = bi;
}

// --- max pool backward (gather): dx[nc, y, x] = Σ over covering windows whose argmax is (y, x) of g ----------
@group(0) @binding(0) var<uniform> mbp: PoolParams;
@group(0) @binding(1) var<storage, read> mbg: array<f32>;
@group(0) @binding(2) var<storage, read> mbidx: array<u32>;
@group(0) @binding(3) var<storage, read_write> mbdx: array<f32>;

@compute @workgroup_size(WG)
fn maxpool_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = lin(gid, nwg);
  if (idx >= mbp.total) { return; }
  let xw = idx % mbp.w;
  let t = idx / mbp.w;
  let yh = t % mbp.h;
  let nc = t / mbp.h;
  let k = yh * mbp.w + xw;
  let ry = cover(yh, mbp.kh, mbp.sh, mbp.ph, mbp.ho);
  let rx = cover(xw, mbp.kw, mbp.sw, mbp.pw, mbp.wo);
  let obase = nc * mbp.ho * mbp.wo;
  var s = 0.0;
  for (var oy = ry.x; oy < ry.y; oy++) {
    for (var ox = rx.x; ox < rx.y; ox++) {
      let o = obase + oy * mbp.wo + ox;
      if (mbidx[o] == k) { s += mbg[o]; }
    }
  }
  mbdx[idx] = s;
}

// --- avg pool forward ------------------------------------------------------------------------------------
@group(0) @binding(0) var<uniform> ap: PoolParams;
@group(0) @binding(1) var<storage, read> ax: array<f32>;
@group(0) @binding(2) var<storage, read_write> aout: array<f32>;

@compute @workgroup_size(WG)
fn avgpool_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = lin(gid, nwg);
  if (idx >= ap.total) { return; }
  let ox = idx % ap.wo;
  let t = idx / ap.wo;
  let oy = t % ap.ho;
  let nc = t / ap.ho;
  let base = nc * ap.h * ap.w;
  let y0 = i32(oy * ap.sh) - i32(ap.ph);
  let x0 = i32(ox * ap.sw) - i32(ap.pw);
  var s = 0.0;
  for (var i = 0u; i < ap.kh; i++) {
    let y = y0 + i32(i);
    if (y < 0 || y >= i32(ap.h)) { continue; }
    for (var j = 0u; j < ap.kw; j++) {
      let x = x0 + i32(j);
      if (x < 0 || x >= i32(ap.w)) { continue; }
      s += ax[base + u32(y) * ap.w + u32(x)];
    }
  }
  var div = f32(ap.kh * ap.kw);
  if (ap.include_pad == 0u) { div = inside(oy, ox, ap); }
  aout[idx] = s / div;
}

// --- avg pool backward (gather): dx[nc, y, x] = Σ over covering windows of g / divisor ----------------------
@group(0) @binding(0) var<uniform> abp: PoolParams;
@group(0) @binding(1) var<storage, read> abg: array<f32>;
@group(0) @binding(2) var<storage, read_write> abdx: array<f32>;

@compute @workgroup_size(WG)
fn avgpool_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = lin(gid, nwg);
  if (idx >= abp.total) { return; }
  let xw = idx % abp.w;
  let t = idx / abp.w;
  let yh = t % abp.h;
  let nc = t / abp.h;
  let ry = cover(yh, abp.kh, abp.sh, abp.ph, abp.ho);
  let rx = cover(xw, abp.kw, abp.sw, abp.pw, abp.wo);
  let obase = nc * abp.ho * abp.wo;
  var s = 0.0;
  for (var oy = ry.x; oy < ry.y; oy++) {
    for (var ox = rx.x; ox < rx.y; ox++) {
      var div = f32(abp.kh * abp.kw);
      if (abp.include_pad == 0u) { div = inside(oy, ox, abp); }
      s += abg[obase + oy * abp.wo + ox] / div;
    }
  }
  abdx[idx] = s;
}

// --- relu ------------------------------------------------------------------------------------------------
struct EwParams {
  n: u32,
  _p0: u32,
  _p1: u32,
  _p2: u32,
}

@group(0) @binding(0) var<uniform> rp: EwParams;
@group(0) @binding(1) var<storage, read> rx_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> ry_out: array<f32>;

@compute @workgroup_size(WG)
fn relu_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= rp.n) { return; }
  ry_out[i] = max(rx_in[i], 0.0);
}

@group(0) @binding(0) var<uniform> rbp: EwParams;
@group(0) @binding(1) var<storage, read> rbx: array<f32>;
@group(0) @binding(2) var<storage, read> rbg: array<f32>;
@group(0) @binding(3) var<storage, read_write> rbdx: array<f32>;

@compute @workgroup_size(WG)
fn relu_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= rbp.n) { return; }
  rbdx[i] = select(0.0, rbg[i], rbx[i] > 0.0);
}
