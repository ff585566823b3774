"""Record (or check) the public API of an installed CuPy: every name the emulated CUDA device's
CuPy stand-in may expose, with its call signature.

The stand-in (gpugrad/testing/cuda_emulator) exposes only names listed in
``gpugrad/testing/cuda_emulator/cupy_api.json`` and binds every call to the signature recorded
there, so code that runs on the emulated device cannot use a name or an argument that real
CuPy lacks. The file is generated from the real ``cupy-cuda13x`` wheel, which imports without a
GPU; CI re-generates it in a scratch virtual environment and fails when it differs:

    python -m venv /tmp/cupy-api && /tmp/cupy-api/bin/pip install cupy-cuda13x==14.2.0
    # to record the modules that need CUDA's libraries (cupyx.scipy.linalg/signal, NCCL) too:
    /tmp/cupy-api/bin/pip install nvidia-cublas nvidia-cusolver nvidia-cusparse nvidia-cufft \
        nvidia-curand nvidia-nccl-cu13
    /tmp/cupy-api/bin/python tools/cupy_api.py --write gpugrad/testing/cuda_emulator/cupy_api.json
    /tmp/cupy-api/bin/python tools/cupy_api.py --check gpugrad/testing/cuda_emulator/cupy_api.json
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import re
import sys
from typing import Any

MODULES = [
    "cupy", "cupy.cuda", "cupy.cuda.runtime", "cupy.cuda.driver", "cupy.cuda.compiler", "cupy.cuda.nccl",
    "cupy.linalg", "cupy.fft", "cupy.random", "cupy.lib", "cupy.lib.stride_tricks", "cupy.testing",
    "cupyx", "cupyx.scipy", "cupyx.scipy.special", "cupyx.scipy.linalg", "cupyx.scipy.signal",
]
LIBRARY_MODULES = ("cupy.cuda.nccl", "cupyx.scipy.linalg", "cupyx.scipy.signal")
CLASSES = [
    "cupy.ndarray", "cupy.RawModule", "cupy.RawKernel", "cupy.cuda.Device", "cupy.cuda.Stream", "cupy.cuda.Event",
    "cupy.cuda.Function", "cupy.cuda.MemoryPointer", "cupy.cuda.MemoryPool", "cupy.random.RandomState",
    "cupy.random.Generator", "cupy.cuda.nccl.NcclCommunicator", "cupy.ufunc", "cupy.dtype",
]


def _split_params(text: str) -> list[str]:
    out, depth, cur, quote = [], 0, "", None
    for ch in text:
        if quote:
            cur += ch
            if ch == quote:
                quote = None
            continue
        if ch in "'\"":
            quote = ch
        elif ch in "([{<":
            depth += 1
        elif ch in ")]}>":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def _doc_signature(doc: str, name: str) -> list | None:
    """Parameters from a Cython ``embedsignature`` first line or a ufunc's first doc line."""
    for line in (doc or "").splitlines()[:3]:
        line = line.strip().replace("\\*", "*")
        m = re.match(r"^[\w.]*?" + re.escape(name) + r"\((.*)\)(\s*->.*)?$", line)
        if m:
            return _params_from_text(m.group(1))
    return None


def _params_from_text(text: str) -> list:
    params = []
    kind = "POSITIONAL_OR_KEYWORD"
    for tok in _split_params(text):
        if tok == "/":
            for p in params:
                p[1] = "POSITIONAL_ONLY"
            continue
        if tok == "*":
            kind = "KEYWORD_ONLY"
            continue
        if tok.startswith("**"):
            params.append([tok[2:].split()[-1], "VAR_KEYWORD", None])
            continue
        if tok.startswith("*"):
            params.append([tok[1:].split()[-1], "VAR_POSITIONAL", None])
            kind = "KEYWORD_ONLY"
            continue
        head, eq, default = tok.partition("=")
        words = head.split()
        pname = words[-1] if words else head
        params.append([pname, kind, default.strip() if eq else None])
    return params


def _default_repr(value: Any) -> str:
    """A default's repr without what differs between installations (paths, addresses)."""
    text = repr(value)
    text = re.sub(r" from '[^']*'", "", text)
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)


def _signature(obj: Any, name: str) -> list | None:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return _doc_signature(getattr(obj, "__doc__", "") or "", name)
    return [[p.name, p.kind.name, None if p.default is inspect.Parameter.empty else _default_repr(p.default)]
            for p in sig.parameters.values()]


def _describe(obj: Any, name: str) -> dict:
    import cupy

    if inspect.ismodule(obj):
        return {"kind": "module"}
    if isinstance(obj, cupy.ufunc):
        params = _doc_signature(obj.__doc__, name) or _doc_signature(obj.__doc__, obj.__name__.replace("cupy_", ""))
        if params is None:  # a ufunc documented under another name: NumPy's ufunc signature
            params = [[f"x{i + 1}", "POSITIONAL_ONLY", None] for i in range(obj.nin)]
            params += [["out", "POSITIONAL_OR_KEYWORD", "None"], ["casting", "KEYWORD_ONLY", "'same_kind'"],
                       ["dtype", "KEYWORD_ONLY", "None"]]
        return {"kind": "ufunc", "nin": obj.nin, "nout": obj.nout, "params": params}
    if inspect.isclass(obj):
        init = _doc_signature(obj.__doc__ or "", name) or _doc_signature(
            getattr(obj.__init__, "__doc__", "") or "", "__init__")
        if init and init[0][0] == "self":
            init = init[1:]
        return {"kind": "class", "params": init}
    if callable(obj):
        return {"kind": "function", "params": _signature(obj, name)}
    return {"kind": "value", "type": type(obj).__name__}


def _class_members(cls: type) -> dict:
    out = {}
    for name in dir(cls):
        if name.startswith("_") and not (name.startswith("__") and name.endswith("__")) and name not in (
                "_c_contiguous", "_f_contiguous"):
            continue
        try:
            attr = inspect.getattr_static(cls, name)
        except AttributeError:
            continue
        if isinstance(attr, (staticmethod, classmethod)):
            attr = attr.__func__
        if inspect.isdatadescriptor(attr) or isinstance(attr, property):
            out[name] = {"kind": "attribute"}
        elif callable(attr):
            params = _signature(attr, name)
            if params and params[0][0] == "self":
                params = params[1:]
            out[name] = {"kind": "method", "params": params}
        else:
            out[name] = {"kind": "attribute"}
    return out


def record() -> dict:
    import cupy

    api: dict[str, Any] = {"cupy_version": cupy.__version__, "modules": {}, "classes": {}}
    for modname in MODULES:
        try:
            mod = importlib.import_module(modname)
        except Exception as exc:  # a module that needs a GPU or a library to import
            api["modules"][modname] = {"__unimportable__": {"kind": "error", "error": type(exc).__name__}}
            continue
        names = getattr(mod, "__all__", None) or [n for n in dir(mod) if not n.startswith("_")]
        members = {}
        for name in sorted(set(names) | {"__version__"} & set(dir(mod))):
            try:
                members[name] = _describe(getattr(mod, name), name)
            except Exception as exc:
                members[name] = {"kind": "error", "error": type(exc).__name__}
        api["modules"][modname] = members
    for qual in CLASSES:
        modname, _, clsname = qual.rpartition(".")
        try:
            cls = getattr(importlib.import_module(modname), clsname)
        except Exception:
            continue
        api["classes"][qual] = _class_members(cls)
    return api


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--write", metavar="FILE")
    g.add_argument("--check", metavar="FILE")
    args = ap.parse_args(argv)
    api = record()
    if args.write:
        with open(args.write, "w") as f:
            json.dump(api, f, indent=0, sort_keys=True)
            f.write("\n")
        n = sum(len(m) for m in api["modules"].values()) + sum(len(c) for c in api["classes"].values())
        print(f"wrote {n} names of CuPy {api['cupy_version']} to {args.write}")
        return 0
    with open(args.check) as f:
        saved = json.load(f)
    # Modules that need CUDA's libraries (cuSOLVER, cuBLAS, NCCL wheels: ~1.4 GB) to import, or
    # to hold all their names, are compared only where they are complete; the recording was made
    # with those libraries installed.
    skipped = []
    for k in LIBRARY_MODULES:
        now, rec = api["modules"].get(k, {}), saved["modules"].get(k, {})
        if now != rec and ("__unimportable__" in now or set(now) < set(rec)):
            skipped.append(k)
            api["modules"][k] = rec
    for qual in set(saved["classes"]) - set(api["classes"]):
        if qual.rpartition(".")[0] in skipped:
            api["classes"][qual] = saved["classes"][qual]
    if skipped:
        print(f"not compared (they need CUDA's libraries here): {', '.join(skipped)}")
    if saved == api:
        print(f"{args.check} matches the installed CuPy {api['cupy_version']}")
        return 0
    for section in ("modules", "classes"):
        for key in sorted(set(saved[section]) | set(api[section])):
            a, b = saved[section].get(key, {}), api[section].get(key, {})
            for name in sorted(set(a) | set(b)):
                if a.get(name) != b.get(name):
                    print(f"{key}.{name}: recorded {a.get(name)} but CuPy has {b.get(name)}", file=sys.stderr)
    print(f"{args.check} differs from the installed CuPy {api['cupy_version']} (recorded "
          f"{saved.get('cupy_version')}); regenerate it with --write", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
