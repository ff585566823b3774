"""autograd.wrap_util.unary_to_nary: make an operator on one-argument functions take
``(fun, argnum=0, ...)`` and act on the chosen positional argument(s) of ``fun``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


def unary_to_nary(unary_operator: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(unary_operator)
    def nary_operator(fun: Callable[..., Any], argnum: Any = 0, *op_args: Any, **op_kwargs: Any) -> Any:
        @functools.wraps(fun)
        def nary_f(*args: Any, **kwargs: Any) -> Any:
            many = not isinstance(argnum, int)

            def unary_f(x: Any) -> Any:
                full = list(args)
                for i, xi in (zip(argnum, x) if many else ((argnum, x),)):
                    full[i] = xi
                return fun(*full, **kwargs)

            unary_f.__name__ = getattr(fun, "__name__", "f")
            x = tuple(args[i] for i in argnum) if many else args[argnum]
            return unary_operator(unary_f, x, *op_args, **op_kwargs)

        return nary_f

    return nary_operator
