"""Fused chains ahead of time: the CUDA kernels of the chains that the ``gpugrad bench --device
cuda`` workloads and the training steps of ``gpugrad train``'s models make, rendered without a
GPU for the CMake build.

A fused kernel's source depends on its chain's signature (ops, wiring, dtypes, scalar leaves,
outputs, reduction) and, backward, on which gradients come in and which leaves need one; never
on sizes, shapes or strides (the 'c' and 's' layouts are both rendered). So the chains a workload
makes on CUDA are the chains it makes on the CPU: :func:`collect` runs each workload's gpugrad
step on the CPU at small sizes (and two steps of each model in :data:`TRAIN_MODELS`), every
chain taken by the fusion compiler and run by the NumPy evaluator, and keeps what the CUDA
backend would render for each chain (:func:`gpugrad.fusion.cuda.kernels_of`).

``python -m gpugrad.fusion.aot GEN_DIR`` (CMake's configure step, after
``python -m gpugrad.backends.cuda_codegen GEN_DIR``) writes them as ``fused_<e|r>0.cu`` units
(compiled by nvcc into fatbins) and ``emu_fused_*.cpp`` (their host builds in libgg_emu.so, for
the emulated device), and adds them to ``manifest.json`` and ``emu_index.json``: the CuPy
backend then loads them from the fatbins by name and source hash, and a step of those workloads
compiles nothing at run time, from its first step on. Any other chain is compiled at run time
and recorded on disk (:mod:`gpugrad.fusion.cuda`), as before.

Example::

    kernels = collect(["chain"], models={})    # kernel name -> standalone source
    len(kernels)                               # 4: forward and backward, layouts 'c' and 's'
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gpugrad.backends import cuda_codegen as cg

# The workloads of `gpugrad bench --device cuda` whose fused kernels the build holds: every
# registered one (None), each at its smallest case per dtype (the sizes do not change a kernel).
WORKLOADS: tuple[str, ...] | None = None
# The `gpugrad train` models whose training steps' kernels the build holds too, with the config
# overrides that make a step cheap here (smaller sizes: the same chains). Not the LSTM: each time
# step of its unrolled loop makes chains of its own (about 300 kernels for one step).
TRAIN_MODELS: dict[str, dict] = {"mlp": {}, "cnn": {}, "gpt": {"gpt": {"block_size": 16, "n_embd": 32, "n_layer": 2}}}
SEED = 0
UNITS = 1  # translation units per kind (nvcc start-up dominates a unit of a few dozen small kernels)
SMALL = 16  # sizes above this are cut (the chains and their kernels stay the same)


def _ints(value: Any) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, tuple):
        return [i for v in value for i in _ints(v)]
    return []


def _shrunk(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with every integer above :data:`SMALL` replaced, in order, by 24, 32, 40, ...:
    sizes stay distinct and ordered (no broadcast appears that the real sizes lack) and
    multiples of 8 (head counts, strides and pools still divide them)."""
    big = sorted({i for v in params.values() for i in _ints(v) if i > SMALL})
    to = {v: SMALL + 8 * (k + 1) for k, v in enumerate(big)}

    def cut(value: Any) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return to.get(value, value)
        if isinstance(value, tuple):
            return tuple(cut(v) for v in value)
        return value

    return {k: cut(v) for k, v in params.items()}


@contextlib.contextmanager
def _recording(found: dict[str, str]) -> Iterator[None]:
    """Within: every chain the fusion compiler runs on the CPU adds its CUDA kernels to ``found``.
    Chains form as on CUDA: every chain is compiled (one op or many, whatever its size), nothing
    is learned to run at once, and ``x op= pending`` joins the pending chain."""
    from gpugrad.autograd.state import STATE
    from gpugrad.fusion import cuda, host, kernels, lazy, run
    from gpugrad.ops import index

    saved = (run.forward, run.backward, kernels._worth_compiling_on_cpu, host.Settings.enabled, STATE.fusion,
             index.FUSE_INTO_ON_CPU, lazy.VALUE_AND_GRAD)

    def forward(chain, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        found.update(cuda.kernels_of(chain, None, None))
        return saved[0](chain, *args, **kwargs)

    def backward(chain, grads_in, needs, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        found.update(cuda.kernels_of(chain, tuple(g is not None for g in grads_in), tuple(bool(x) for x in needs)))
        return saved[1](chain, grads_in, needs, *args, **kwargs)

    run.forward, run.backward = forward, backward
    index.FUSE_INTO_ON_CPU = True  # ``x op= pending`` joins its chain, as on CUDA
    kernels._worth_compiling_on_cpu = lambda program: True  # as on CUDA: every chain, one op or many
    host.Settings.enabled = False  # the NumPy evaluator: no host compiler runs here
    STATE.fusion = True  # (whatever GPUGRAD_FUSION says)
    lazy.VALUE_AND_GRAD = False  # a loss's value and gradients in one pass is the CPU's alone
    # Programs seen before were decided under other settings (a small chain not worth compiling
    # on the CPU), and ops the CPU learned to run at once do not wait on CUDA; the programs made
    # here run compiled whatever their size: nothing crosses over either way.
    programs, eager = dict(lazy._PROGRAMS), dict(lazy._EAGER)
    lazy._PROGRAMS.clear()
    lazy._EAGER.clear()
    try:
        yield
    finally:
        lazy._PROGRAMS.clear()
        lazy._PROGRAMS.update(programs)
        lazy._EAGER.clear()
        lazy._EAGER.update(eager)
        (run.forward, run.backward, kernels._worth_compiling_on_cpu, host.Settings.enabled, STATE.fusion,
         index.FUSE_INTO_ON_CPU, lazy.VALUE_AND_GRAD) = saved


def cases(names: list[str] | tuple[str, ...] | None = None) -> list:
    """The (workload, case) pairs whose chains :func:`collect` records: every case of a
    ``gpugrad bench --device cuda`` run, quick or not, with its sizes cut (:func:`_shrunk`)
    (cases that differ only in size are one)."""
    from gpugrad.bench import runner

    if names is not None and not names:
        return []
    seen: dict[tuple, tuple] = {}
    for quick in (True, False):
        settings = runner.Settings(device="cuda", quick=quick, only=list(names) if names else None, seed=SEED)
        settings.gpu, settings.emulated = True, False
        for w, case in runner.select(settings):
            case = dataclasses.replace(case, params=_shrunk(case.params))
            seen.setdefault((w.name, case.dtype, repr(sorted(case.params.items()))), (w, case))
    return list(seen.values())


class _StopAfter:
    """Stands for train_epoch's interrupt flag: stop after ``n`` steps."""

    def __init__(self, n: int) -> None:
        self.n = n

    def agreed(self) -> bool:
        self.n -= 1
        return self.n <= 0


def _train_steps(model: str, overrides: dict, steps: int) -> None:
    """``steps`` steps of ``gpugrad train --model <model>`` on the CPU (loss, backward, clipping,
    optimiser and schedule: train_epoch itself)."""
    from gpugrad.cli import train as T

    cfg = T.TrainConfig.from_options(model, device="cpu", epochs=1, progress=False, seed=SEED, **overrides)
    run, *_ = T.build_run(cfg, "cpu", None)
    run.model.train()
    T.train_epoch(run, 0, 0, T._fresh_running(), _StopAfter(steps), None, T._progress_factory(False))


def collect(names: list[str] | tuple[str, ...] | None = WORKLOADS, steps: int = 2,
            models: dict[str, dict] | None = None) -> dict[str, str]:
    """Kernel name -> standalone source of every fused kernel that ``steps`` gpugrad steps of the
    named bench workloads (all when None) and training steps of ``models`` (model -> config
    overrides; :data:`TRAIN_MODELS` when None) make on CUDA, in a deterministic order."""
    from gpugrad.bench import runner
    from gpugrad.bench.env import Env
    from gpugrad.data.digits import MissingDependency

    found: dict[str, str] = {}
    env = Env("cpu")
    settings = runner.Settings(device="cpu", quick=True, seed=SEED)
    with _recording(found), np.errstate(all="ignore"):
        for w, case in cases(names):
            if "gpugrad" not in w.builders or w.gpugrad_reason():
                continue
            ins = runner.make_inputs(w, case, settings)
            impl = w.builders["gpugrad"](case, env, ins)
            for k in range(steps):
                impl.step(k % len(ins.sets))
            del impl, ins
        for model, overrides in (TRAIN_MODELS if models is None else models).items():
            try:
                _train_steps(model, overrides, steps)
            except MissingDependency as exc:  # (the digits need scikit-learn): compiled at run time
                print(f"gpugrad: the {model} training step's fused kernels are not built ahead of time: {exc}",
                      file=sys.stderr)
    return dict(sorted(found.items()))


def _reduces(src: str) -> bool:
    return "__syncthreads" in src or "__shared__" in src


def write_units(kernels: dict[str, str], gen_dir: str | Path) -> dict[str, list[str]]:
    """Write ``kernels`` into ``gen_dir`` as ``fused_<k>.cu`` units and their host builds
    ``emu_fused_<k>.cpp``, and add them to ``manifest.json`` and ``emu_index.json`` there (which
    ``python -m gpugrad.backends.cuda_codegen`` wrote). Returns unit -> kernel names."""
    gen = Path(gen_dir)
    units: dict[str, list[str]] = {}
    # kernels that synchronise threads (a fused reduction) are emulated with concurrent threads
    for kind, sync in (("r", True), ("e", False)):
        names = [n for n, s in kernels.items() if _reduces(s) == sync]
        per = -(-len(names) // UNITS) if names else 0
        for k in range(UNITS):
            chunk = names[k * per:(k + 1) * per]
            if chunk:
                units[f"fused_{kind}{k}"] = chunk
    manifest = json.loads((gen / "manifest.json").read_text())
    emu = json.loads((gen / "emu_index.json").read_text())
    # (entries of an earlier run of this step go: the list is rebuilt)
    manifest["units"] = [u for u in manifest["units"] if not u.startswith("fused_")]
    manifest["kernels"] = {k: e for k, e in manifest["kernels"].items() if not e["unit"].startswith("fused_")}
    emu["fatbins"] = {u: e for u, e in emu["fatbins"].items() if not u.startswith("fused_")}
    emu["modules"] = {h: e for h, e in emu["modules"].items() if not e["kernels"][0].startswith("gg_fz_")}
    wanted = set()
    for unit, names in units.items():
        body = "".join(kernels[n].split("\n", 1)[1] for n in names)
        _write_if_changed(gen / f"{unit}.cu", '#include "gg_elementwise.cuh"\n' + body)
        _write_if_changed(gen / f"emu_{unit}.cpp", cg._emu_unit(f"{unit}.cu", names, threads=unit[6] == "r"))
        wanted |= {f"{unit}.cu", f"emu_{unit}.cpp"}
        manifest["units"].append(unit)
        emu["fatbins"][unit] = {"lib": "libgg_emu.so", "kernels": names}
        for n in names:
            manifest["kernels"][n] = {"unit": unit, "hash": cg.source_hash(kernels[n])}
            sha = hashlib.sha256(cg.runtime_code(kernels[n]).encode()).hexdigest()
            emu["modules"][sha] = {"lib": "libgg_emu.so", "kernels": [n]}
    for stale in [*gen.glob("fused_*.cu"), *gen.glob("emu_fused_*.cpp")]:
        if stale.name not in wanted:  # a chain no workload makes any more
            stale.unlink()
    _write_if_changed(gen / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True))
    _write_if_changed(gen / "emu_index.json", json.dumps(emu, indent=0, sort_keys=True))
    return units


def _write_if_changed(path: Path, text: str) -> None:
    # unchanged files keep their timestamps: a re-run of CMake's configure step recompiles nothing
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    """``python -m gpugrad.fusion.aot GEN_DIR [--recorded]``: add the workloads' fused kernels to
    the build; ``--recorded`` adds every fused kernel this machine's runs have recorded too
    (:func:`gpugrad.fusion.cuda.recorded`: CMake's ``-DGPUGRAD_AOT_RECORDED=ON``)."""
    argv = sys.argv[1:] if argv is None else argv
    args = [a for a in argv if a != "--recorded"]
    if len(args) != 1 or len(argv) - len(args) > 1:
        print("usage: python -m gpugrad.fusion.aot GEN_DIR [--recorded] (after python -m gpugrad.backends.cuda_codegen "
              "GEN_DIR)", file=sys.stderr)
        return 2
    kernels = collect()
    if "--recorded" in argv:
        from gpugrad.fusion import cuda

        kernels = dict(sorted({**cuda.recorded(), **kernels}.items()))
    units = write_units(kernels, args[0])
    print(f"gpugrad: wrote {len(kernels)} fused kernels in {len(units)} units to {args[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
