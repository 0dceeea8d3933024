// 2-D convolution (NCHW) as im2col + matmul, and nearest-neighbour upsampling.
//
// conv2d: `im2col` lays the input patches out as cols [N, C·kh·kw, Ho·Wo] (row r = (c, i, j), column
// p = (oy, ox); taps outside the (possibly asymmetric) zero padding read 0), so that the convolution is
// the batched matmul W [O, C·kh·kw] · cols[n] (lib/tensor/ops/matmul.ts). Its adjoint `col2im` gathers,
// for every input pixel, the column entries of the taps that read it, in a fixed (i, j) order: no atomics,
// deterministic. `conv_direct` is the implicit-GEMM alternative (patches read on the fly, a register tile
// of TO output channels × TP pixels per invocation); lib/tensor/ops/conv.ts picks one per shape.
//
// upsample: nearest-neighbour by an integer factor F (torch.nn.functional.interpolate(mode="nearest")),
// `upsample_forward` copies, `upsample_backward` sums each F×F block of the gradient in order.
//
// Elementwise kernels run on a 2-D grid: idx = gid.x + gid.y · (nwg.x · WG).

struct ConvParams {
  total: u32, // elements the dispatch covers
  c: u32,     // input channels
  h: u32,     // input height
  w: u32,     // input width
  ho: u32,    // output height
  wo: u32,    // output width
  kh: u32,    // kernel height
  kw: u32,    // kernel width
  sh: u32,    // stride (rows)
  sw: u32,    // stride (columns)
  pt: u32,    // zero padding at the top
  pl: u32,    // zero padding at the left
  o: u32,     // output channels (conv_direct)
  n: u32,     // batch (conv_direct)
  has_bias: u32,
  _pad: u32,
}

override WG: u32 = 256u;

fn lin(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

// --- im2col: cols[n, (c, i, j), (oy, ox)] = x[n, c, oy·sh − pt + i, ox·sw − pl + j] (0 outside) ----------
@group(0) @binding(0) var<uniform> ip: ConvParams;
@group(0) @binding(1) var<storage, read> ix: array<f32>;
@group(0) @binding(2) var<storage, read_write> icols: array<f32>;

@compute @workgroup_size(WG)
fn im2col(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = lin(gid, nwg);
  if (idx >= ip.total) { return; }
  let P = ip.ho * ip.wo;
  let KK = ip.kh * ip.kw;
  let p = idx % P;
  let t = idx / P;
  let r = t % (ip.c * KK);
  let n = t / (ip.c * KK);
  let c = r / KK;
  let k = r % KK;
  let i = k / ip.kw;
  let j = k % ip.kw;
  let oy = p / ip.wo;
  let ox = p % ip.wo;
  let y = i32(oy * ip.sh + i) - i32(ip.pt);
  let x = i32(ox * ip.sw + j) - i32(ip.pl);
  var v = 0.0;
  if (y >= 0 && y < i32(ip.h) && x >= 0 && x < i32(ip.w)) {
    v = ix[((n * ip.c + c) * ip.h + u32(y)) * ip.w + u32(x)];
  }
  icols[idx] = v;
}

// --- col2im (the adjoint): dx[n, c, y, x] = Σ over taps (i, j) reading (y, x) of dcols -------------------
@group(0) @binding(0) var<uniform> cp: ConvParams;
@group(0) @binding(1) var<storage, read> ccols: array<f32>;
@group(0) @binding(2) var<storage, read_write> cdx: array<f32>;

@compute @workgroup_size(WG)
fn col2im(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = lin(gid, nwg);
  if (idx >= cp.total) { return; }
  let xw = idx % cp.w;
  var t = idx / cp.w;
  let yh = t % cp.h;
  t = t / cp.h;
  let c = t % cp.c;
  let n = t / cp.c;
  let P = cp.ho * cp.wo;
  let KK = cp.kh * cp.kw;
  let base = (n * cp.c + c) * KK;
  var s = 0.0;
  for (var i = 0u; i < cp.kh; i++) {
    let ny = i32(yh + cp.pt) - i32(i);
    if (ny < 0 || ny % i32(cp.sh) != 0) { continue; }
    let oy = u32(ny) / cp.sh;
    if (oy >= cp.ho) { continue; }
    for (var j = 0u; j < cp.kw; j++) {
      let nx = i32(xw + cp.pl) - i32(j);
      if (nx < 0 || nx % i32(cp.sw) != 0) { continue; }
      let ox = u32(nx) / cp.sw;
      if (ox >= cp.wo) { continue; }
      s += ccols[(base + i * cp.kw + j) * P + oy * cp.wo + ox];
    }
  }
  cdx[idx] = s;
}

// --- conv_direct: implicit GEMM, out[n, o, p] = b[o] + Σ_(c, i, j) w[o, c, i, j] · x[n, c, tap(p, i, j)] ---
// One invocation computes TO output channels × TP consecutive output pixels of one image, accumulating
// over (c, i, j) in order; the patch values are read on the fly (no cols buffer). TO and TP size
// function-scope register arrays, which WGSL requires to have const sizes, so they are consts.
const TO: u32 = 4u;
const TP: u32 = 4u;

@group(0) @binding(0) var<uniform> dp: ConvParams;
@group(0) @binding(1) var<storage, read> dx_in: array<f32>;
@group(0) @binding(2) var<storage, read> dw: array<f32>;
@group(0) @binding(3) var<storage, read> db: array<f32>;
@group(0) @binding(4) var<storage, read_write> dout: array<f32>;

@compute @workgroup_size(WG)
fn conv_direct(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = lin(gid, nwg);
  if (idx >= dp.total) { return; }
  let P = dp.ho * dp.wo;
  let pb = (P + TP - 1u) / TP;
  let ob = (dp.o + TO - 1u) / TO;
  let pblk = idx % pb;
  let t = idx / pb;
  let oblk = t % ob;
  let n = t / ob;
  let o0 = oblk * TO;
  let p0 = pblk * TP;
  var acc: array<array<f32, TP>, TO>;
  var ys: array<i32, TP>;
  var xs: array<i32, TP>;
  for (var q = 0u; q < TP; q++) {
    let p = min(p0 + q, P - 1u);
    ys[q] = i32((p / dp.wo) * dp.sh) - i32(dp.pt);
    xs[q] = i32((p % dp.wo) * dp.sw) - i32(dp.pl);
    for (var a = 0u; a < TO; a++) { acc[a][q] = 0.0; }
  }
  let KK = dp.kh * dp.kw;
  let CKK = dp.c * KK;
  var xv: array<f32, TP>;
  for (var c = 0u; c < dp.c; c++) {
    let xbase = (n * dp.c + c) * dp.h;
    for (var i = 0u; i < dp.kh; i++) {
      for (var j = 0u; j < dp.kw; j++) {
        for (var q = 0u; q < TP; q++) {
          let y = ys[q] + i32(i);
          let x = xs[q] + i32(j);
          var v = 0.0;
          if (y >= 0 && y < i32(dp.h) && x >= 0 && x < i32(dp.w)) {
            v = dx_in[(xbase + u32(y)) * dp.w + u32(x)];
          }
          xv[q] = v;
        }
        let r = c * KK + i * dp.kw + j;
        for (var a = 0u; a < TO; a++) {
          let wv = dw[min(o0 + a, dp.o - 1u) * CKK + r];
          for (var q = 0u; q < TP; q++) { acc[a][q] = fma(wv, xv[q], acc[a][q]); }
        }
      }
    }
  }
  for (var a = 0u; a < TO; a++) {
    let o = o0 + a;
    if (o >= dp.o) { break; }
    var bias = 0.0;
    if (dp.has_bias != 0u) { bias = db[o]; }
    for (var q = 0u; q < TP; q++) {
      let p = p0 + q;
      if (p < P) { dout[(n * dp.o + o) * P + p] = acc[a][q] + bias; }
    }
  }
}

// --- bias over channels: y[n, o, p] = x[n, o, p] + b[o] (used after the im2col matmul) ------------------
@group(0) @binding(0) var<uniform> bp: ConvParams;
@group(0) @binding(1) var<storage, read> bx: array<f32>;
@group(0) @binding(2) var<storage, read> bb: array<f32>;
@group(0) @binding(3) var<storage, read_write> by: array<f32>;

@compute @workgroup_size(WG)
fn channel_bias(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = lin(gid, nwg);
  if (idx >= bp.total) { return; }
  let P = bp.ho * bp.wo;
  by[idx] = bx[idx] + bb[(idx / P) % bp.o];
}

// --- bias gradient: db[o] = Σ_n Σ_p g[n, o, p], one workgroup per channel, tree-reduced -----------------
var<workgroup> red: array<f32, WG>;

@group(0) @binding(0) var<uniform> gp: ConvParams;
@group(0) @binding(1) var<storage, read> gg: array<f32>;
@group(0) @binding(2) var<storage, read_write> gdb: array<f32>;

@compute @workgroup_size(WG)
fn channel_bias_backward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let o = wid.x + wid.y * nwg.x;
  let P = gp.ho * gp.wo;
  var s = 0.0;
  if (o < gp.o) {
    for (var n = 0u; n < gp.n; n++) {
      let base = (n * gp.o + o) * P;
      for (var p = lid; p < P; p += WG) { s += gg[base + p]; }
    }
  }
  red[lid] = s;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k = k / 2u) {
    if (lid < k) { red[lid] = red[lid] + red[lid + k]; }
    workgroupBarrier();
  }
  if (lid == 0u && o < gp.o) { gdb[o] = red[0]; }
}

// --- nearest upsampling by F: y[nc, oy, ox] = x[nc, oy / F, ox / F] ---------------------------------------
struct UpParams {
  total: u32, // elements the dispatch covers
  h: u32,     // input height
  w: u32,     // input width
  f: u32,     // factor
}

@group(0) @binding(0) var<uniform> up: UpParams;
@group(0) @binding(1) var<storage, read> ux: array<f32>;
@group(0) @binding(2) var<storage, read_write> uy: array<f32>;

@compute @workgroup_size(WG)
fn upsample_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = lin(gid, nwg);
  if (idx >= up.total) { return; }
  let W2 = up.w * up.f;
  let H2 = up.h * up.f;
  let ox = idx % W2;
  let t = idx / W2;
  let oy = t % H2;
  let nc = t / H2;
  uy[idx] = ux[(nc * up.h + oy / up.f) * up.w + ox / up.f];
}

// dx[nc, y, x] = Σ_(a, b) in F×F of g[nc, y F + a, x F + b], summed in row-major order.
@group(0) @binding(0) var<uniform> ubp: UpParams;
@group(0) @binding(1) var<storage, read> ug: array<f32>;
@group(0) @binding(2) var<storage, read_write> udx: array<f32>;

@compute @workgroup_size(WG)
fn upsample_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = lin(gid, nwg);
  if (idx >= ubp.total) { return; }
  let xw = idx % ubp.w;
  let t = idx / ubp.w;
  let yh = t % ubp.h;
  let nc = t / ubp.h;
  let W2 = ubp.w * ubp.f;
  let base = (nc * ubp.h * ubp.f + yh * ubp.f) * W2 + xw * ubp.f;
  var s = 0.0;
  for (var a = 0u; a < ubp.f; a++) {
    for (var b = 0u; b < ubp.f; b++) { s += ug[base + a * W2 + b]; }
  }
  udx[idx] = s;
}
