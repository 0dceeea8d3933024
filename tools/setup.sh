#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine with Node/npm lacks for ditflow, and nothing it already has:
#   - deno (from the npm package `deno`, pinned to the version the lockfile was made with)
#   - a Vulkan driver for Deno's WebGPU: Mesa's software rasteriser (llvmpipe/lavapipe) where no GPU
#     driver is present, and the Vulkan loader
#   - the npm dependencies, into node_modules/ (deno install, from deno.lock)
# Safe to run again: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DENO_VERSION=2.9.6

sudo_() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

missing=()
for pkg in libvulkan1 mesa-vulkan-drivers fonts-dejavu-core; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]} (Vulkan loader and Mesa software Vulkan driver for WebGPU; a font for plot labels)" >&2
  sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_ apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v deno >/dev/null 2>&1 || [[ $(deno --version | head -n1 | awk '{print $2}') != "$DENO_VERSION" ]]; then
  echo "setup: installing deno $DENO_VERSION from npm" >&2
  if [[ -w "$(npm prefix -g)/lib" || $(id -u) -eq 0 ]]; then
    npm install -g --silent "deno@$DENO_VERSION" >/dev/null 2>&1
  else
    sudo_ npm install -g --silent "deno@$DENO_VERSION" >/dev/null 2>&1
  fi
fi

deno install --quiet >/dev/null 2>&1 || deno install
echo "setup: ready ($(deno --version | head -n1))" >&2
