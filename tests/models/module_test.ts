/** The module base: registration order, names checked at construction, the shared key check on load. */
import { assertEquals, assertThrows } from "../helpers/assert.ts";
import { gpu } from "../helpers/gradcheck.ts";
import { Linear, Model, type Module, ones, zeros } from "../../lib/models/module.ts";
import { StateDictError } from "../../lib/models/host_tensor.ts";

await gpu();

class Twice extends Model {
  constructor(name: string) {
    super("twice");
    this.param(name, [2], zeros);
    this.param("weight", [2], ones);
  }
}

class Net extends Model {
  readonly a: Linear;
  readonly b: Linear;
  constructor(child: string) {
    super("net");
    this.a = new Linear(this as Module, "a", 3, 2, { weight: ones, bias: zeros });
    this.b = new Linear(this as Module, child, 2, 1, { weight: ones, bias: zeros });
  }
}

Deno.test("module: names in registration order; repeated or malformed names fail at construction", () => {
  assertEquals(new Net("b").specs.map((s) => s.name), ["a.weight", "a.bias", "b.weight", "b.bias"]);
  assertThrows(() => new Twice("weight"), "registered twice");
  assertThrows(() => new Twice("bad-name"), "not valid");
  assertThrows(() => new Net("a"), "a.weight is registered twice");
  assertThrows(() => new Net("b..c"), "not valid");
});

Deno.test("module: load checks keys and shapes once for every model; state dict round trip; dispose", async () => {
  const net = new Net("b");
  assertThrows(() => net.trainable(), "not loaded");
  const host = net.initHost({ uniform: (n) => new Float64Array(n), normal: (n) => new Float64Array(n) });
  const bad = new Map(host);
  bad.delete("b.bias");
  bad.set("a.weight", { shape: [3, 2], data: new Float32Array(6) });
  bad.set("c.weight", { shape: [1], data: new Float32Array(1) });
  const e = assertThrows(() => new Net("b").load(bad), "missing key b.bias", "unexpected key c.weight");
  assertEquals(e instanceof StateDictError, true);
  net.load(host);
  assertEquals(net.trainable().length, 4);
  const sd = await net.stateDict();
  assertEquals([...sd.keys()], ["a.weight", "a.bias", "b.weight", "b.bias"]);
  assertEquals([...sd.get("a.weight")!.data], [1, 1, 1, 1, 1, 1]);
  net.dispose();
  assertEquals(net.params.size, 0);
});
