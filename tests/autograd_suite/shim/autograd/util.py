"""autograd.util (deprecated upstream): ``quick_grad_check`` as a reverse-mode check_grads."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from autograd.test_util import check_grads


def quick_grad_check(fun: Callable[..., Any], arg0: Any, extra_args: tuple = (), kwargs: Any = None,
                     verbose: bool = True, eps: float = 1e-4, rtol: float = 1e-4, atol: float = 1e-6,
                     rs: Any = None) -> None:
    warnings.warn("quick_grad_check is deprecated; use check_grads", stacklevel=2)
    check_grads(lambda x: fun(x, *extra_args, **(kwargs or {})), modes=["rev"], order=1)(arg0)
