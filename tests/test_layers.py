"""The layers of gpugrad import downward only (docs/ARCHITECTURE.md, "The layout").

Each layer is imported in a fresh interpreter and the gpugrad modules it loaded are checked:
the table is a leaf, the backends (code generator included) load neither the ops, the tensor,
nor anything above them, and ``import gpugrad`` itself loads nothing until a public name is
used. A static check reads every backend module's imports (including those inside functions).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "gpugrad"
ABOVE_BACKENDS = ("gpugrad.ops", "gpugrad.tensor", "gpugrad.factories", "gpugrad.autograd", "gpugrad.nn",
                  "gpugrad.optim", "gpugrad.io", "gpugrad.numpy", "gpugrad.fusion", "gpugrad.cli", "gpugrad.bench")


def loaded_after(code: str, emulator: bool = False) -> set[str]:
    """The gpugrad modules (and whether CuPy) a fresh interpreter has loaded after ``code``."""
    env = {k: v for k, v in os.environ.items() if k != "GPUGRAD_CUDA_EMULATOR"}
    if emulator:
        env["GPUGRAD_CUDA_EMULATOR"] = "1"
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(n for n in sys.modules " \
            "if n.split('.')[0] in ('gpugrad', 'cupy', 'cupyx'))))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def _under(mods: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in mods if m in prefixes or m.startswith(tuple(p + "." for p in prefixes)))


def test_the_table_is_a_leaf() -> None:
    mods = loaded_after("import gpugrad.table.elementwise, gpugrad.table.optim, gpugrad.table.expr")
    assert mods - {"gpugrad"} == {m for m in mods if m.startswith("gpugrad.table")}


@pytest.mark.parametrize("module", ["gpugrad.backends.cuda_codegen", "gpugrad.backends.numpy_backend",
                                    "gpugrad.backends.cuda", "gpugrad.backends.portable"])
def test_backends_load_nothing_above_them(module: str) -> None:
    mods = loaded_after(f"import {module}")
    assert _under(mods, ABOVE_BACKENDS) == []
    assert _under(mods, ("cupy", "cupyx")) == []  # CuPy is imported when a GPU is first used


def test_the_code_generator_runs_on_the_table_and_backends_only(tmp_path: Path) -> None:
    # what CMake runs (python -m gpugrad.backends.cuda_codegen build/gen), stopped before writing
    mods = loaded_after("import runpy, sys\nsys.argv = ['cuda_codegen']\n"
                        "try:\n    runpy.run_module('gpugrad.backends.cuda_codegen', run_name='__main__')\n"
                        "except SystemExit:\n    pass\n"
                        "from gpugrad.backends import cuda_codegen as cg\n"
                        "from gpugrad.table.elementwise import TABLE\n"
                        "cg.all_kernels(TABLE['tanh'], 'float32')")
    assert _under(mods, ABOVE_BACKENDS) == []
    assert mods <= {"gpugrad", "gpugrad.errors"} | {m for m in mods if m.startswith(("gpugrad.table",
                                                                                        "gpugrad.backends"))}


def test_ops_and_the_engine_load_no_layer_above_them() -> None:
    mods = loaded_after("import gpugrad.ops, gpugrad.autograd.engine, gpugrad.autograd.functional")
    assert _under(mods, ("gpugrad.nn", "gpugrad.optim", "gpugrad.cli", "gpugrad.bench", "gpugrad.models",
                         "gpugrad.data", "gpugrad.distributed", "gpugrad.utils")) == []


def test_nn_and_optim_load_no_layer_above_them() -> None:
    mods = loaded_after("import gpugrad.nn, gpugrad.optim")
    assert _under(mods, ("gpugrad.cli", "gpugrad.bench", "gpugrad.models", "gpugrad.data")) == []


def test_the_cli_entry_point_loads_its_subcommands_lazily() -> None:
    mods = loaded_after("import gpugrad.cli.main")
    assert _under(mods, ("gpugrad.nn", "gpugrad.optim", "gpugrad.ops", "gpugrad.tensor", "gpugrad.bench")) == []


def test_import_gpugrad_loads_public_names_on_first_use() -> None:
    assert loaded_after("import gpugrad") == {"gpugrad"}
    mods = loaded_after("import gpugrad as gg\ngg.tensor([1.0])")
    assert "gpugrad.factories" in mods and "gpugrad.nn" not in mods


def test_the_emulator_switch_still_comes_first() -> None:
    """GPUGRAD_CUDA_EMULATOR is read at ``import gpugrad``, whatever layer is imported first."""
    code = ("import gpugrad.backends.cuda_codegen\nfrom gpugrad.testing import cuda_emulator\n"
            "assert cuda_emulator.is_enabled()")
    mods = loaded_after(code, emulator=True)
    assert _under(mods, ABOVE_BACKENDS) == []


def test_the_lazy_package_behaves_like_an_eager_one() -> None:
    code = """
from gpugrad.nn import Linear            # loads the submodule gpugrad.tensor before gpugrad.tensor() is asked for
import gpugrad as gg
import gpugrad.tensor
assert callable(gg.tensor) and gg.tensor([1.0]).shape == (1,), gg.tensor
from gpugrad import Tensor, relu, nn, float32
assert isinstance(gg.ones(2), Tensor) and gg.nn is nn and float32 == gg.float32
assert set(gg.__all__) <= set(dir(gg)) and {"tensor", "nn", "optim", "cuda", "Tensor"} <= set(gg.__all__)
try:
    gg.no_such_name
except AttributeError as exc:
    assert "no_such_name" in str(exc)
else:
    raise AssertionError("no AttributeError")
"""
    loaded_after(code)


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports, at the top or inside functions (absolute names)."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            out += [base] + [f"{base}.{a.name}" for a in node.names]
    return out


def test_no_backend_module_imports_the_layers_above() -> None:
    bad = {}
    for path in sorted((PKG / "backends").rglob("*.py")):
        found = [m for m in _imports(path) if m.startswith(("gpugrad.ops", "gpugrad.tensor", "gpugrad.factories",
                                                             "gpugrad.autograd", "gpugrad.nn", "gpugrad.optim"))]
        if found:
            bad[str(path.relative_to(ROOT))] = found
    assert bad == {}


def test_the_table_imports_nothing_from_gpugrad_but_itself() -> None:
    bad = {}
    for path in sorted((PKG / "table").rglob("*.py")):
        found = [m for m in _imports(path) if m.startswith("gpugrad") and not m.startswith("gpugrad.table")]
        if found:
            bad[str(path.relative_to(ROOT))] = found
    assert bad == {}
