"""gpugrad: exact gradients of array programs by reverse- (and forward-) mode automatic
differentiation, on NumPy (CPU) and CuPy (NVIDIA GPUs).

    import gpugrad as gg
    x = gg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = (x @ x.T).tanh().sum()
    y.backward()
    x.grad

The public names below are loaded on first use (PEP 562, as NumPy and SciPy load their
submodules): ``import gpugrad`` loads nothing else, so importing a low layer (the op table, the
backends, the code generator) does not load the high ones (nn, optim, the tensor).
"""

import os as _os

if _os.environ.get("GPUGRAD_CUDA_EMULATOR"):  # the emulated CUDA device, for GPU tests without a GPU
    # before anything imports CuPy
    from gpugrad.testing import cuda_emulator as _cuda_emulator

    _cuda_emulator.from_environment()

import importlib as _importlib
import sys as _sys
import types as _types

__version__ = "0.1.0"

# where each public name is defined
_EXPORTS = {
    "gpugrad.autograd": "detect_anomaly enable_grad inference_mode is_grad_enabled no_grad set_grad_enabled",
    "gpugrad.autograd.checkpoint": "checkpoint",
    "gpugrad.autograd.custom": "custom_jvp custom_vjp",
    "gpugrad.autograd.functional": "elementwise_grad grad hessian holomorphic_grad hvp jacobian jvp value_and_grad vjp",
    "gpugrad.autograd.gradcheck": "gradcheck",
    "gpugrad.errors": (
        "AnomalyError ArgumentError CheckpointError DeviceError DTypeError GpugradError GradcheckError "
        "GraphError InplaceError ShapeError"
    ),
    "gpugrad.factories": (
        "arange as_tensor bool_ empty empty_like eye float16 float32 float64 from_numpy full full_like "
        "int8 int16 int32 int64 linspace manual_seed ones ones_like rand randint randn tensor uint8 zeros "
        "zeros_like"
    ),
    "gpugrad.fusion.lazy": "no_fusion",
    "gpugrad.io": "load save",
    "gpugrad.ops": (
        "abs absolute add all amax amin angle any arccos arcsin arctan arctan2 argmax argmin array_split "
        "astype broadcast_to cat cbrt ceil clamp clip concatenate conj cos cosh cumprod cumsum det diag "
        "diagonal divide dot einsum equal erf exp exp2 expand_dims expm1 flatten flip floor floor_divide "
        "gelu greater greater_equal hstack hypot imag inner inv isfinite isinf isnan leaky_relu less "
        "less_equal log log1p log2 log10 log_softmax logaddexp logical_and logical_not logical_or "
        "logsumexp matmul max maximum mean min minimum mod moveaxis multiply negative norm not_equal "
        "outer pad permute pow power prod ravel real reciprocal relu remainder repeat reshape roll round "
        "rsqrt sigmoid sign silu sin sinh slogdet softmax softplus solve split sqrt square squeeze stack "
        "std subtract sum swapaxes take tan tanh tensordot tile trace transpose tril triu unsqueeze var "
        "vdot vstack where"
    ),
    "gpugrad.tensor": "Tensor",
}
_SUBMODULES = ("cuda", "nn", "optim")
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names.split()}
__all__ = sorted([*_WHERE, *_SUBMODULES])


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is not None:
        value = getattr(_importlib.import_module(module), name)
    elif name in _SUBMODULES:
        value = _importlib.import_module(f"gpugrad.{name}")
    else:
        raise AttributeError(f"module 'gpugrad' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted({*globals(), *__all__})


class _Package(_types.ModuleType):
    """``gpugrad``'s module type: ``gg.tensor`` is the factory function although ``gpugrad.tensor``
    is also a submodule, whose import would otherwise bind the module over the function (the
    module stays in ``sys.modules["gpugrad.tensor"]``)."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in _WHERE and isinstance(value, _types.ModuleType) and value.__name__ == f"gpugrad.{name}":
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
