// 2-D convolution (NCHW) as im2col + matmul, and nearest-neighbour upsampling.
//
// conv2d: `im2col` lays the input patches out as cols [N, C·kh·kw, Ho·Wo] (row r = (c, i, j), column
// p = (oy, ox); taps outside the (possibly asymmetric) zero padding read 0), so that the convolution is
// the batched matmul W [O, C·kh·kw] · cols[n] (lib/tensor/ops/matmul.ts). Its adjoint `col2im` gathers,
// for every input pixel, the column entries of the taps that read it, in a fixed (i, j) order: no atomics,
// deterministic. Both are specialised to one geometry by override constants (see below). `conv_direct` is
// the implicit-GEMM alternative (patches read on the fly, a register tile of TO output channels × TP
// pixels per invocation), used by conv2dDirect only (lib/tensor/ops/conv.ts says why).
//
// upsample: nearest-neighbour by an integer factor F (torch.nn.functional.interpolate(mode="nearest")),
// `upsample_forward` copies, `upsample_backward` sums each F×F block of the gradient in order.
//
// Elementwise kernels run on a 2-D grid: idx = gid.x + gid.y · (nwg.x · WG), `total` invocations.

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

// --- im2col and col2im, specialised per geometry -------------------------------------------------------
// The geometry is given as override constants (one pipeline per convolution shape, N and C aside), so
// that the index arithmetic divides by constants: on llvmpipe a per-invocation division by a runtime value
// is scalarised (x86 has no vector integer division) and it dominated these memory-bound kernels; by a
// constant it is a vectorised multiply and shift.
override GH: u32 = 1u;  // input height
override GW: u32 = 1u;  // input width
override GHO: u32 = 1u; // output height
override GWO: u32 = 1u; // output width
override GKH: u32 = 1u; // kernel height
override GKW: u32 = 1u; // kernel width
override GSH: u32 = 1u; // stride (rows)
override GSW: u32 = 1u; // stride (columns)
override GPT: u32 = 0u; // zero padding at the top
override GPL: u32 = 0u; // zero padding at the left
override VQ: u32 = 1u;  // im2col4: vec4s per invocation (4 · VQ divides GWO)

// im2col: cols[n, (c, i, j), (oy, ox)] = x[n, c, oy·sh − pt + i, ox·sw − pl + j] (0 outside).
// `im2col`: one invocation per cols row segment (nc, (i, j), oy), looping over the GWO outputs; total =
// N·C·kh·kw·Ho. `im2col4` (GWO % (4·VQ) == 0): one invocation per 4·VQ consecutive outputs of a segment,
// stored as vec4s; total = cols size / (4·VQ).
@group(0) @binding(0) var<uniform> ip: ConvParams;
@group(0) @binding(1) var<storage, read> ix: array<f32>;
@group(0) @binding(2) var<storage, read_write> icols: array<f32>;
@group(0) @binding(2) var<storage, read_write> icols4: array<vec4f>;

@compute @workgroup_size(WG)
fn im2col(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = lin(gid, nwg);
  if (idx >= ip.total) { return; }
  let KK = GKH * GKW;
  let oy = idx % GHO;
  let t = idx / GHO;
  let k = t % KK;
  let nc = t / KK; // n · C + c
  let y = i32(oy * GSH + k / GKW) - i32(GPT);
  let j = k % GKW;
  let yin = y >= 0 && y < i32(GH);
  let rb = (nc * GH + u32(clamp(y, 0, i32(GH) - 1))) * GW;
  let ob = idx * GWO;
  for (var ox = 0u; ox < GWO; ox++) {
    let x = i32(ox * GSW + j) - i32(GPL);
    var v = 0.0;
    if (yin && x >= 0 && x < i32(GW)) { v = ix[rb + u32(x)]; }
    icols[ob + ox] = v;
  }
}

// Four taps of one cols row segment: x[rb + x0 + q·sw] for q = 0..3, 0 outside the row (branchless).
fn taps4(rb: i32, x0: i32) -> vec4f {
  let x = vec4i(x0) + vec4i(0, 1, 2, 3) * i32(GSW);
  let xc = clamp(x, vec4i(0), vec4i(i32(GW) - 1)) + rb;
  let v = vec4f(ix[xc.x], ix[xc.y], ix[xc.z], ix[xc.w]);
  return select(vec4f(0.0), v, (x >= vec4i(0)) & (x < vec4i(i32(GW))));
}

@compute @workgroup_size(WG)
fn im2col4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = lin(gid, nwg);
  if (idx >= ip.total) { return; }
  let PQ = GHO * GWO / (4u * VQ);
  let KK = GKH * GKW;
  let p = (idx % PQ) * (4u * VQ);
  let t = idx / PQ;
  let k = t % KK;
  let nc = t / KK; // n · C + c
  let y = i32((p / GWO) * GSH + k / GKW) - i32(GPT);
  let yin = y >= 0 && y < i32(GH);
  let rb = i32((nc * GH + u32(clamp(y, 0, i32(GH) - 1))) * GW);
  let x0 = i32((p % GWO) * GSW + k % GKW) - i32(GPL);
  for (var b = 0u; b < VQ; b++) {
    icols4[idx * VQ + b] = select(vec4f(0.0), taps4(rb, x0 + i32(4u * b * GSW)), yin);
  }
}

// col2im (the adjoint): dx[n, c, y, x] = Σ over taps (i, j) reading (y, x) of dcols, in (i, j) order;
// one invocation per input element.
@group(0) @binding(0) var<uniform> cp: ConvParams;
@group(0) @binding(1) var<storage, read> ccols: array<f32>;
@group(0) @binding(2) var<storage, read_write> cdx: array<f32>;

@compute @workgroup_size(WG)
fn col2im(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = lin(gid, nwg);
  if (idx >= cp.total) { return; }
  let xw = idx % GW;
  let t = idx / GW;
  let yh = t % GH;
  let nc = t / GH; // n · C + c
  let P = GHO * GWO;
  let base = nc * GKH * GKW;
  var s = 0.0;
  for (var i = 0u; i < GKH; i++) {
    let ny = i32(yh + GPT) - i32(i);
    if (ny < 0 || u32(ny) % GSH != 0u) { continue; }
    let oy = u32(ny) / GSH;
    if (oy >= GHO) { continue; }
    for (var j = 0u; j < GKW; j++) {
      let nx = i32(xw + GPL) - i32(j);
      if (nx < 0 || u32(nx) % GSW != 0u) { continue; }
      let ox = u32(nx) / GSW;
      if (ox >= GWO) { continue; }
      s += ccols[(base + i * GKW + j) * P + oy * GWO + ox];
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
// Grid [⌈P / WG⌉, O, N]: x covers the P pixels (vec4s in `channel_bias4`, when P % 4 == 0), o = wid.y and
// n = wid.z are uniform per workgroup: the bias load is one broadcast, no division per element.
@group(0) @binding(0) var<uniform> bp: ConvParams;
@group(0) @binding(2) var<storage, read> bb: array<f32>;

//#variants f32 vec4
@group(0) @binding(1) var<storage, read> bx$4: array<$T>;
@group(0) @binding(3) var<storage, read_write> by$4: array<$T>;

@compute @workgroup_size(WG)
fn channel_bias$4(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let P$4 = bp.ho * bp.wo$pick(, / 4u);
  if (gid.x >= P$4) { return; }
  let i = (wid.z * bp.o + wid.y) * P$4 + gid.x;
  by$4[i] = bx$4[i] + bb[wid.y];
}
//#end

// --- bias gradient: db[o] = Σ_n Σ_p g[n, o, p], one (small) workgroup per channel -------------------------
// Invocation `lid` sums pixels lid, lid + WG, ... of each image in order (vec4s in the `…4` twin, added up
// as (x + y) + (z + w)); the lane sums are then added in lane order: deterministic, one barrier.
var<workgroup> red: array<f32, WG>;

@group(0) @binding(0) var<uniform> gp: ConvParams;
@group(0) @binding(2) var<storage, read_write> gdb: array<f32>;

fn lane_total(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  var t = 0.0;
  for (var k = 0u; k < WG; k++) { t += red[k]; }
  return t;
}

//#variants f32 vec4
@group(0) @binding(1) var<storage, read> gg$4: array<$T>;

@compute @workgroup_size(WG)
fn channel_bias_backward$4(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let o = wid.x + wid.y * nwg.x;
  if (o >= gp.o) { return; } // uniform per workgroup
  let P$4 = gp.ho * gp.wo$pick(, / 4u);
  var s = $T(0.0);
  for (var n = 0u; n < gp.n; n++) {
    let base = (n * gp.o + o) * P$4;
    for (var p = lid; p < P$4; p += WG) { s += gg$4[base + p]; }
  }
  let t = lane_total(lid, $pick(s, (s.x + s.y) + (s.z + s.w)));
  if (lid == 0u) { gdb[o] = t; }
}
//#end

// --- nearest upsampling by F: y[nc, oy, ox] = x[nc, oy / F, ox / F] ---------------------------------------
// The input height, width and F are override constants (divisions by constants, as for im2col).
struct UpParams {
  total: u32, // elements the dispatch covers
  h: u32,     // input height
  w: u32,     // input width
  f: u32,     // factor
}

override UH: u32 = 1u; // input height
override UW: u32 = 1u; // input width
override UF: u32 = 1u; // factor

@group(0) @binding(0) var<uniform> up: UpParams;
@group(0) @binding(1) var<storage, read> ux: array<f32>;
@group(0) @binding(2) var<storage, read_write> uy: array<f32>;

@compute @workgroup_size(WG)
fn upsample_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = lin(gid, nwg);
  if (idx >= up.total) { return; }
  let W2 = UW * UF;
  let H2 = UH * UF;
  let ox = idx % W2;
  let t = idx / W2;
  let oy = t % H2;
  let nc = t / H2;
  uy[idx] = ux[(nc * UH + oy / UF) * UW + ox / UF];
}

// dx[nc, y, x] = Σ_(a, b) in F×F of g[nc, y F + a, x F + b], summed in row-major order.
@group(0) @binding(0) var<uniform> ubp: UpParams;
@group(0) @binding(1) var<storage, read> ug: array<f32>;
@group(0) @binding(2) var<storage, read_write> udx: array<f32>;

@compute @workgroup_size(WG)
fn upsample_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = lin(gid, nwg);
  if (idx >= ubp.total) { return; }
  let xw = idx % UW;
  let t = idx / UW;
  let yh = t % UH;
  let nc = t / UH;
  let W2 = UW * UF;
  let base = (nc * UH * UF + yh * UF) * W2 + xw * UF;
  var s = 0.0;
  for (var a = 0u; a < UF; a++) {
    for (var b = 0u; b < UF; b++) { s += ug[base + a * W2 + b]; }
  }
  udx[idx] = s;
}
