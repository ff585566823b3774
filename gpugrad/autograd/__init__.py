"""Grad mode, the tape's backward engine, functional transforms, gradcheck and anomaly mode."""

from gpugrad.autograd.anomaly import detect_anomaly, is_anomaly_enabled
from gpugrad.autograd.grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled

__all__ = ["detect_anomaly", "is_anomaly_enabled", "enable_grad", "is_grad_enabled", "no_grad",
           "set_grad_enabled", "inference_mode", "grad"]


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):  # noqa: ANN001, ANN201
    """PyTorch's ``torch.autograd.grad``: gradients of outputs w.r.t. inputs, returned (not accumulated)."""
    from gpugrad.autograd.functional import autograd_grad

    return autograd_grad(outputs, inputs, grad_outputs, retain_graph, create_graph, allow_unused)
