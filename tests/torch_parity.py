"""Helpers that run a gpugrad module and the same PyTorch module (same weights, float64) and
compare values and gradients. Each test imports torch through pytest.importorskip, so these
comparisons are skipped (and counted in the session summary) where PyTorch is not installed."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg

RNG = np.random.default_rng(99)


def torch_state(module):
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def copy_from_torch(mine, theirs):
    """Load a PyTorch module's state into ours (also checks that the key names line up)."""
    result = mine.load_state_dict(torch_state(theirs))
    assert result.missing_keys == [] and result.unexpected_keys == []


def _leaves(value):
    """The tensors of a (nested) tuple of outputs or inputs, in order."""
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _leaves(v)]
    return [] if value is None else [value]


def _both(value, torch):
    """A (nested) input of NumPy arrays as (gpugrad, torch) leaves that require grad."""
    if isinstance(value, (tuple, list)):
        pairs = [_both(v, torch) for v in value]
        return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)
    return gg.tensor(value, requires_grad=True), torch.tensor(value, requires_grad=True)


def compare_module(mine, theirs, x, *extra, rtol=1e-9, atol=1e-11):
    """Same outputs (every tensor of a nested tuple) and same gradients (of every input and
    parameter) as the PyTorch module, for a random linear function of the outputs."""
    torch = pytest.importorskip("torch")
    ins = [_both(v, torch) for v in (x, *extra)]
    y = mine(*[a for a, _ in ins])
    ty = theirs(*[b for _, b in ins])
    ys, tys = _leaves(y), _leaves(ty)
    assert len(ys) == len(tys)
    loss, tloss = 0, 0
    for a, b in zip(ys, tys):
        assert a.shape == tuple(b.shape)
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=rtol, atol=atol)
        r = RNG.standard_normal(tuple(b.shape))
        loss = loss + (a * gg.tensor(r)).sum()
        tloss = tloss + (b * torch.tensor(r)).sum()
    loss.backward()
    tloss.backward()
    for a, b in zip(_leaves([p[0] for p in ins]), _leaves([p[1] for p in ins])):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=rtol, atol=atol)
    theirs_params = dict(theirs.named_parameters())
    for name, p in mine.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), theirs_params[name].grad.numpy(), rtol=rtol, atol=atol,
                                   err_msg=name)
    return y
