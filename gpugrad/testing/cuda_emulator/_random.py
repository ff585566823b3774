"""``cupy.random`` on the emulated device: NumPy's generators, results in device memory (one
launch per draw). Streams differ from a GPU's CuPy streams, as they differ between CuPy and
NumPy anyway."""

from __future__ import annotations

from typing import Any

import numpy as np

from gpugrad.testing.cuda_emulator import _api
from gpugrad.testing.cuda_emulator._array import ndarray
from gpugrad.testing.cuda_emulator._device import count_launch

_DRAWS = ("random_sample", "rand", "randn", "standard_normal", "normal", "uniform", "randint", "permutation",
          "choice", "beta", "binomial", "gamma", "poisson", "exponential", "standard_exponential", "laplace",
          "lognormal", "standard_gamma", "standard_t", "chisquare", "dirichlet", "multivariate_normal")


def _on_device(r: Any) -> ndarray:
    r = np.asarray(r)
    out = ndarray._empty(r.shape, r.dtype, fill=None)
    np.copyto(out._np, r)
    count_launch(out.nbytes)
    return out


class RandomState:
    """``cupy.random.RandomState(seed=None)``."""

    def __init__(self, seed: Any = None, method: Any = None) -> None:
        self._rs = np.random.RandomState(None if seed is None else int(np.uint32(int(seed) & 0xFFFFFFFF)))

    def seed(self, seed: Any = None) -> None:
        self._rs.seed(None if seed is None else int(seed) & 0xFFFFFFFF)

    def shuffle(self, a: ndarray) -> None:
        if not isinstance(a, ndarray):
            raise TypeError("The array must be cupy.ndarray")
        a._np[...] = a._np[self._rs.permutation(len(a._np))]
        count_launch(2 * a.nbytes)


def _draw(name: str) -> Any:
    def method(self: RandomState, *args: Any, **kwargs: Any) -> ndarray:
        bound = _api.bind_method("cupy.random.RandomState", name, args, kwargs)
        dtype = bound.pop("dtype", None)
        fn = getattr(self._rs, name)
        if name == "randint":
            r = self._rs.randint(bound.get("low"), bound.get("high"), size=bound.get("size"))
        else:
            r = fn(**{k: (v._np if isinstance(v, ndarray) else v) for k, v in bound.items()})
        r = np.asarray(r)
        if dtype is not None:
            r = r.astype(dtype)
        return _on_device(r)

    method.__name__ = method.__qualname__ = name
    return method


for _name in _DRAWS:
    if _name in _api.class_members("cupy.random.RandomState"):
        setattr(RandomState, _name, _draw(_name))
del _name

_GLOBAL = [RandomState()]


def get_random_state() -> RandomState:
    return _GLOBAL[0]


def set_random_state(rs: RandomState) -> None:
    _GLOBAL[0] = rs


def reset_states() -> None:
    _GLOBAL[0] = RandomState()


def seed(seed: Any = None) -> None:
    _GLOBAL[0].seed(seed)


def _module_draw(name: str, method: str) -> Any:
    def fn(*args: Any, **kwargs: Any) -> ndarray:
        return getattr(_GLOBAL[0], method)(*args, **kwargs)

    fn.__name__ = fn.__qualname__ = name
    return fn


FUNCTIONS: dict[str, Any] = {"RandomState": RandomState, "get_random_state": get_random_state,
                             "set_random_state": set_random_state, "reset_states": reset_states, "seed": seed}
for _name in _DRAWS:
    if _api.has("cupy.random", _name) and hasattr(RandomState, _name):
        FUNCTIONS[_name] = _module_draw(_name, _name)
for _alias in ("random", "ranf", "sample"):
    FUNCTIONS[_alias] = _module_draw(_alias, "random_sample")
del _name, _alias
