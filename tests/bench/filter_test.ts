import { assert } from "../helpers/assert.ts";
import { caseFilter } from "../../lib/bench/types.ts";

Deno.test("caseFilter: --filter as a regular expression on case names; every case passes without one", () => {
  const all = caseFilter({});
  assert(all("matmul 1024x1024x1024") && all("anything"));
  const some = caseFilter({ filter: "^L/4 b64 (qkv|fc1)" });
  assert(some("L/4 b64 qkv fwd x·Wᵀ"));
  assert(some("L/4 b64 fc1 dW dyᵀ·x"));
  assert(!some("L/4 b64 fc2 fwd x·Wᵀ"));
  assert(!some("XL/4 b64 qkv fwd x·Wᵀ"));
});
