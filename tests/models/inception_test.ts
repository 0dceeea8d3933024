/**
 * The FID Inception-v3 against PyTorch/torchvision patched as pytorch-fid does (tools/golden_inception.py):
 * state-dict names and shapes, the deterministic synthetic weights (bit-identical to the script's), pool3
 * features and logits of 2 RGB 64×64 images through the real resize to 299 and of one grey 28×28 image
 * (replicated to 3 channels) at the 75×75 minimum, the loader's errors.
 */
import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import { gpu, relErr } from "../helpers/gradcheck.ts";
import { readSafetensors, writeSafetensors } from "../../lib/io/safetensors.ts";
import { noGrad } from "../../lib/tensor/autograd.ts";
import { tensor, tidy } from "../../lib/tensor/tensor.ts";
import {
  FID_WEIGHTS_URL,
  INCEPTION_FID_CLASSES,
  INCEPTION_POOL3_DIM,
  inceptionFeatures,
  inceptionParamSpecs,
  InceptionV3,
  loadInception,
  syntheticInceptionState,
} from "../../lib/models/inception.ts";

await gpu();

const FIX = new URL("../fixtures/inception/", import.meta.url);

interface GoldenInfo {
  cases: { name: string; shape: [number, number, number, number]; size: number; input_range: "[0,1]" }[];
  state_dict: { name: string; shape: number[] }[];
  samples: Record<string, number[]>;
}
const info: GoldenInfo = JSON.parse(await Deno.readTextFile(new URL("golden.json", FIX)));
const golden = await readSafetensors(new URL("golden.safetensors", FIX).pathname);

let state: ReturnType<typeof syntheticInceptionState> | null = null;
const synthetic = () => (state ??= syntheticInceptionState());

/** Max over images of the norm-relative error of rows of `d` values. */
function maxRowRelErr(got: Float32Array, want: Float32Array, rows: number, d: number): number {
  let worst = 0;
  for (let r = 0; r < rows; r++) {
    worst = Math.max(worst, relErr(got.subarray(r * d, (r + 1) * d), want.subarray(r * d, (r + 1) * d)));
  }
  return worst;
}

Deno.test("state dict: names, shapes and order are torchvision's (FID-patched, 1008 classes, no aux)", () => {
  const specs = inceptionParamSpecs();
  assertEquals(
    specs.map((s) => `${s.name} [${s.shape}]`),
    info.state_dict.map((s) => `${s.name} [${s.shape}]`),
  );
  const total = specs.reduce((a, s) => a + s.shape.reduce((p, q) => p * q, 1), 0);
  assert(total > 23_000_000 && total < 24_000_000, `parameter count ${total}`);
});

Deno.test("synthetic weights are bit-identical to tools/golden_inception.py's", () => {
  const st = synthetic();
  for (const [name, want] of Object.entries(info.samples)) {
    const got = [...st.get(name)!.data.subarray(0, want.length)];
    assertEquals(got, want.map((v) => Math.fround(v)), name);
  }
});

for (const c of info.cases) {
  Deno.test(
    `${c.name} ${
      c.shape.join("×")
    } → ${c.size}: pool3 and logits match torch within 1e-4 (norm-relative per image)`,
    async () => {
      const net = InceptionV3.fromState(synthetic());
      try {
        const x = golden.getF32(`${c.name}.x`);
        const t0 = performance.now();
        const fc = await inceptionFeatures(net, { data: x, shape: c.shape }, {
          size: c.size,
          inputRange: c.input_range,
          logits: "fc",
          batch: 2,
        });
        const ms = performance.now() - t0;
        const n = c.shape[0];
        const D = INCEPTION_POOL3_DIM;
        const K = INCEPTION_FID_CLASSES;
        const ePool = maxRowRelErr(fc.pool3, golden.getF32(`${c.name}.pool3`), n, D);
        const eLog = maxRowRelErr(fc.logits!, golden.getF32(`${c.name}.logits`), n, K);
        // The unbiased logits (pool3 · fc.weightᵀ, the TF Inception Score's) of torch's own pool3.
        const unbiased = noGrad(() =>
          tidy(() => net.logits(tensor(golden.getF32(`${c.name}.pool3`), [n, D]), { bias: false }))
        );
        const eUnb = maxRowRelErr(await unbiased.data(), golden.getF32(`${c.name}.logits_unbiased`), n, K);
        unbiased.dispose();
        console.log(
          `${c.name}: pool3 ${ePool.toExponential(2)}, logits ${eLog.toExponential(2)}, unbiased logits ${
            eUnb.toExponential(2)
          } (max norm-relative error over ${n} images; forward ${ms.toFixed(0)} ms)`,
        );
        assert(ePool < 1e-4, `pool3 relative error ${ePool}`);
        assert(eLog < 1e-4, `logits relative error ${eLog}`);
        assert(eUnb < 1e-4, `unbiased logits relative error ${eUnb}`);
        if (c.size === 299) return;
        // The same images as [-1, 1] input (ditflow's datasets) give the same features: the affine map
        // commutes with the resize. And the "unbiased" logits option of inceptionFeatures.
        const xm = x.map((v) => 2 * v - 1);
        const pm = await inceptionFeatures(net, { data: xm, shape: c.shape }, {
          size: c.size,
          logits: "unbiased",
        });
        assert(maxRowRelErr(pm.pool3, fc.pool3, n, D) < 1e-5, "[-1, 1] input differs from [0, 1]");
        assert(maxRowRelErr(pm.logits!, golden.getF32(`${c.name}.logits_unbiased`), n, K) < 1e-4, "unbiased");
        const plain = await inceptionFeatures(net, { data: xm, shape: c.shape }, { size: c.size });
        assertEquals(plain.logits, undefined);
        assertEquals([...plain.pool3], [...pm.pool3]);
      } finally {
        net.dispose();
      }
    },
  );
}

Deno.test("loader: a missing weight file names the path, the expected file and where to get it", async () => {
  const path = "/nonexistent/weights/pt_inception-2015-12-05-6726825d.safetensors";
  let msg = "";
  try {
    await loadInception(path);
  } catch (e) {
    msg = (e as Error).message;
  }
  for (
    const frag of [
      path,
      "pt_inception-2015-12-05-6726825d.pth",
      FID_WEIGHTS_URL,
      "convert_inception_checkpoint.py",
    ]
  ) {
    assert(msg.includes(frag), `error lacks ${frag}: ${msg}`);
  }
});

Deno.test("loader: wrong state dicts are refused naming the keys; a file round trip keeps the name", async () => {
  const st = synthetic();
  const bad = new Map(st);
  bad.delete("Mixed_6c.branch7x7_2.bn.running_var");
  bad.set("fc.weight", { shape: [1000, 2048], data: new Float32Array(1000 * 2048) });
  bad.set("AuxLogits.fc.weight", { shape: [1000, 768], data: new Float32Array(768000) });
  assertThrows(
    () => InceptionV3.fromState(bad),
    "missing key Mixed_6c.branch7x7_2.bn.running_var",
    "fc.weight: checkpoint has shape [1000, 2048]",
    "unexpected key AuxLogits.fc.weight",
  );
  // Only the small tensors go through a file here (the loader's path, with num_batches_tracked ignored).
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/w.safetensors`;
    await writeSafetensors(path, {
      "Conv2d_1a_3x3.bn.num_batches_tracked": { dtype: "I64", shape: [], data: BigInt64Array.of(0n) },
      "fc.bias": { dtype: "F32", shape: [1008], data: st.get("fc.bias")!.data },
    }, { feature_extractor: "inception-v3-fid" });
    let msg = "";
    try {
      await loadInception(path);
    } catch (e) {
      msg = (e as Error).message;
    }
    assert(msg.includes("missing key Conv2d_1a_3x3.conv.weight"), msg);
    assert(!msg.includes("num_batches_tracked"), msg);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
