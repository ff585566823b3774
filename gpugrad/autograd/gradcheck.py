"""Gradient checking by central finite differences, as every backpropagation course teaches."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gpugrad.autograd.engine import run_backward
from gpugrad.autograd.grad_mode import enable_grad, no_grad
from gpugrad.backends import backend_for
from gpugrad.errors import GpugradError, GradcheckError
from gpugrad.tensor import Tensor, make_tensor


def _outputs(result: Any) -> list[Tensor]:
    if isinstance(result, Tensor):
        return [result]
    if isinstance(result, (tuple, list)):
        return [r for r in result if isinstance(r, Tensor)]
    raise GpugradError(
        f"gradcheck: the function must return a Tensor or a tuple of Tensors, got {type(result).__name__}"
    )


def _host(t: Tensor) -> np.ndarray:
    return np.asarray(backend_for(t.device).to_host(t.data))


def _is_float(a: Any) -> bool:
    return isinstance(a, float) or (isinstance(a, (np.ndarray, np.generic)) and np.asarray(a).dtype.kind in "fc")


def _checked_inputs(args: list) -> tuple[list, list[int]]:
    """(arguments with every checked input a fresh float64/complex128 leaf, the checked positions)."""
    leaves = list(args)
    checked = []
    for i, a in enumerate(args):
        if isinstance(a, Tensor):
            if not a.requires_grad:
                continue
            data, device = a.data, a.device
        elif _is_float(a):
            data, device = np.array(a), "cpu"
        else:
            continue
        if data.dtype.kind not in "fc":
            raise GpugradError(f"gradcheck: input {i} is not floating point")
        wide = np.complex128 if data.dtype.kind == "c" else np.float64
        if data.dtype != wide:
            warnings.warn(f"gradcheck: input {i} is {data.dtype}; it is checked in a {np.dtype(wide)} copy (finite "
                          f"differences in {data.dtype} are too coarse for the tolerances)", stacklevel=3)
            data = data.astype(wide)
        # Fresh leaves, so the caller's .grad and graph stay untouched; a float64 tensor shares the
        # caller's array (non-contiguous inputs stay so) and each perturbation is undone exactly.
        leaves[i] = make_tensor(data, device, True)
        checked.append(i)
    return leaves, checked


def _real_parts(x: np.ndarray) -> np.ndarray:
    """A complex array as its real components (real, imag interleaved); a real one as it is."""
    x = np.asarray(x).reshape(-1)
    if x.dtype.kind != "c":
        return x.astype(np.float64)
    return np.stack([x.real, x.imag], -1).reshape(-1)


def gradcheck(fn: Callable[..., Any], inputs: Sequence[Any] | Any, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, raise_exception: bool = True) -> bool:
    """Compare reverse-mode gradients of ``fn`` with central differences.

    ``inputs``: a Tensor, NumPy array or float, or a sequence of them (other arguments are passed
    through). Checked: every Tensor with ``requires_grad`` (as PyTorch) and every floating NumPy
    array or Python float. Float32/float16 inputs are checked in float64 copies, with a warning,
    so float32 rounding never causes a false failure. Complex inputs and outputs are checked as
    their real and imaginary parts (gradients follow HIPS autograd's convention). Each element of
    every output is compared: |analytic - numeric| <= atol + rtol * |numeric|.

    Returns True, or raises GradcheckError naming the input, the worst element and both values
    (with ``raise_exception=False`` returns False instead). Example::

        gg.gradcheck(lambda x: (x.tanh() * x).sum(axis=0), (np.random.randn(3, 4),))
    """
    single = isinstance(inputs, (Tensor, np.ndarray, float, np.generic))
    args = [inputs] if single else list(inputs)
    leaves, checked = _checked_inputs(args)
    if not checked:
        raise GpugradError("gradcheck: nothing to check: no input is a floating array or number, or a Tensor "
                           "with requires_grad=True")

    with enable_grad():
        outs = _outputs(fn(*leaves))

    # Analytic: one reverse pass per real component of every output element.
    analytic = {i: [] for i in checked}
    for o in outs:
        backend = backend_for(o.device)
        seeds = [1.0, -1j] if o.dtype.kind == "c" else [1.0]
        for k in range(o.size):
            for unit in seeds:
                if o.requires_grad:
                    seed = backend.xp.zeros(o.shape, dtype=o.dtype)
                    seed.reshape(-1)[k] = unit
                    grads = run_backward([o], [seed], retain_graph=True, create_graph=False,
                                         inputs=[leaves[i] for i in checked])
                else:
                    grads = [None] * len(checked)
                for i, g in zip(checked, grads):
                    x = leaves[i]
                    if g is None:
                        row = np.zeros(x.size * (2 if x.dtype.kind == "c" else 1))
                    else:  # the gradient d/dx - 1j d/dy: real components (d/dx, d/dy)
                        row = _real_parts(np.conj(_host(g)))
                    analytic[i].append(row)

    for i in checked:
        x = leaves[i]
        data = x.data
        parts = [1.0, 1j] if x.dtype.kind == "c" else [1.0]
        numeric_cols = []
        for j in range(x.size):
            idx = np.unravel_index(j, x.shape)
            orig = data[idx].item()
            for unit in parts:
                try:
                    data[idx] = orig + eps * unit
                    with no_grad():
                        plus = _flat_outputs(fn(*leaves))
                    data[idx] = orig - eps * unit
                    with no_grad():
                        minus = _flat_outputs(fn(*leaves))
                finally:
                    data[idx] = orig
                numeric_cols.append((plus - minus) / (2 * eps))
        n_in = x.size * len(parts)
        a = np.stack(analytic[i]) if analytic[i] else np.zeros((0, n_in))
        numeric = np.stack(numeric_cols, 1) if numeric_cols else np.zeros((a.shape[0], 0))
        err = np.abs(a - numeric) - (atol + rtol * np.abs(numeric))
        if err.size and (err.max() > 0 or not np.isfinite(a).all()):
            bad = np.where(np.isfinite(a), err, np.inf)
            o_idx, x_idx = (int(v) for v in np.unravel_index(int(np.argmax(bad)), bad.shape))
            comp = len(parts)
            where = tuple(int(v) for v in np.unravel_index(x_idx // comp, x.shape))
            part = ("" if comp == 1 else (" (real part)" if x_idx % comp == 0 else " (imaginary part)"))
            msg = (f"gradcheck: gradient of input {i} (shape {tuple(x.shape)}) disagrees with finite differences: "
                   f"worst at output component {o_idx}, input element {where}{part}: "
                   f"analytic {float(a[o_idx, x_idx])!r} vs numeric {float(numeric[o_idx, x_idx])!r} "
                   f"(atol={atol}, rtol={rtol}, eps={eps})")
            if raise_exception:
                raise GradcheckError(msg)
            return False
    return True


def _flat_outputs(result: Any) -> np.ndarray:
    outs = _outputs(result)
    parts = [_real_parts(_host(o)) for o in outs]
    return np.concatenate(parts) if parts else np.zeros(0)
