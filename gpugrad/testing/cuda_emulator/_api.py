"""Real CuPy's names and signatures (cupy_api.json, recorded from the cupy-cuda13x wheel by
tools/cupy_api.py): the stand-in exposes nothing else and binds every call to these."""

from __future__ import annotations

import inspect
import json
from functools import cache
from pathlib import Path
from typing import Any

API_FILE = Path(__file__).with_name("cupy_api.json")


@cache
def api() -> dict:
    return json.loads(API_FILE.read_text())


def module_names(module: str) -> dict[str, dict]:
    return api()["modules"].get(module, {})


def class_members(qualname: str) -> dict[str, dict]:
    return api()["classes"].get(qualname, {})


def has(module: str, name: str) -> bool:
    return name in module_names(module)


class _Default:
    """A recorded default value (its repr); never passed on, only makes the parameter optional."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


_SIGNATURES: dict[int, inspect.Signature] = {}


def signature(entry: dict) -> inspect.Signature | None:
    """The recorded parameters of ``entry`` as an inspect.Signature (entries live as long as the
    loaded API, so they are cached by identity)."""
    sig = _SIGNATURES.get(id(entry))
    if sig is None:
        params = entry.get("params")
        if params is None:
            return None
        out = []
        for name, kind, default in params:
            d = inspect.Parameter.empty if default is None else _Default(default)
            out.append(inspect.Parameter(name, getattr(inspect.Parameter, kind), default=d))
        sig = _SIGNATURES[id(entry)] = inspect.Signature(out)
    return sig


def bind(entry: dict, what: str, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The arguments of a call bound to real CuPy's parameter names (only those given).

    Raises TypeError, as CuPy would, when the call does not fit the real signature.
    """
    sig = signature(entry)
    if sig is None:
        raise TypeError(f"{what}: no recorded signature")
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{what}(): {exc} (CuPy's signature: {what}{sig})") from None
    return bound.arguments


def bind_method(qualname: str, method: str, args: tuple, kwargs: dict) -> dict[str, Any]:
    entry = class_members(qualname).get(method)
    if entry is None:
        raise AttributeError(f"'{qualname}' has no attribute '{method}' in CuPy")
    return bind(entry, f"{qualname.rsplit('.', 1)[-1]}.{method}", args, kwargs)
