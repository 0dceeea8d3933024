/**
 * WebGPU adapter and device acquisition.
 *
 * The device is requested with the adapter's *real* limits (not the WebGPU defaults, which cap storage
 * bindings at 128 MiB, far below what a DiT-XL needs) and with `timestamp-query` where the adapter has it.
 * @module
 */

/** What we know about the adapter a device came from; recorded with every artifact. */
export interface AdapterDescription {
  /** Human readable adapter description, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)` or `NVIDIA H100`. */
  description: string;
  vendor: string;
  architecture: string;
  device: string;
  /** True for software adapters such as llvmpipe. */
  isFallbackAdapter: boolean;
  /** Features enabled on the device. */
  features: string[];
  /** The limits the device was created with. */
  limits: Record<string, number>;
}

/** An acquired WebGPU device together with the adapter it came from. */
export interface AcquiredDevice {
  adapter: GPUAdapter;
  device: GPUDevice;
  adapter_info: AdapterDescription;
}

/** Thrown when no WebGPU adapter can be found; its message says what to install. */
export class NoAdapterError extends Error {
  constructor(detail: string) {
    super(
      `No WebGPU adapter is available (${detail}).\n` +
        `  ditflow runs on Deno's WebGPU (wgpu), which needs a Vulkan driver:\n` +
        `  - without a GPU (CI, laptops): Mesa's software Vulkan driver (llvmpipe/lavapipe):\n` +
        `      sudo apt-get install mesa-vulkan-drivers libvulkan1\n` +
        `  - with an NVIDIA GPU: the Vulkan loader (libvulkan1) and the NVIDIA driver's Vulkan ICD;\n` +
        `      if the ICD is not found, set VK_DRIVER_FILES=/path/to/nvidia_icd.json\n` +
        `  Check with: vulkaninfo --summary`,
    );
    this.name = "NoAdapterError";
  }
}

const LIMIT_NAMES = [
  "maxBufferSize",
  "maxStorageBufferBindingSize",
  "maxUniformBufferBindingSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
  "maxComputeWorkgroupsPerDimension",
  "maxStorageBuffersPerShaderStage",
  "maxBindingsPerBindGroup",
  "minStorageBufferOffsetAlignment",
  "minUniformBufferOffsetAlignment",
] as const;

/** Options for {@link acquireDevice}. */
export interface AcquireOptions {
  powerPreference?: GPUPowerPreference;
  /** Print the adapter description to stderr (default false). */
  verbose?: boolean;
}

/**
 * Requests an adapter and a device with the adapter's full limits.
 * Throws {@link NoAdapterError} with installation advice if there is none.
 */
export async function acquireDevice(opts: AcquireOptions = {}): Promise<AcquiredDevice> {
  if (typeof navigator === "undefined" || !("gpu" in navigator) || !navigator.gpu) {
    throw new NoAdapterError("navigator.gpu is missing from this Deno build");
  }
  ensureRuntimeDir();
  const adapter = await navigator.gpu.requestAdapter({
    powerPreference: opts.powerPreference ?? "high-performance",
  });
  if (!adapter) throw new NoAdapterError("navigator.gpu.requestAdapter() returned null");

  const requiredLimits: Record<string, number> = {};
  for (const name of LIMIT_NAMES) {
    const v = (adapter.limits as unknown as Record<string, number>)[name];
    if (typeof v === "number") requiredLimits[name] = v;
  }
  const requiredFeatures: GPUFeatureName[] = [];
  if (adapter.features.has("timestamp-query")) requiredFeatures.push("timestamp-query");

  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  const info = adapter.info;
  const limits: Record<string, number> = {};
  for (const name of LIMIT_NAMES) {
    limits[name] = (device.limits as unknown as Record<string, number>)[name];
  }
  const adapter_info: AdapterDescription = {
    description: info.description || `${info.vendor} ${info.device}`.trim() || "unknown adapter",
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    isFallbackAdapter: Boolean((info as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter),
    features: [...device.features].sort(),
    limits,
  };
  if (opts.verbose) {
    console.error(
      `ditflow: WebGPU adapter: ${adapter_info.description}` +
        ` (max storage binding ${fmtBytes(limits.maxStorageBufferBindingSize)},` +
        ` max buffer ${fmtBytes(limits.maxBufferSize)})`,
    );
  }
  return { adapter, device, adapter_info };
}

/**
 * The Vulkan loader's window-system code complains on stderr when XDG_RUNTIME_DIR is unset (headless
 * machines, CI). We compute headless only, so point it at a private directory before the first adapter
 * request.
 */
function ensureRuntimeDir(): void {
  try {
    if (Deno.env.get("XDG_RUNTIME_DIR")) return;
    const dir = `/tmp/ditflow-xdg-${Deno.uid() ?? "user"}`;
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    Deno.chmodSync(dir, 0o700);
    Deno.env.set("XDG_RUNTIME_DIR", dir);
  } catch {
    // Not fatal: only a warning on stderr is at stake.
  }
}

/** Formats a byte count as a short human readable string. */
export function fmtBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}
