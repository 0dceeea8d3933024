/**
 * Tape-based reverse-mode automatic differentiation.
 *
 * Every op that has an input requiring gradients, while gradients are enabled, records a
 * {@link GradNode} on its output. {@link backward} walks the recorded graph from a scalar loss in reverse
 * topological order and accumulates gradients into the leaves' `.grad`.
 * @module
 */

import { fmtShape, type Tensor } from "./tensor.ts";

/** A recorded op: its inputs and how to map the output gradient to input gradients. */
export interface GradNode {
  /** Op name, for error messages. */
  op: string;
  /** Inputs, in the order `backward` returns their gradients. */
  inputs: Tensor[];
  /** Returns one gradient per input (null where that input needs none). Runs under no-grad. */
  backward: (gradOutput: Tensor) => (Tensor | null)[];
  /**
   * The backward ignores the values of its incoming gradient (e.g. split's collector, whose parts hand it
   * dummy gradients): several contributions are then not summed, the first stands for all.
   */
  ignoresGrad?: boolean;
}

let gradEnabled = true;

/** Whether ops currently record onto the tape. */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs `fn` without recording gradients. */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Runs an async `fn` without recording gradients (do not interleave with recording work). */
export async function noGradAsync<T>(fn: () => Promise<T>): Promise<T> {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return await fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Whether an op over these inputs must be recorded. */
export function needsGrad(...inputs: (Tensor | null | undefined)[]): boolean {
  if (!gradEnabled) return false;
  for (const t of inputs) if (t && t.requiresGrad) return true;
  return false;
}

/**
 * Records `out = op(inputs)` on the tape if any input requires gradients. Returns `out`.
 * `backward` receives the gradient of `out` and returns one gradient per input.
 */
export function record(
  out: Tensor,
  op: string,
  inputs: Tensor[],
  backward: (gradOutput: Tensor) => (Tensor | null)[],
): Tensor {
  if (needsGrad(...inputs)) {
    out.requiresGrad = true;
    out.node = { op, inputs, backward };
  }
  return out;
}

/** Checks that a gradient returned by an op's backward has its input's shape. */
export function checkGradShape(op: string, input: Tensor, grad: Tensor): void {
  if (input.shape.length !== grad.shape.length || input.shape.some((d, i) => d !== grad.shape[i])) {
    throw new Error(
      `backward of ${op}: gradient shape ${fmtShape(grad.shape)} does not match input shape ${
        fmtShape(input.shape)
      }`,
    );
  }
}

/** Returns the tensors reachable from `root` through recorded nodes, in topological order (inputs first). */
export function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<number>();
  // iterative DFS to avoid deep recursion on long graphs
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root.id);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const c = inputs[i];
      if (c.requiresGrad && !seen.has(c.id)) {
        seen.add(c.id);
        stack.push([c, 0]);
      }
    } else {
      order.push(t);
      stack.pop();
    }
  }
  return order;
}
