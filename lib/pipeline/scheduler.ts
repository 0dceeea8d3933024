/**
 * The scheduler: runs a DAG of nodes in topological order, independent nodes in parallel up to `jobs`,
 * GPU nodes additionally limited to `gpus` slots. A failure stops new work (running nodes finish) unless
 * `keepGoing`, in which case only the failed node's dependents are skipped. Abort stops new work.
 * @module
 */

/** A node to schedule. */
export interface SchedNode {
  name: string;
  deps: string[];
  gpu: boolean;
}

/** What running a node gave. */
export type NodeResult = "ok" | "failed" | "aborted";

/** A node's final state. */
export type NodeState = "ok" | "failed" | "aborted" | "skipped" | "not-run";

/** Scheduler options. */
export interface ScheduleOptions {
  /** Concurrent nodes (at least 1). */
  jobs: number;
  /** Concurrent GPU nodes (at least 1). */
  gpus: number;
  keepGoing: boolean;
  signal?: AbortSignal;
}

/**
 * Runs `run` on every node once its dependencies are `ok`. Nodes must be given in topological order
 * (dependencies not in `nodes` count as satisfied). Resolves with every node's final state.
 */
export function schedule(
  nodes: SchedNode[],
  run: (node: SchedNode) => Promise<NodeResult>,
  opts: ScheduleOptions,
): Promise<Map<string, NodeState>> {
  const jobs = Math.max(1, opts.jobs);
  const gpus = Math.max(1, opts.gpus);
  const names = new Set(nodes.map((n) => n.name));
  const state = new Map<string, NodeState | "pending" | "running">(nodes.map((n) => [n.name, "pending"]));
  let running = 0;
  let gpuRunning = 0;
  let stopping = false;
  let pendingCount = nodes.length;
  return new Promise((resolve) => {
    const finish = () => {
      for (const n of nodes) {
        if (state.get(n.name) === "pending") state.set(n.name, "not-run");
      }
      resolve(state as Map<string, NodeState>);
    };
    const pump = () => {
      if (opts.signal?.aborted) stopping = true;
      if (pendingCount > 0) {
        for (const n of nodes) {
          if (state.get(n.name) !== "pending") continue;
          let ready = true;
          let blocked = false;
          for (const d of n.deps) {
            if (!names.has(d)) continue;
            const s = state.get(d);
            if (s === "failed" || s === "skipped" || s === "aborted" || s === "not-run") blocked = true;
            else if (s !== "ok") ready = false;
          }
          if (blocked) {
            state.set(n.name, "skipped");
            pendingCount--;
            continue;
          }
          if (!ready || stopping || running >= jobs || (n.gpu && gpuRunning >= gpus)) continue;
          state.set(n.name, "running");
          pendingCount--;
          running++;
          if (n.gpu) gpuRunning++;
          run(n).catch(() => "failed" as NodeResult).then((r) => {
            running--;
            if (n.gpu) gpuRunning--;
            state.set(n.name, r);
            if (r !== "ok" && !opts.keepGoing) stopping = true;
            if (r === "aborted") stopping = true;
            pump();
          });
        }
      }
      if (running === 0) finish();
    };
    pump();
  });
}
