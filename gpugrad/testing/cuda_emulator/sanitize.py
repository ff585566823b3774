"""Run a command with the emulated CUDA device's kernels built under a sanitizer.

    python -m gpugrad.testing.cuda_emulator.sanitize address -- python -m pytest tests/test_x.py
    python -m gpugrad.testing.cuda_emulator.sanitize thread -- python my_script.py

``address`` (AddressSanitizer) reports a kernel that reads or writes outside an array (device
memory is allocated at its exact size); ``thread`` (ThreadSanitizer) reports data races between
the threads of a block (they run as concurrent OS threads under it). Every kernel is compiled
for the host at first use with ``-fsanitize=...`` (the prebuilt ones are not instrumented), the
sanitizer's runtime is preloaded into the process, and the CUDA backend compiles from source
(``GPUGRAD_AOT_DIR`` empty). The command's exit status is the run's: a sanitizer report fails it.
"""

from __future__ import annotations

import os
import subprocess
import sys

RUNTIMES = {"address": "libasan.so", "thread": "libtsan.so"}


def environment(kind: str, base: dict | None = None) -> dict[str, str]:
    """The environment that runs a process under sanitizer ``kind`` ("address" or "thread")."""
    if kind not in RUNTIMES:
        raise ValueError(f"sanitizer must be one of {sorted(RUNTIMES)}, got {kind!r}")
    cxx = os.environ.get("CXX") or "g++"
    runtime = subprocess.run([cxx, f"-print-file-name={RUNTIMES[kind]}"], capture_output=True, text=True,
                             check=True).stdout.strip()
    if not os.path.isabs(runtime) or not os.path.exists(runtime):
        raise RuntimeError(f"{cxx} has no {RUNTIMES[kind]} (install the compiler's sanitizer runtime)")
    env = dict(os.environ if base is None else base)
    env["LD_PRELOAD"] = runtime + (":" + env["LD_PRELOAD"] if env.get("LD_PRELOAD") else "")
    env["GPUGRAD_EMULATOR_SANITIZE"] = kind
    env["GPUGRAD_AOT_DIR"] = ""
    # NVRTC cannot load its builtins library under a preloaded sanitizer runtime; the NVRTC
    # check of every source is not what a sanitizer run is for (tests/test_nvrtc.py does it)
    env["GPUGRAD_EMULATOR_NVRTC"] = "0"
    if kind == "address":
        env.setdefault("ASAN_OPTIONS", "detect_leaks=0:halt_on_error=1:abort_on_error=0")
    else:
        env.setdefault("TSAN_OPTIONS", "halt_on_error=1:exitcode=66:report_signal_unsafe=0")
    return env


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m gpugrad.testing.cuda_emulator.sanitize address|thread -- COMMAND ...",
              file=sys.stderr)
        return 2
    env = environment(argv[0])
    return subprocess.run(argv[2:], env=env).returncode


if __name__ == "__main__":
    raise SystemExit(main())
