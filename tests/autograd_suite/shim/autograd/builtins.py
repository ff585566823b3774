"""autograd.builtins: its containers are Python's (gpugrad's transforms take pytrees), and its
``isinstance`` sees through traced values as autograd's sees through boxes."""

from __future__ import annotations

import builtins as _builtins
from typing import Any

import numpy as _np

from gpugrad.tensor import Tensor as _Tensor

list = _builtins.list  # noqa: A001
tuple = _builtins.tuple  # noqa: A001
dict = _builtins.dict  # noqa: A001
type = _builtins.type  # noqa: A001


def isinstance(obj: Any, classinfo: Any) -> bool:  # noqa: A001
    """A Tensor counts as the ndarray (or float) it stands for."""
    if _builtins.isinstance(obj, _Tensor):
        kinds = classinfo if _builtins.isinstance(classinfo, _builtins.tuple) else (classinfo,)
        if _np.ndarray in kinds or (obj.ndim == 0 and float in kinds):
            return True
    return _builtins.isinstance(obj, classinfo)
