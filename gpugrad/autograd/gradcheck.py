"""Gradient checking by central finite differences, as every backpropagation course teaches."""

from __future__ import annotations

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


def gradcheck(fn: Callable[..., Any], inputs: Sequence[Any] | Tensor, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, raise_exception: bool = True) -> bool:
    """Compare reverse-mode gradients of ``fn`` with central differences.

    ``inputs``: a Tensor or a sequence of them (and non-tensor arguments passed through).
    Every floating-point tensor input with ``requires_grad`` is checked, element by element
    against every output element: |analytic - numeric| <= atol + rtol * |numeric|. Use
    float64 inputs (float32 differences are too noisy for the default tolerances).

    Returns True, or raises GradcheckError naming the input, the worst element and both values
    (with ``raise_exception=False`` returns False instead). Example::

        x = gg.randn(3, 4, dtype=gg.float64, requires_grad=True)
        gg.gradcheck(lambda x: (x.tanh() * x).sum(axis=0), (x,))
    """
    args = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    checked = [i for i, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad]
    if not checked:
        raise GpugradError("gradcheck: no input has requires_grad=True")
    for i in checked:
        if args[i].dtype.kind != "f":
            raise GpugradError(f"gradcheck: input {i} is not floating point")

    # Fresh leaves so the caller's .grad and graph stay untouched. They share the caller's
    # arrays (so non-contiguous inputs stay non-contiguous); each perturbation is undone exactly.
    leaves = list(args)
    for i in checked:
        leaves[i] = make_tensor(args[i].data, args[i].device, True)
    with enable_grad():
        outs = _outputs(fn(*leaves))
    out_sizes = [o.size for o in outs]

    analytic = {i: [] for i in checked}
    for o in outs:
        backend = backend_for(o.device)
        for k in range(o.size):
            if o.requires_grad:
                seed = backend.xp.zeros(o.shape, dtype=o.dtype)
                seed.reshape(-1)[k] = 1
                grads = run_backward([o], [seed], retain_graph=True, create_graph=False,
                                     inputs=[leaves[i] for i in checked])
            else:
                grads = [None] * len(checked)
            for i, g in zip(checked, grads):
                row = np.zeros(args[i].size) if g is None else np.asarray(backend_for(g.device).to_host(g.data),
                                                                          dtype=np.float64).reshape(-1)
                analytic[i].append(row)

    for i in checked:
        x = leaves[i]
        data = x.data
        numeric = np.zeros((sum(out_sizes), x.size))
        for j in range(x.size):
            idx = np.unravel_index(j, x.shape)
            orig = data[idx].item()
            try:
                data[idx] = orig + eps
                with no_grad():
                    plus = _flat_outputs(fn(*leaves))
                data[idx] = orig - eps
                with no_grad():
                    minus = _flat_outputs(fn(*leaves))
            finally:
                data[idx] = orig
            numeric[:, j] = (plus - minus) / (2 * eps)
        a = np.stack(analytic[i]) if analytic[i] else np.zeros((0, x.size))
        err = np.abs(a - numeric) - (atol + rtol * np.abs(numeric))
        if err.size and (err.max() > 0 or not np.isfinite(a).all()):
            bad = np.where(np.isfinite(a), err, np.inf)
            o_idx, x_idx = (int(v) for v in np.unravel_index(int(np.argmax(bad)), bad.shape))
            where = tuple(int(v) for v in np.unravel_index(x_idx, x.shape))
            msg = (f"gradcheck: gradient of input {i} (shape {tuple(x.shape)}) disagrees with finite differences: "
                   f"worst at output element {o_idx}, input element {where}: "
                   f"analytic {float(a[o_idx, x_idx])!r} vs numeric {float(numeric[o_idx, x_idx])!r} "
                   f"(atol={atol}, rtol={rtol}, eps={eps})")
            if raise_exception:
                raise GradcheckError(msg)
            return False
    return True


def _flat_outputs(result: Any) -> np.ndarray:
    outs = _outputs(result)
    parts = [np.asarray(o.numpy(), dtype=np.float64).reshape(-1) for o in outs]
    return np.concatenate(parts) if parts else np.zeros(0)
