#!/usr/bin/env bash
# The test suite (`deno task test [PATHS...]`). Deno's WebGPU teardown on llvmpipe once aborted the
# process after every test had reported (glibc "corrupted size vs. prev_size in fastbins", SIGABRT; seen
# once in a fresh-clone CI run, not reproduced since: 0 aborts in 70+ local GPU test/CLI runs). The source
# now tears the GPU down in order (lib/gpu/runtime.ts: the CLI awaits shutdownRuntime() before exiting, and
# a runtime alive at `unload` is destroyed synchronously: buffers, then the device), so the process exit no
# longer tears down a live device. This guard stays as a safety net until the abort is known gone: such an
# exit is reported loudly and accepted only when the runner's summary says every test passed; any failed
# test, or a crash before the summary, still fails.
set -uo pipefail
log=$(mktemp)
if [ "$#" -eq 0 ]; then set -- tests/; fi
deno test -A --no-check=remote "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if [ "$rc" -ge 128 ] && sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -qE '^ok \| [0-9]+ passed( \([0-9]+ steps?\))? \| 0 failed'; then
  echo "run_tests: deno exited on signal $((rc - 128)) after all tests passed (WebGPU teardown crash on llvmpipe); accepting the run" >&2
  rc=0
fi
rm -f "$log"
exit "$rc"
