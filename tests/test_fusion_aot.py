"""Fused chains ahead of time (gpugrad.fusion.aot): the CMake build holds the CUDA kernels of the
chains the `gpugrad bench` workloads make, so that their steps on CUDA compile nothing at run
time, from the first step on; every such source compiles with NVRTC alone, as CuPy would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gpugrad.backends import cuda_codegen as cg
from gpugrad.fusion import aot
from gpugrad.testing.cuda_emulator import nvrtc

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def kernels() -> dict[str, str]:
    return aot.collect()


def test_the_list_holds_each_workloads_fused_kernels(kernels) -> None:
    assert list(kernels) == sorted(kernels)  # the same order on every run (CMake re-runs it)
    assert all(n.startswith("gg_fz_") and f"void {n}(" in s for n, s in kernels.items())
    # each chain forward and backward, each in the contiguous and the strided layout
    assert {n[-3:] for n in kernels} == {"f_c", "f_s", "b_c", "b_s"}
    chain = aot.collect(["chain"], models={})  # the 100-op chain: one chain, one kernel each way and layout
    assert len(chain) == 4 and set(chain) <= set(kernels)
    assert len(aot.collect(["mlp"], models={})) >= 4
    assert set(aot.collect((), models={"mlp": {}})) <= set(kernels)


def test_sizes_are_cut_in_order_and_stay_multiples_of_eight() -> None:
    got = aot._shrunk({"batch": 16, "T": 128, "D": 256, "H": 4, "dims": (784, 1024, 1024, 10), "op": "sum"})
    assert got == {"batch": 16, "T": 24, "D": 32, "H": 4, "dims": (40, 48, 48, 10), "op": "sum"}


def test_units_manifest_and_emulator_index(tmp_path, kernels) -> None:
    gen = tmp_path / "gen"
    cg.write_sources(gen)
    (gen / "fused_e9.cu").write_text("// a unit of an earlier list\n")
    units = aot.write_units(kernels, gen)
    assert not (gen / "fused_e9.cu").exists()
    manifest = json.loads((gen / "manifest.json").read_text())
    emu = json.loads((gen / "emu_index.json").read_text())
    assert sorted(n for names in units.values() for n in names) == sorted(kernels)
    for unit, names in units.items():
        text = (gen / f"{unit}.cu").read_text()
        assert unit in manifest["units"] and emu["fatbins"][unit]["kernels"] == names
        emu_unit = (gen / f"emu_{unit}.cpp").read_text()
        for n in names:
            assert f"void {n}(" in text
            # the backend loads the fatbin's kernel only when it would compile this very source
            assert manifest["kernels"][n] == {"unit": unit, "hash": cg.source_hash(kernels[n])}
            # kernels with a barrier (a fused reduction) run their threads concurrently when emulated
            assert (f"GG_EMU_EXPORT({n})" in emu_unit) == ("__syncthreads" in kernels[n] or "__shared__" in kernels[n])
    before = {p.name: p.stat().st_mtime_ns for p in gen.iterdir()}
    aot.write_units(kernels, gen)  # a re-run rewrites nothing (nvcc recompiles nothing)
    assert {p.name: p.stat().st_mtime_ns for p in gen.iterdir()} == before


def test_every_ahead_of_time_fused_kernel_compiles_with_nvrtc_alone(kernels) -> None:
    if nvrtc.library() is None:
        if os.environ.get("GPUGRAD_REQUIRE_NVRTC"):
            raise RuntimeError("GPUGRAD_REQUIRE_NVRTC is set but NVRTC was not found (pip install nvidia-cuda-nvrtc)")
        pytest.skip("NVRTC is not installed (pip install nvidia-cuda-nvrtc; the test extra has it)")
    # each source as the backend hands it to RawModule, with CuPy's options, to PTX
    opts = nvrtc.cupy_options(cg.runtime_options(), "75")
    opts = tuple("-arch=compute_75" if o.startswith("-arch=") else o for o in opts)
    failed = []
    for name, src in kernels.items():
        ok, log = nvrtc.compile_source(cg.runtime_code(src), opts)
        if not ok:
            failed.append(f"{name}:\n{log[:2000]}")
    assert not failed, "\n".join(failed)


# One gpugrad step of a bench workload (or "train:<model>": of `gpugrad train`), from a fresh
# process's first step, on the emulated device: what the device counted, what the backend loaded
# and compiled, and the step's outputs.
_STEP = r"""
import json, sys
import numpy as np
import gpugrad as gg
from gpugrad.backends import backend_for

what = sys.argv[1]
if what.startswith("train:"):
    from gpugrad.cli import train as T
    from gpugrad.fusion.aot import _StopAfter

    cfg = T.TrainConfig.from_options(what[6:], device="cuda", epochs=1, progress=False)
    run, *_ = T.build_run(cfg, "cuda:0", None)
    gg.cuda.reset_counters()
    T.train_epoch(run, 0, 0, T._fresh_running(), _StopAfter(1), None, T._progress_factory(False))
    outputs = {k: v.numpy() for k, v in run.model.state_dict().items()}
else:
    from gpugrad.bench import Settings, select
    from gpugrad.bench.env import Env
    from gpugrad.bench.runner import make_inputs

    settings = Settings(device="cuda", quick=False, only=[what])
    settings.gpu = settings.emulated = True
    (w, case), = select(settings)
    ins = make_inputs(w, case, settings)
    impl = w.builders["gpugrad"](case, Env("cuda:0"), ins)
    gg.cuda.reset_counters()
    impl.step(0)
    outputs = impl.outputs()
B = backend_for("cuda:0")
print(json.dumps({"counters": gg.cuda.counters(), "aot_loaded": B.aot_loaded, "runtime_compiled": B.runtime_compiled,
                  "outputs": {k: np.asarray(v, dtype=np.float64).tolist() for k, v in outputs.items()}}))
"""


def _first_step(workload: str, kernels_dir: Path, aot_dir: str) -> dict:
    env = dict(os.environ, GPUGRAD_CUDA_EMULATOR=str(kernels_dir), GPUGRAD_AOT_DIR=aot_dir,
               GPUGRAD_FUSION_CUDA="1", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", _STEP, workload], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.gpu
@pytest.mark.parametrize("workload", ["chain", "mlp", "train:mlp"])
def test_a_bench_step_compiles_nothing_from_its_first_step(workload) -> None:
    from tests.conftest import GPU_DEVICE

    if GPU_DEVICE["kind"] != "emulated":
        pytest.skip("counts compilations on the emulated device")
    built = Path(os.environ.get("GPUGRAD_HOST_LIB_DIR") or ROOT / "build" / "kernels")
    if not any(built.glob("fused_*.fatbin")) or not (built / "libgg_emu.so").is_file():
        pytest.skip("no CMake build of the kernels with nvcc: run `cmake -S . -B build && cmake --build build -j2`")
    ahead = _first_step(workload, built, str(built))
    assert ahead["counters"]["compilations"] == 0, ahead["counters"]
    assert ahead["runtime_compiled"] == 0 and ahead["aot_loaded"] > 0
    # without the ahead-of-time build the same kernels are compiled at run time, same values
    jit = _first_step(workload, built, "")
    assert jit["aot_loaded"] == 0 and jit["runtime_compiled"] > 0 and jit["counters"]["compilations"] > 0
    assert jit["counters"]["launches"] == ahead["counters"]["launches"]
    for k, v in ahead["outputs"].items():
        np.testing.assert_allclose(jit["outputs"][k], v, rtol=1e-6, atol=1e-7, err_msg=k)


def test_recorded_kernels_join_the_build_when_asked(tmp_path, monkeypatch, kernels) -> None:
    from gpugrad import fusion
    from gpugrad.fusion import cuda
    from gpugrad.ops.elementwise import OPS

    monkeypatch.setenv("GPUGRAD_FUSION_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(aot, "collect", lambda: dict(kernels))
    c = fusion.Chain()
    c.output(c.apply(OPS["cos"], [c.leaf(np.zeros(3, np.float64))]))
    mine = cuda.kernels_for([(c, None, None)])  # what a run on CUDA records
    gen = tmp_path / "gen"
    cg.write_sources(gen)
    assert aot.main([str(gen)]) == 0
    listed = json.loads((gen / "manifest.json").read_text())["kernels"]
    assert not set(mine) & set(listed) and set(kernels) <= set(listed)
    assert aot.main([str(gen), "--recorded"]) == 0
    listed = json.loads((gen / "manifest.json").read_text())["kernels"]
    assert set(mine) | set(kernels) <= set(listed)
    assert aot.main([]) == 2
