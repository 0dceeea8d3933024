import { assert, assertThrows } from "../helpers/assert.ts";
import { assertClose, gpu } from "../helpers/gradcheck.ts";
import { readSafetensors } from "../../lib/io/safetensors.ts";
import {
  AutoencoderKL,
  type AutoencoderKLConfig,
  clamp,
  SD_VAE,
  SMALL_VAE,
  vaeParamSpecs,
} from "../../lib/models/autoencoder_kl.ts";
import type { HostTensor } from "../../lib/models/dit.ts";
import { backward } from "../../lib/tensor/backward.ts";
import { noGrad } from "../../lib/tensor/autograd.ts";
import { sum } from "../../lib/tensor/ops/reduce.ts";
import { add, mul, scale } from "../../lib/tensor/ops/elementwise.ts";
import { tensor, tidy } from "../../lib/tensor/tensor.ts";

await gpu();

/** The config of tools/golden_vae.py. */
const TINY: AutoencoderKLConfig = {
  name: "vae-tiny",
  inChannels: 3,
  outChannels: 3,
  blockOutChannels: [8, 16],
  layersPerBlock: 1,
  latentChannels: 4,
  normNumGroups: 4,
  scalingFactor: 0.18215,
};

const fixture = await readSafetensors(new URL("../fixtures/vae/tiny.safetensors", import.meta.url).pathname);

/** The fixture's state dict (the `__inputs__` / `__outputs__` entries stripped). */
function stateOf(): Map<string, HostTensor> {
  const m = new Map<string, HostTensor>();
  for (const k of fixture.names()) {
    if (k.startsWith("__")) continue;
    m.set(k, { shape: fixture.info(k).shape, data: fixture.getF32(k) });
  }
  return m;
}

Deno.test("AutoencoderKL: encode (mean, logvar, sample, KL) and decode match PyTorch (float64 reference)", async () => {
  const model = AutoencoderKL.fromHost(TINY, stateOf());
  const x = fixture.getF32("__inputs__.x");
  const z = fixture.getF32("__inputs__.z");
  const noise = fixture.getF32("__inputs__.noise");
  const res = tidy(() => {
    const post = model.encode(tensor(x, [2, 3, 16, 16]));
    const sample = post.sample(tensor(noise, [2, 4, 8, 8]));
    const dec = model.decode(tensor(z, [2, 4, 8, 8]));
    return { mean: post.mean, logvar: post.logvar, sample, kl: post.kl(), dec };
  });
  assert(res.mean.shape.join() === "2,4,8,8", `mean shape ${res.mean.shape}`);
  assert(res.dec.shape.join() === "2,3,16,16", `decode shape ${res.dec.shape}`);
  assertClose(await res.mean.data(), fixture.getF32("__outputs__.mean"), 1e-4, "encode mean");
  assertClose(await res.logvar.data(), fixture.getF32("__outputs__.logvar"), 1e-4, "encode logvar");
  assertClose(await res.sample.data(), fixture.getF32("__outputs__.sample"), 1e-4, "posterior sample");
  assertClose(await res.kl.data(), fixture.getF32("__outputs__.kl"), 1e-4, "posterior KL");
  assertClose(await res.dec.data(), fixture.getF32("__outputs__.decode"), 1e-4, "decode");
  for (const t of Object.values(res)) t.dispose();
  model.dispose();
});

Deno.test("AutoencoderKL: old attention names (query/key/value/proj_attn, 1×1-conv shaped) load", async () => {
  const old = new Map<string, HostTensor>();
  for (const [k, v] of stateOf()) {
    const n = k.replace(".to_q.", ".query.").replace(".to_k.", ".key.").replace(".to_v.", ".value.")
      .replace(".to_out.0.", ".proj_attn.");
    old.set(n, n.endsWith("query.weight") ? { shape: [...v.shape, 1, 1], data: v.data } : v);
  }
  assert(old.has("encoder.mid_block.attentions.0.proj_attn.weight"), "renaming failed");
  const model = AutoencoderKL.fromHost(TINY, old);
  const q = await model.params.get("decoder.mid_block.attentions.0.to_q.weight")!.data();
  assertClose(q, fixture.getF32("decoder.mid_block.attentions.0.to_q.weight"), 1e-7, "mapped to_q");
  model.dispose();
});

Deno.test("AutoencoderKL: state-dict mismatches name the keys", () => {
  const missing = stateOf();
  missing.delete("encoder.down_blocks.0.resnets.0.norm1.weight");
  assertThrows(
    () => AutoencoderKL.fromHost(TINY, missing),
    "missing key encoder.down_blocks.0.resnets.0.norm1.weight",
  );
  const extra = stateOf();
  extra.set("encoder.bogus.weight", { shape: [1], data: new Float32Array(1) });
  assertThrows(() => AutoencoderKL.fromHost(TINY, extra), "unexpected key encoder.bogus.weight");
  const bad = stateOf();
  bad.set("quant_conv.weight", { shape: [8, 8], data: new Float32Array(64) });
  assertThrows(() => AutoencoderKL.fromHost(TINY, bad), "quant_conv.weight", "[8, 8]", "[8, 8, 1, 1]");
  assertThrows(
    () => AutoencoderKL.fromHost(SMALL_VAE, stateOf()),
    "vae-small",
    "encoder.conv_in.weight",
    "[32, 3, 3, 3]",
  );
});

Deno.test("AutoencoderKL: the layout is the fixture's key set, and the SD VAE's (83,653,863 parameters)", () => {
  const names = new Set(vaeParamSpecs(TINY).map((s) => s.name));
  const keys = fixture.names().filter((k) => !k.startsWith("__"));
  assert(
    names.size === keys.length && keys.every((k) => names.has(k)),
    "tiny layout differs from diffusers'",
  );
  const sd = vaeParamSpecs(SD_VAE);
  const count = sd.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
  assert(count === 83653863, `SD VAE has ${count} parameters`);
  const byName = new Map(sd.map((s) => [s.name, s.shape.join(",")]));
  for (
    const [k, shape] of [
      ["encoder.down_blocks.0.resnets.0.norm1.weight", "128"],
      ["encoder.down_blocks.1.resnets.0.conv_shortcut.weight", "256,128,1,1"],
      ["encoder.mid_block.attentions.0.to_q.weight", "512,512"],
      ["decoder.up_blocks.0.upsamplers.0.conv.weight", "512,512,3,3"],
      ["decoder.up_blocks.3.resnets.2.conv2.weight", "128,128,3,3"],
      ["quant_conv.weight", "8,8,1,1"],
      ["encoder.conv_out.weight", "8,512,3,3"],
    ]
  ) assert(byName.get(k) === shape, `${k}: ${byName.get(k)} vs ${shape}`);
});

Deno.test("AutoencoderKL: gradients match PyTorch and reach every parameter", async () => {
  const model = AutoencoderKL.fromHost(TINY, stateOf());
  const res = tidy(() => {
    const xt = tensor(fixture.getF32("__inputs__.x"), [2, 3, 16, 16]).keep();
    xt.requiresGrad = true;
    const posterior = model.encode(xt);
    const recon = model.decode(posterior.sample(tensor(fixture.getF32("__inputs__.noise"), [2, 4, 8, 8])));
    // loss = sum(recon · w) + 0.01 · sum(kl), as tools/golden_vae.py
    const l = add(
      sum(mul(recon, tensor(fixture.getF32("__inputs__.w"), recon.shape))),
      scale(sum(posterior.kl()), 0.01),
    );
    backward(l);
    return { l, xt };
  });
  assert(Number.isFinite(await res.l.item()), "loss not finite");
  assertClose(await res.xt.grad!.data(), fixture.getF32("__grads__.x"), 1e-4, "gradient of x");
  const checked = fixture.names().filter((k) => k.startsWith("__grads__.") && k !== "__grads__.x");
  assert(checked.length >= 8, "gradient fixtures missing");
  for (const k of checked) {
    const name = k.slice("__grads__.".length);
    assertClose(await model.params.get(name)!.grad!.data(), fixture.getF32(k), 1e-4, `gradient of ${name}`);
  }
  for (const [k, p] of model.params) {
    assert(p.grad, `${k} got no gradient`);
    assert((await p.grad!.data()).every(Number.isFinite), `${k}: non-finite gradient`);
  }
  res.l.dispose();
  res.xt.dispose();
  model.dispose();
});

Deno.test("AutoencoderKL: the small config maps 32×32×3 images to 8×8×4 latents and back", async () => {
  let s = 1;
  const uniform = (n: number) =>
    Float64Array.from({ length: n }, () => ((s = (s * 16807) % 2147483647) - 1) / 2147483646);
  const model = AutoencoderKL.init(SMALL_VAE, { uniform, normal: (n) => uniform(n) });
  const { mean, dec } = noGrad(() =>
    tidy(() => {
      const post = model.encode(
        tensor(new Float32Array(3 * 32 * 32).map((_, i) => Math.sin(i)), [1, 3, 32, 32]),
      );
      return { mean: post.mean, dec: model.decode(post.mode()) };
    })
  );
  assert(mean.shape.join() === "1,4,8,8", `latent shape ${mean.shape}`);
  assert(dec.shape.join() === "1,3,32,32", `decoded shape ${dec.shape}`);
  assert((await dec.data()).every(Number.isFinite), "decoded values not finite");
  mean.dispose();
  dec.dispose();
  model.dispose();
});

Deno.test("clamp: exact inside [lo, hi], clamped outside, gradient 1 inside and 0 outside", async () => {
  const xs = [-40, -30.5, -29.99, -1.2345678, 0, 3.3, 19.75, 20.5, 1e6];
  const res = tidy(() => {
    const x = tensor(Float32Array.from(xs), [xs.length]).keep();
    x.requiresGrad = true;
    const y = clamp(x, -30, 20);
    backward(sum(y));
    return { x, y };
  });
  const y = await res.y.data();
  const g = await res.x.grad!.data();
  xs.forEach((v, i) => {
    const f = Math.fround(v);
    const want = Math.min(Math.max(f, -30), 20);
    assert(f > -30 && f < 20 ? y[i] === want : Math.abs(y[i] - want) < 1e-5, `clamp(${v}) = ${y[i]}`);
    assert(g[i] === (f > -30 && f < 20 ? 1 : 0), `clamp'(${v}) = ${g[i]}`);
  });
  res.x.dispose();
  res.y.dispose();
});
