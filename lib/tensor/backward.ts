/**
 * The backward pass: from a scalar (or seeded) output back to every leaf that requires gradients.
 * @module
 */

import { checkGradShape, noGrad, topoOrder } from "./autograd.ts";
import { add, scale, sumN } from "./ops/elementwise.ts";
import { fmtShape, full, type Tensor } from "./tensor.ts";

/**
 * Computes gradients of `root` with respect to every leaf tensor that requires them and accumulates
 * them into the leaves' `.grad` (kept out of enclosing scopes). `root` must have one element unless a
 * seed gradient of its shape is given. Intermediate gradients are disposed as soon as they are used.
 *
 * A tensor used by several ops receives several gradient contributions; they are kept until the tensor's
 * turn and summed then in arrival order by {@link sumN} (one dispatch per 6 rather than one add each;
 * the same f32 rounding as adding them one by one as they arrive).
 */
export function backward(root: Tensor, seed?: Tensor): void {
  if (!root.requiresGrad) {
    throw new Error(`backward: ${root.name} does not require gradients (no input of it requires them)`);
  }
  if (!seed && root.size !== 1) {
    throw new Error(`backward: ${root.name} has shape ${fmtShape(root.shape)}; pass a seed gradient`);
  }
  noGrad(() => {
    const order = topoOrder(root);
    const grads = new Map<number, Tensor[]>();
    // A caller's seed is copied so that no gradient ever aliases the caller's tensor.
    const ownSeed = seed ? scale(seed, 1) : full(root.shape, 1, "grad seed");
    const seedT = ownSeed;
    grads.set(root.id, [seedT]);
    for (let k = order.length - 1; k >= 0; k--) {
      const t = order[k];
      const parts = grads.get(t.id);
      if (!parts) continue;
      const g = parts.length === 1 ? parts[0] : sumN(parts);
      if (parts.length > 1) { for (const p of parts) p.dispose(); }
      if (!t.node) {
        // A leaf: accumulate into .grad.
        if (t.grad) {
          const sum = add(t.grad, g);
          t.grad.dispose();
          if (g !== seedT) g.dispose();
          t.grad = sum.keep();
        } else {
          t.grad = (g === seedT ? scale(g, 1) : g).keep();
        }
        grads.delete(t.id);
        continue;
      }
      const node = t.node;
      const inGrads = node.backward(g);
      if (inGrads.length !== node.inputs.length) {
        throw new Error(
          `backward of ${node.op}: returned ${inGrads.length} gradients for ${node.inputs.length} inputs`,
        );
      }
      const taken = new Set<Tensor>();
      const unused = new Set<Tensor>();
      // g is owned here (not the seed): the first input it is passed through to takes it without a copy.
      let gFree = g !== seedT;
      for (let i = 0; i < node.inputs.length; i++) {
        const inp = node.inputs[i];
        let gi = inGrads[i];
        if (!gi || !inp.requiresGrad) {
          if (gi) unused.add(gi);
          continue;
        }
        checkGradShape(node.op, inp, gi);
        if (gi === g && gFree && !node.inputs.includes(gi)) {
          gFree = false;
        } else if (gi === g || taken.has(gi) || node.inputs.includes(gi)) {
          // The op passed a gradient through again, returned one tensor twice, or returned a saved input:
          // copy, so that every accumulated gradient is owned here.
          gi = scale(gi, 1);
        }
        taken.add(gi);
        const prev = grads.get(inp.id);
        if (prev) prev.push(gi);
        else grads.set(inp.id, [gi]);
      }
      for (const u of unused) {
        if (u !== g && !taken.has(u) && !node.inputs.includes(u)) u.dispose();
      }
      if (g !== seedT && !taken.has(g)) g.dispose();
      grads.delete(t.id);
    }
    ownSeed.dispose();
  });
}
