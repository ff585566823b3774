"""``CupyBackend``: the CUDA backend of one GPU, assembled from the modules of this package,
each one job (kernel loading and launching, elementwise, reductions, softmax and
cross-entropy, indexing, CuPy library calls, transfers and deferred checks, the optimiser
update, random numbers), and the placement of its work on its GPU.

Example::

    B = CupyBackend(0)          # what gpugrad.backends.backend_for("cuda:0") makes
    B.sum(B.tanh(x), axis=0)
"""

from __future__ import annotations

from functools import partial
from typing import Any

from gpugrad.backends import portable
from gpugrad.backends.cuda.elementwise import Elementwise, _cupy_expr_functions
from gpugrad.backends.cuda.geometry import MAXOPS
from gpugrad.backends.cuda.indexing import Indexing
from gpugrad.backends.cuda.kernels import Kernels, aot_dir
from gpugrad.backends.cuda.library import Library
from gpugrad.backends.cuda.nn import LOWERINGS, NNKernels
from gpugrad.backends.cuda.optim import OptimizerUpdate
from gpugrad.backends.cuda.reduce import Reductions
from gpugrad.backends.cuda.rng import RandomNumbers
from gpugrad.backends.cuda.transfer import Transfers
from gpugrad.backends.cuda_runtime import import_cupy
from gpugrad.table import expr as E

# The public methods that allocate on or launch to the GPU: with several GPUs each runs with this
# backend's GPU current (CuPy allocates on and launches to the current device). Every public
# method is listed here or in HOST_ONLY (tests/test_cuda_backend.py checks it), so a new method
# cannot be forgotten. With one GPU nothing is wrapped: the device is always current.
ON_DEVICE = (
    # elementwise
    "ew_forward", "ew_vjp", "ew_vjp_acc", "add_into", "accumulate",
    # reductions
    "sum", "mean", "sum_to", "amax", "amin",
    # softmax, cross-entropy
    "softmax", "log_softmax", "softmax_backward", "log_softmax_backward", "cross_entropy_logits",
    "cross_entropy_logits_backward", "layer_norm_rows", "layer_norm_rows_backward",
    # indexing
    "getitem", "index_scatter", "index_put", "take", "take_scatter",
    # CuPy library calls and views
    "matmul", "einsum", "tensordot", "concatenate", "stack", "cumsum", "cumprod", "pad", "solve", "inv", "tril",
    "triu", "cholesky", "eigh", "eig", "svd", "qr", "pinv", "fftn", "zeros_like", "ones_like", "new_zeros",
    "new_ones", "new_eye", "reshape", "transpose", "broadcast_to", "expand_dims", "swapaxes", "flip", "diagonal",
    "astype", "real", "imag", "conj",
    # arrays, transfers, checks
    "asarray", "array", "from_host", "to_host", "check_range", "to_device", "all_finite", "synchronize",
    # nn array helpers (portable array code)
    "im2col", "col2im", "pool2d", "pool_argmax", "pool_scatter", "pool_gather",
    # optimiser, random numbers, kernels
    "optimizer_update", "seed", "random", "load_kernel",
)
HOST_ONLY = ("launches",)  # a counter


class CupyBackend(Kernels, Elementwise, Reductions, NNKernels, Indexing, Library, Transfers, OptimizerUpdate,
                  RandomNumbers):
    """The namespace of array functions for one GPU: every name the NumPy backend provides, on CuPy
    arrays (the namespace op rules are written against; docs/DEVELOPING.md), plus the fused entry
    points the engine uses and the CUDA lowerings of ops (``lowerings``)."""

    lowerings = LOWERINGS  # hand-written kernels implementing op rules (gpugrad.ops.base)

    # the nn primitives' array code, written against the array module of its input (CuPy here)
    im2col = staticmethod(portable.im2col)
    col2im = staticmethod(portable.col2im)
    pool2d = staticmethod(portable.pool2d)
    pool_argmax = staticmethod(portable.pool_argmax)
    pool_scatter = staticmethod(portable.pool_scatter)
    pool_gather = staticmethod(portable.pool_gather)

    def __init__(self, index: int) -> None:
        cp = import_cupy()
        from gpugrad.backends.cuda_runtime import require_device
        from gpugrad.table.elementwise import TABLE as OPS

        require_device(index)
        self.cp = cp
        self.xp = cp
        self.index = index
        self.name = f"cuda:{index}"
        self.TAG = "cupy"
        self.device = cp.cuda.Device(index)
        self._nd = cp.ndarray
        # what gg.cuda.counters() reports on a GPU (the emulated device counts for itself)
        self.counters = {"launches": 0, "bytes": 0, "syncs": 0, "compilations": 0, "indirect_bytes": 0}
        self._optim_tables: dict[bytes, tuple] = {}
        self._pending: dict[tuple, tuple] = {}  # deferred index checks (check_range)
        self.aot_loaded = 0  # kernels taken from the ahead-of-time fatbins
        self.runtime_compiled = 0  # kernels compiled by NVRTC (or found in CuPy's disk cache)
        with self.device:
            self.sm_count = int(cp.cuda.runtime.getDeviceProperties(index)["multiProcessorCount"])
        self._max_grid = max(1, self.sm_count * 16)
        self._kernels: dict[Any, Any] = {}
        self._modules: dict[str, Any] = {}
        self._aot_dir = aot_dir()
        self._aot = self._read_manifest()
        self._aot_units: dict[str, bool] = {}
        self._rng = None
        self._ops = OPS
        self._geoms: dict[Any, tuple] = {}
        self._ones = [(1,) * k for k in range(MAXOPS + 2)]
        # CuPy keeps C-contiguity as a plain attribute; .flags builds an object per call
        self._contig = (lambda a: a._c_contiguous) if hasattr(cp.ndarray, "_c_contiguous") else (
            lambda a: a.flags.c_contiguous)
        # the expression language's functions and the comparison / arithmetic names rules use,
        # as the op table's forward kernels (they run through ew_forward, placed below)
        for name in [*E.FUNCTIONS, "negative", "square", "reciprocal", "equal", "not_equal", "less", "greater"]:
            setattr(self, name, partial(self._ew_call, OPS[name]))
        self._python_fns = _cupy_expr_functions(cp)
        if cp.cuda.runtime.getDeviceCount() > 1:
            place_on_device(self, self.device)

    def __repr__(self) -> str:
        return f"<gpugrad CUDA backend {self.name}>"


def place_on_device(backend: CupyBackend, device: Any) -> None:
    """Make each method of ON_DEVICE run with ``device`` current, on this backend object."""
    for name in ON_DEVICE:
        setattr(backend, name, _on_device(device, getattr(backend, name)))


def _on_device(device: Any, fn: Any) -> Any:
    def call(*args: Any, **kw: Any) -> Any:
        with device:
            return fn(*args, **kw)

    call.__doc__ = fn.__doc__
    call.__name__ = getattr(fn, "__name__", "call")
    return call
