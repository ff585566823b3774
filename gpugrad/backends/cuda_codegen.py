"""CUDA source generation from the op table (no CuPy, no GPU needed).

Every elementwise op is declared once, as expressions (:mod:`gpugrad.table.elementwise`). This
module renders those expressions into CUDA C++ on the template in ``kernels/gg_elementwise.cuh``:

* element functions ``gg_ew_<op>_fwd`` (the value) and ``gg_ew_<op>_d<i>`` (``g`` times the
  partial derivative with respect to input ``i``), ``__host__ __device__`` so that the same text
  is compiled into kernels and into the host library that CI tests against NumPy;
* kernels, one per variant: ``gg_<op>_<dt>_f_<pattern>_<layout>`` computes the forward value,
  ``gg_<op>_<dt>_b<mask>_<pattern>_<layout>`` the whole backward of the inputs in ``mask`` in one
  pass (reading g, the inputs and the output once, writing or accumulating each gradient once).

The CuPy backend renders a variant when it first needs it (and compiles it with NVRTC, or loads
it from the ahead-of-time build when that holds the same source); ``python -m
gpugrad.backends.cuda_codegen DIR`` writes every variant, grouped into a few translation units,
for CMake to compile with nvcc, plus the host-library sources and a manifest.

Example::

    from gpugrad.table.elementwise import TABLE
    name, src = forward_kernel(TABLE["tanh"], "float32", "a", "c")
    name                      # 'gg_tanh_f32_f_a_c'
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

from gpugrad.table import expr as E

FLOAT_DTYPES = ("float16", "float32", "float64")
SUFFIX = {"float16": "f16", "float32": "f32", "float64": "f64"}
STORAGE = {"float16": "gg_half", "float32": "float", "float64": "double"}
COMPUTE = {"float16": "float", "float32": "float", "float64": "double"}
LAYOUTS = ("c", "s")
HEADERS = ("gg_common.cuh", "gg_math.cuh", "gg_elementwise.cuh")
MAXDIM = 6  # GG_MAXDIM in gg_elementwise.cuh
MAXOPS = 6  # GG_MAXOPS

# Hand-written kernels (kernels/*.cu): source file -> kernel names (without the dtype suffix)
# and the dtype suffixes each is instantiated for. The CuPy backend launches them by these
# names; the host-emulation build exports them under the same names.
HANDWRITTEN: dict[str, dict[str, tuple[str, ...]]] = {
    "reduce.cu": {
        "gg_sum_rows": ("f16_f16", "f16_f32", "f32_f16", "f32_f32", "f64_f64"),
        "gg_sum_cols": ("f16_f16", "f16_f32", "f32_f16", "f32_f32", "f64_f64"),
    },
    "softmax.cu": {
        "gg_softmax_rows": ("f16", "f32", "f64"),
        "gg_softmax_cols": ("f16", "f32", "f64"),
        "gg_softmax_bwd_rows": ("f16", "f32", "f64"),
        "gg_softmax_bwd_cols": ("f16", "f32", "f64"),
    },
    "cross_entropy.cu": {
        "gg_ce_fwd_rows": ("f16", "f32", "f64"),
        "gg_ce_finish": ("f16", "f32", "f64"),
        "gg_ce_bwd_rows": ("f16", "f32", "f64"),
    },
    "scatter.cu": {
        "gg_index_add": ("f16", "f32", "f64"),
    },
    "layer_norm.cu": {
        "gg_ln_fwd_rows": ("f16", "f32", "f64"),
        "gg_ln_bwd_rows": ("f16", "f32", "f64"),
        "gg_ln_bwd_params": ("f16", "f32", "f64"),
    },
}
# Options the CUDA backend compiles with (CuPy's RawModule adds its own, see
# gpugrad.testing.cuda_emulator.nvrtc.cupy_options); the ahead-of-time build uses the same
# language standard and, like CuPy's NVRTC, flushes float32 denormals (-ftz=true).
NVRTC_STD = "-std=c++17"


def kernels_dir() -> Path:
    """The folder holding the CUDA sources: ``kernels/`` at the top of the source checkout this
    gpugrad comes from, else the installed ``gpugrad.kernels`` package data (an editable install
    of another checkout must not lend its sources to this one)."""
    local = Path(__file__).resolve().parents[2] / "kernels"
    if (local / "gg_common.cuh").is_file():
        return local
    try:
        from importlib.resources import files

        path = Path(str(files("gpugrad.kernels")))
        if (path / "gg_common.cuh").is_file():
            return path
    except (ImportError, ModuleNotFoundError, TypeError):
        pass
    return local


@cache
def headers_text() -> str:
    """The elementwise template headers, concatenated (part of every kernel's identity)."""
    d = kernels_dir()
    return "".join((d / h).read_text() for h in HEADERS)


@cache
def handwritten_source(filename: str) -> str:
    return (kernels_dir() / filename).read_text()


def runtime_code(source: str) -> str:
    """The text the CUDA backend hands to ``cupy.RawModule(code=...)`` for ``source``: CuPy's
    compile cache keys on the text, not on the headers it includes, so their hash leads it."""
    return f"// gpugrad headers {source_hash('', True)}\n{source}"


def runtime_options() -> tuple[str, ...]:
    return (NVRTC_STD, f"-I{kernels_dir()}")


def source_hash(text: str, with_headers: bool = True) -> str:
    """Identity of a kernel source: the ahead-of-time build is used only when this matches."""
    h = hashlib.sha256()
    if with_headers:
        h.update(headers_text().encode())
    h.update(text.encode())
    return h.hexdigest()[:24]


# ---------------------------------------------------------------------------------------------
# element functions


def _is_flag_input(op: Any, k: int) -> bool:
    """Inputs outside ``dtype_from`` (where's condition) are stored as bool."""
    return op.dtype_from is not None and k not in op.dtype_from


def storage_of_input(op: Any, k: int, dt: str) -> str:
    return "bool" if _is_flag_input(op, k) else STORAGE[dt]


def storage_of_output(op: Any, dt: str) -> str:
    return "bool" if op.kind == "bool" else STORAGE[dt]


def kernel_inputs(op: Any) -> list[int]:
    """Inputs whose gradient a kernel computes (those with a derivative that is not 0)."""
    return [k for k, name in enumerate(op.inputs) if name in op.d and op.d[name].constant != 0.0]


@cache
def _element_functions(op: Any) -> str:
    params = [f"C {p}" for p in op.param_names]
    ins = [f"C {n}" for n in op.inputs]
    ret = "bool" if op.kind == "bool" else "C"
    lines = [f"// {op.name}: out = {op.out_expr.source}"]
    sig = ", ".join(ins + params)
    lines.append(f"template <class C> GG_HD {ret} gg_ew_{op.name}_fwd({sig}) {{ return {E.to_c(op.out_expr)}; }}")
    for k in kernel_inputs(op):
        name = op.inputs[k]
        body = E.to_c(E.times("_g", op.d[name]))
        sig = ", ".join(["C _g", *ins, "C out", *params])
        lines.append(f"//   d/d{name} = {op.d[name].source}")
        lines.append(f"template <class C> GG_HD C gg_ew_{op.name}_d{k}({sig}) {{ return {body}; }}")
    return "\n".join(lines) + "\n"


def element_functions(op: Any) -> str:
    """C++ source of the op's element functions (templates over the compute type ``C``)."""
    return _element_functions(op)


# ---------------------------------------------------------------------------------------------
# kernels


def forward_name(op: Any, dt: str, pattern: str, layout: str) -> str:
    return f"gg_{op.name}_{SUFFIX[dt]}_f_{pattern}_{layout}"


def backward_name(op: Any, dt: str, mask: tuple[int, ...], pattern: str, layout: str) -> str:
    bits = "".join("1" if k in mask else "0" for k in range(len(op.inputs)))
    return f"gg_{op.name}_{SUFFIX[dt]}_b{bits}_{pattern}_{layout}"


class _Body:
    """Collects a kernel's parameters, per-lane loads (phase 1) and computations (phase 2)."""

    def __init__(self, layout: str, compute: str) -> None:
        self.layout = layout
        self.c = compute
        self.params = ["const gg_index n"] + (["const gg_geom geom"] if layout == "s" else [])
        self.arrays: list[str] = []  # per-lane register arrays
        self.loads: list[str] = []
        self.n_ops = 0

    def array(self, ptr: str, storage: str, var: str) -> None:
        self.params.append(f"const {storage}* __restrict__ {ptr}")
        if self.layout == "c":
            self.params.append(f"const gg_index inc_{ptr}")
            index = f"i * inc_{ptr}"
        else:
            index = f"off[{self.n_ops}]"
        self.n_ops += 1
        self.arrays.append(var)
        self.loads.append(f"{var}[_u] = gg_in({ptr}, {index});")

    def value(self, var: str) -> str:
        return f"{var}[_u]" if var in self.arrays else var

    def render(self, name: str, prelude: list[str], compute: list[str]) -> str:
        c = self.c
        offs = ""
        if self.layout == "s":
            offs = f"gg_index off[{self.n_ops}]; gg_offsets<{self.n_ops}>(geom, i, off); "
        lines = [f'extern "C" __global__ void {name}({", ".join(self.params)}) {{']
        lines += [f"    {p}" for p in prelude]
        lines.append("    GG_TILES(n) {")
        lines.append(f"        {c} {', '.join(f'{v}[GG_UNROLL]' for v in self.arrays)};")
        lines.append(f"        GG_LANES(i, n) {{ {offs}{' '.join(self.loads)} }}")
        lines.append(f"        GG_LANES(i, n) {{ {' '.join(compute)} }}")
        lines.append("    }")
        lines.append("}")
        return "\n".join(lines) + "\n"


def forward_kernel(op: Any, dt: str, pattern: str, layout: str) -> tuple[str, str]:
    """(name, source) of the forward kernel; ``pattern`` has 'a' (array) or 's' (scalar) per input."""
    name = forward_name(op, dt, pattern, layout)
    c = COMPUTE[dt]
    body = _Body(layout, c)
    prelude = []
    for k, p in enumerate(pattern):
        if p == "a":
            body.array(f"in{k}", storage_of_input(op, k, dt), f"v{k}")
        else:
            body.params.append(f"const {c} v{k}")
    body.params += [f"const {c} p_{p}" for p in op.param_names]
    body.params.append(f"{storage_of_output(op, dt)}* __restrict__ out")
    args = ", ".join([body.value(f"v{k}") for k in range(len(pattern))] + [f"p_{p}" for p in op.param_names])
    return name, body.render(name, prelude, [f"gg_out(out, i, gg_ew_{op.name}_fwd<{c}>({args}));"])


def backward_uses(op: Any, mask: tuple[int, ...]) -> tuple[set[str], bool]:
    """The input names and whether ``out`` are read by the derivatives of the inputs in ``mask``."""
    used: set[str] = set()
    for k in mask:
        used |= op.d[op.inputs[k]].names
    return used & set(op.inputs), "out" in used


def backward_kernel(op: Any, dt: str, mask: tuple[int, ...], pattern: str, layout: str) -> tuple[str, str]:
    """(name, source) of the fused backward kernel for the inputs in ``mask``.

    ``pattern`` has per input 'a' (read from an array), 's' (a scalar) or 'x' (not read).
    Gradient k is written, or added to when ``acc<k>`` is non-zero.
    """
    name = backward_name(op, dt, mask, pattern, layout)
    s = STORAGE[dt]
    c = COMPUTE[dt]
    _, uses_out = backward_uses(op, mask)
    body = _Body(layout, c)
    prelude = []
    body.array("gp", s, "vg")
    for k, p in enumerate(pattern):
        if p == "a":
            body.array(f"in{k}", storage_of_input(op, k, dt), f"v{k}")
        elif p == "s":
            body.params.append(f"const {c} v{k}")
        else:
            prelude.append(f"const {c} v{k} = {c}(0);")
    if uses_out:
        body.array("outp", s, "vout")
    else:
        prelude.append(f"const {c} vout = {c}(0);")
    body.params += [f"const {c} p_{p}" for p in op.param_names]
    args = ", ".join([body.value("vg"), *[body.value(f"v{k}") for k in range(len(pattern))], body.value("vout"),
                      *[f"p_{p}" for p in op.param_names]])
    compute = []
    for k in mask:
        body.params.append(f"{s}* __restrict__ gr{k}")
        body.params.append(f"const int acc{k}")
        compute.append(f"{c} r{k} = gg_ew_{op.name}_d{k}<{c}>({args}); if (acc{k}) r{k} += gg_in(gr{k}, i); "
                       f"gg_out(gr{k}, i, r{k});")
    return name, body.render(name, prelude, compute)


def standalone_source(op: Any, kernel_src: str) -> str:
    """A complete translation unit for one kernel (what NVRTC compiles at run time)."""
    return '#include "gg_elementwise.cuh"\n' + element_functions(op) + kernel_src


# ---------------------------------------------------------------------------------------------
# the variant space (what the ahead-of-time build compiles)


def forward_patterns(op: Any) -> list[str]:
    pats = ["".join(p) for p in itertools.product("as", repeat=len(op.inputs))]
    return [p for p in pats if "a" in p]


def backward_variants(op: Any) -> list[tuple[tuple[int, ...], str]]:
    """Every (mask, pattern) a backward kernel can be asked for."""
    if not op.differentiable:
        return []
    ks = kernel_inputs(op)
    out = []
    for r in range(1, len(ks) + 1):
        for mask in itertools.combinations(ks, r):
            used, _ = backward_uses(op, mask)
            choices = []
            for k, name in enumerate(op.inputs):
                if name not in used:
                    choices.append("x")
                elif k in mask:
                    choices.append("a")
                else:
                    choices.append("as")
            for p in itertools.product(*choices):
                out.append((mask, "".join(p)))
    return out


def all_kernels(op: Any, dt: str) -> list[tuple[str, str]]:
    """(name, source) of every variant of ``op`` for dtype ``dt``."""
    out = []
    for layout in LAYOUTS:
        for p in forward_patterns(op):
            out.append(forward_kernel(op, dt, p, layout))
        for mask, p in backward_variants(op):
            out.append(backward_kernel(op, dt, mask, p, layout))
    return out


def _ops() -> list[Any]:
    from gpugrad.table.elementwise import TABLE

    return list(TABLE.values())


def elementwise_units(units_per_dtype: int = 4) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """Every elementwise kernel variant, grouped into translation units:
    ``(unit name, unit source, [(kernel name, the kernel's standalone source)])``."""
    ops = _ops()
    chunks = [ops[i::units_per_dtype] for i in range(units_per_dtype)]
    units = []
    for dt in FLOAT_DTYPES:
        for u, chunk in enumerate(chunks):
            parts = ['#include "gg_elementwise.cuh"\n']
            kernels = []
            for op in chunk:
                parts.append(element_functions(op))
                for kname, ksrc in all_kernels(op, dt):
                    parts.append(ksrc)
                    kernels.append((kname, standalone_source(op, ksrc)))
            units.append((f"ew_{SUFFIX[dt]}_{u}", "".join(parts), kernels))
    return units


# ---------------------------------------------------------------------------------------------
# the optimisers' update rules (gpugrad.table.optim): one multi-tensor kernel per variant


def optimizer_kernel(variant: Any, dt: str) -> tuple[str, str]:
    """(name, standalone source) of the multi-tensor kernel applying an update rule's variant to
    parameters of dtype ``dt``: element i of the concatenated parameters is element
    ``i - offsets[t]`` of tensor t (found by bisection); ``ptrs`` holds, slot by slot (param,
    grad, each state array), the device address of each tensor's array. Arithmetic is correctly
    rounded (no FMA contraction), as NumPy computes it."""
    rule = variant.rule
    name = f"gg_opt_{rule.name}_{variant.tag}_{SUFFIX[dt]}"
    P = STORAGE[dt]
    S = COMPUTE[dt] if dt != "float16" else "float"
    params = ["const long long* __restrict__ ptrs", "const long long* __restrict__ offsets",
              "const long long ntensors", "const long long total", *[f"const {S} {k}" for k in rule.scalars]]
    body = ["    typedef " + S + " C;",
            "    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;",
            "         i += (long long)gridDim.x * blockDim.x) {",
            "        long long lo = 0, hi = ntensors;",
            "        while (hi - lo > 1) { long long mid = (lo + hi) >> 1; if (offsets[mid] <= i) lo = mid; "
            "else hi = mid; }",
            "        const long long j = i - offsets[lo];",
            f"        {P}* const p_ptr = ({P}*)ptrs[lo];",
            f"        const {P}* const g_ptr = (const {P}*)ptrs[ntensors + lo];"]
    for k, st in enumerate(variant.state):
        body.append(f"        {S}* const {st}_ptr = ({S}*)ptrs[{k + 2} * ntensors + lo];")
    body += ["        C p = gg_in(p_ptr, j);", "        C g = gg_in(g_ptr, j);"]
    body += [f"        C {st} = {st}_ptr[j];" for st in variant.reads]
    declared = {"p", "g", *variant.reads}
    for st in variant.steps:
        decl = "" if st.target in declared else "C "
        declared.add(st.target)
        body.append(f"        {decl}{st.target} = {E.to_c(st.expr, exact=True)};")
    if variant.writes_param:
        body.append("        gg_out(p_ptr, j, p);")
    body += [f"        {st}_ptr[j] = {st};" for st in variant.writes]
    body.append("    }")
    src = (f"// {rule.name} ({variant.tag}): {rule.doc}\n"
           f'extern "C" __global__ void {name}({", ".join(params)}) {{\n' + "\n".join(body) + "\n}\n")
    return name, '#include "gg_math.cuh"\n' + src


def optimizer_kernels() -> list[tuple[str, str]]:
    """Every (variant, dtype) the CUDA backend can ask for."""
    from gpugrad.table.optim import RULES

    return [optimizer_kernel(v, dt) for r in RULES.values() for v in r.variants() for dt in FLOAT_DTYPES]


def write_sources(out_dir: str | Path, units_per_dtype: int = 4) -> dict:
    """Write every CUDA source the package uses into ``out_dir`` for CMake, and a manifest.

    * ``ew_<dt>_<k>.cu``: all elementwise kernel variants, in ``units_per_dtype`` translation
      units per dtype (few units: nvcc's per-unit start-up dominates small kernels);
    * ``host_ew.cpp``: the element functions behind a plain C ABI (``gg_host_<op>_fwd_<f32|f64>``,
      ``gg_host_<op>_d<i>_<f32|f64>``) for the host library;
    * ``emu_<unit>.cpp``: host-emulation builds of every kernel (elementwise and hand-written),
      exported as ``gg_emu_<kernel>(grid, block, args)`` for CPU tests of the kernel code;
    * ``manifest.json``: kernel name -> unit and source hash; the CuPy backend loads a kernel
      from the built fatbin only when the hash matches what it would compile itself;
    * ``emu_index.json``: for the emulated CUDA device, the host library holding the kernels of
      each run-time source text (by its SHA-256) and of each fatbin unit.

    Returns the manifest.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ops = _ops()
    manifest: dict[str, Any] = {"kernels": {}, "units": []}
    # For the emulated CUDA device: which host library holds the kernels of a source text the
    # backend compiles at run time (by the SHA-256 of that text) and of each fatbin unit.
    emu: dict[str, Any] = {"modules": {}, "fatbins": {}}
    emu_lib = "libgg_emu.so"
    for unit, text, kernels in elementwise_units(units_per_dtype):
        names = [k for k, _ in kernels]
        for kname, standalone in kernels:
            manifest["kernels"][kname] = {"unit": unit, "hash": source_hash(standalone)}
            emu["modules"][_sha256(runtime_code(standalone))] = {"lib": emu_lib, "kernels": [kname]}
        _write_if_changed(out / f"{unit}.cu", text)
        _write_if_changed(out / f"emu_{unit}.cpp", _emu_unit(f"{unit}.cu", names, threads=False))
        manifest["units"].append(unit)
        emu["fatbins"][unit] = {"lib": emu_lib, "kernels": names}
    opt = optimizer_kernels()
    unit = "optim"
    names = [k for k, _ in opt]
    parts = ['#include "gg_math.cuh"\n'] + [src.split("\n", 1)[1] for _, src in opt]
    for kname, src in opt:
        manifest["kernels"][kname] = {"unit": unit, "hash": source_hash(src)}
        emu["modules"][_sha256(runtime_code(src))] = {"lib": emu_lib, "kernels": [kname]}
    _write_if_changed(out / f"{unit}.cu", "".join(parts))
    _write_if_changed(out / f"emu_{unit}.cpp", _emu_unit(f"{unit}.cu", names, threads=False))
    manifest["units"].append(unit)
    emu["fatbins"][unit] = {"lib": emu_lib, "kernels": names}
    for filename, kernels in HANDWRITTEN.items():
        unit = Path(filename).stem
        h = source_hash(handwritten_source(filename), with_headers=True)
        names = [f"{k}_{s}" for k, sufs in kernels.items() for s in sufs]
        for kname in names:
            manifest["kernels"][kname] = {"unit": unit, "hash": h}
        _write_if_changed(out / f"emu_{unit}.cpp", _emu_unit(filename, names, threads=True))
        manifest["units"].append(unit)
        emu["modules"][_sha256(runtime_code(handwritten_source(filename)))] = {"lib": emu_lib, "kernels": names}
        emu["fatbins"][unit] = {"lib": emu_lib, "kernels": names}
    _write_if_changed(out / "host_ew.cpp", host_library_source(ops))
    _write_if_changed(out / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True))
    _write_if_changed(out / "emu_index.json", json.dumps(emu, indent=0, sort_keys=True))
    return manifest


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _write_if_changed(path: Path, text: str) -> None:
    # Unchanged files keep their timestamps, so a re-run of CMake recompiles nothing.
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _emu_unit(source: str, names: list[str], threads: bool) -> str:
    # Elementwise kernels never synchronise: their emulated threads run in a loop.
    export = "GG_EMU_EXPORT" if threads else "GG_EMU_EXPORT_SEQ"
    lines = ['#include "gg_host_emu.h"', f'#include "{source}"']
    lines += [f"{export}({n})" for n in names]
    return "\n".join(lines) + "\n"


def host_library_source(ops: list[Any]) -> str:
    """The element functions behind a C ABI, for the host library that CI tests.

    ``gg_host_<op>_fwd_<sfx>(n, ins, params, out)``: ``ins`` points to one contiguous array per
    input, ``params`` to the op's scalar parameters, ``out`` receives C values (or bools for
    comparisons). ``gg_host_<op>_d<i>_<sfx>(n, g, ins, out, params, res)``: g times d out/d input i.
    """
    parts = ['#include "gg_host_emu.h"', '#include "gg_elementwise.cuh"', ""]
    for op in ops:
        parts.append(element_functions(op))
    parts.append('extern "C" {')
    parts.append("float gg_host_h2f(unsigned short b) { gg_half h; h.bits = b; return gg_h2f(h); }")
    parts.append("unsigned short gg_host_f2h(float f) { return gg_f2h(f).bits; }")
    for op in ops:
        n_in = len(op.inputs)
        n_p = len(op.param_names)
        ins = ", ".join(f"ins[{k}][i]" for k in range(n_in))
        ps = "".join(f", params[{p}]" for p in range(n_p))
        for c, sfx in (("float", "f32"), ("double", "f64")):
            ret = "bool" if op.kind == "bool" else c
            parts.append(
                f"void gg_host_{op.name}_fwd_{sfx}(gg_index n, const {c}* const* ins, const {c}* params, {ret}* out) "
                f"{{ (void)params; for (gg_index i = 0; i < n; ++i) out[i] = gg_ew_{op.name}_fwd<{c}>({ins}{ps}); }}"
            )
            for k in kernel_inputs(op):
                parts.append(
                    f"void gg_host_{op.name}_d{k}_{sfx}(gg_index n, const {c}* g, const {c}* const* ins, "
                    f"const {c}* out, const {c}* params, {c}* res) {{ (void)params; for (gg_index i = 0; i < n; ++i) "
                    f"res[i] = gg_ew_{op.name}_d{k}<{c}>(g[i], {ins}, out[i]{ps}); }}"
                )
    parts.append("}")
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m gpugrad.backends.cuda_codegen OUT_DIR``: write the sources CMake compiles."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m gpugrad.backends.cuda_codegen OUT_DIR", file=sys.stderr)
        return 2
    manifest = write_sources(argv[0])
    print(f"gpugrad: wrote {len(manifest['kernels'])} kernels in {len(manifest['units'])} units to {argv[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
