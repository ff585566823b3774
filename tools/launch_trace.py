"""List every kernel launch of one training step on the emulated CUDA device.

Usage (after ``cmake --build build``)::

    GPUGRAD_CUDA_EMULATOR=$PWD/build/kernels GPUGRAD_FUSION_CUDA=1 python tools/launch_trace.py mlp
    python tools/launch_trace.py transformer --full   # every line, not only a summary

Each launch is printed with the kernel's name (or the CuPy function) and the innermost gpugrad
frame that caused it, so one can see where a step's launches go. A debugging aid, not a test.
"""

from __future__ import annotations

import argparse
import collections
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's gpugrad


def _install_tracer(log: list) -> None:
    from gpugrad.testing.cuda_emulator import _device

    counters = _device.COUNTERS

    class Traced(type(counters)):
        def __setattr__(self, name: str, value: object) -> None:
            if name == "launches" and value == getattr(self, "launches", 0) + 1:
                log.append(_where())
            object.__setattr__(self, name, value)

    counters.__class__ = Traced


def _where() -> str:
    stack = traceback.extract_stack()[:-3]
    kernel = ""
    frame = sys._getframe(3)
    while frame is not None:
        if frame.f_code.co_name == "__call__" and "self" in frame.f_locals:
            name = getattr(frame.f_locals["self"], "name", None)
            if isinstance(name, str):
                kernel = name
                break
        frame = frame.f_back
    emu = [f for f in stack if "cuda_emulator" in f.filename]
    ours = [f for f in stack if "/gpugrad/" in f.filename and "cuda_emulator" not in f.filename
            and "launch_trace" not in f.filename]
    what = kernel or (emu[-1].name if emu else "?")
    site = ", ".join(f"{f.filename.split('/gpugrad/')[-1]}:{f.lineno} {f.name}" for f in ours[-3:])
    return f"{what:48s} <- {site}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", default="mlp", nargs="?")
    ap.add_argument("--full", action="store_true")
    args = ap.parse_args()
    import gpugrad as gg
    from gpugrad.bench.runner import first_step

    case, impl = first_step(args.workload, "cuda:0")
    for _ in range(2):  # warm-up: compilations, first allocations
        impl.step(0)
    gg.cuda.synchronize()
    log: list = []
    gg.cuda.reset_counters()
    _install_tracer(log)
    impl.step(0)
    gg.cuda.synchronize()
    c = gg.cuda.counters()
    print(f"{args.workload} {case.label}: {c['launches']} launches, {c['bytes']} bytes")
    if args.full:
        for i, line in enumerate(log):
            print(f"{i:4d} {line}")
    else:
        for line, n in collections.Counter(log).most_common():
            print(f"{n:4d} x {line}")


if __name__ == "__main__":
    main()
