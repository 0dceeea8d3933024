/** Loads tests/fixtures/images/golden.json and its pixel blob (written by tools/golden_center_crop.py). */
import { gunzipSync } from "node:zlib";

/** Path of a file in tests/fixtures/images/. */
export const fixture = (name: string): string =>
  new URL(`../fixtures/images/${name}`, import.meta.url).pathname;

/** A slice of the pixel blob. */
export interface BlobRef {
  offset: number;
  length: number;
}

// deno-lint-ignore no-explicit-any
export const golden: any = JSON.parse(Deno.readTextFileSync(fixture("golden.json")));

let blob: Uint8Array | null = null;

/** The expected bytes at `ref` in golden_pixels.bin.gz. */
export function expectedBytes(ref: BlobRef): Uint8Array {
  blob ??= new Uint8Array(gunzipSync(Deno.readFileSync(fixture("golden_pixels.bin.gz"))));
  return blob.subarray(ref.offset, ref.offset + ref.length);
}
