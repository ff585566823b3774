"""The CUDA backend: ``device="cuda:N"``, on CuPy.

One :class:`CupyBackend` per GPU provides, on CuPy arrays, every name the NumPy backend
provides (the namespace op rules are written against; see docs/DEVELOPING.md), plus the fused
entry points the engine uses and the ops' CUDA lowerings. One module per job:

* :mod:`.kernels`: kernels from the ahead-of-time build (CMake's fatbins and manifest) or NVRTC
  (``cupy.RawModule``), cached; the one launch path, counted (``counters``);
* :mod:`.geometry`: dtypes with kernels, block/grid sizes, operand layouts, reduction plans (no CuPy);
* :mod:`.elementwise`: kernels rendered from the op table (:mod:`gpugrad.backends.cuda_codegen`),
  forward and fused backward (writing or accumulating into a buffer the engine owns);
* :mod:`.reduce`: sums (and the summing back of broadcast gradients) with ``kernels/reduce.cu``;
* :mod:`.nn`: softmax / log_softmax and cross-entropy kernels, registered as ops' lowerings;
* :mod:`.indexing`: gathers and scatter-add (``kernels/scatter.cu``);
* :mod:`.library`: cuBLAS, cuSOLVER, cuFFT and the rest of CuPy, and views;
* :mod:`.transfer`: arrays, host transfers, index checks deferred to the next sync;
* :mod:`.optim`: the multi-tensor optimiser update (one launch per dtype);
* :mod:`.rng`: random numbers; :mod:`.backend`: the class and its device placement.

Operators that op rules apply directly to CuPy arrays (``g * out`` in a rule) are CuPy's own
kernels and are not counted by ``counters`` (a lower bound on a GPU; the emulated device counts
everything). CuPy is imported only when a CUDA device is first used. Example::

    x = gg.randn(1024, device="cuda", requires_grad=True)
    gg.tanh(x).sum().backward()
    gg.backends.backend_for("cuda:0").launches
"""

from gpugrad.backends.cuda.backend import CupyBackend
from gpugrad.backends.cuda.geometry import broadcast_shape, layout, reduction_plan
from gpugrad.backends.cuda.kernels import aot_dir

__all__ = ["CupyBackend", "aot_dir", "broadcast_shape", "layout", "reduction_plan"]
