"""``gg.save`` / ``gg.load``: checkpoints in the safetensors format, atomic, and safe to load.

A file is a plain safetensors file (written by the ``safetensors`` package's NumPy API), so the
tools PyTorch and JAX users already have open it (``safetensors.torch.load_file``,
``safetensors.flax.load_file``, ``safe_open``): every array of the saved object is one entry,
named by its path in the object ("model.0.weight", "optimizer.state.0.exp_avg"). The nesting
(dicts, lists, tuples, and the order of their keys), the plain values (ints, floats, strings,
bools, None) and each tensor's dtype, shape, device and requires_grad are kept as JSON in the
file's metadata under ``gpugrad.structure``.

Loading never runs code: no pickle, no eval; the header is validated (size, JSON, dtypes,
shapes, offsets) before any array is read, and the structure is checked against the entries;
anything inconsistent raises :class:`gpugrad.CheckpointError` saying what is wrong. A safetensors
file written by another framework (no gpugrad metadata) loads as a flat dict of tensors.

Saving writes to a temporary file in the destination folder, flushes it to disk (fsync), then
renames it over the destination (atomic on POSIX and Windows) and fsyncs the folder: a crash at
any point leaves either the old file or the new one, never a mix.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from gpugrad.backends import backend_for, device_of_array, normalize_device
from gpugrad.errors import CheckpointError, DeviceError
from gpugrad.tensor import Tensor, make_tensor

__all__ = ["save", "load"]

FORMAT = "gpugrad-checkpoint/1"
_MAX_HEADER = 100_000_000  # the safetensors package's own limit on the JSON header
_MAX_DEPTH = 256

# safetensors dtype names <-> NumPy dtypes (BF16 has no NumPy dtype: loaded as float32)
_ST_DTYPES = {
    "BOOL": np.dtype(np.bool_), "U8": np.dtype(np.uint8), "I8": np.dtype(np.int8), "I16": np.dtype(np.int16),
    "U16": np.dtype(np.uint16), "I32": np.dtype(np.int32), "U32": np.dtype(np.uint32), "I64": np.dtype(np.int64),
    "U64": np.dtype(np.uint64), "F16": np.dtype(np.float16), "F32": np.dtype(np.float32),
    "F64": np.dtype(np.float64), "BF16": np.dtype(np.uint16),
}
_SAVABLE = {dt.name for name, dt in _ST_DTYPES.items() if name != "BF16"}


# ---------------------------------------------------------------------------------------------
# save


class _Writer:
    """Flattens an object into named host arrays and a JSON-able structure."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self.by_id: dict[int, str] = {}
        self.keep: list[Any] = []  # keeps saved objects alive so their ids stay unique

    def name_for(self, path: list[str]) -> str:
        base = ".".join(path) or "tensor"
        name, k = base, 1
        while name in self.arrays:
            name = f"{base}@{k}"
            k += 1
        return name

    def array_node(self, obj: Any, path: list[str]) -> dict:
        if isinstance(obj, Tensor):
            kind = "parameter" if type(obj).__name__ == "Parameter" else "tensor"
            arr, device = obj.data, obj.device
        elif isinstance(obj, np.generic):
            kind, arr, device = "numpy_scalar", np.asarray(obj), "cpu"
        else:
            kind, arr, device = "ndarray", obj, device_of_array(obj)
        if arr.dtype.name not in _SAVABLE:
            raise CheckpointError(f"gg.save: cannot store dtype {arr.dtype} at {'.'.join(path) or '<root>'} "
                                  f"(supported: {', '.join(sorted(_SAVABLE))})")
        node = {"$t": None, "dtype": arr.dtype.name, "shape": list(arr.shape), "kind": kind, "device": device}
        if isinstance(obj, Tensor):
            node["requires_grad"] = bool(obj.requires_grad)
        name = self.by_id.get(id(obj))
        if name is None:
            name = self.name_for(path)
            host = backend_for(device).to_host(arr) if device != "cpu" else arr
            # (np.ascontiguousarray would turn a 0-d array into a 1-d one)
            self.arrays[name] = host if host.flags.c_contiguous else host.copy(order="C")
            self.by_id[id(obj)] = name
            self.keep.append(obj)
        node["$t"] = name
        return node

    def node(self, obj: Any, path: list[str], depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise CheckpointError(f"gg.save: the object is nested more than {_MAX_DEPTH} levels deep")
        if obj is None or isinstance(obj, (bool, str)):
            return {"$v": obj}
        if isinstance(obj, int):
            return {"$v": int(obj)}
        if isinstance(obj, float):
            if math.isfinite(obj):
                return {"$v": obj}
            return {"$float": "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")}
        if isinstance(obj, (Tensor, np.ndarray, np.generic)) or device_of_array(obj) is not None:
            return self.array_node(obj, path)
        if isinstance(obj, Mapping):
            items = []
            for k, v in obj.items():
                if not (k is None or isinstance(k, (str, bool, int)) or (isinstance(k, float) and math.isfinite(k))):
                    raise CheckpointError(f"gg.save: dict keys must be str, int, finite float, bool or None; got "
                                          f"{type(k).__name__} {k!r} at {'.'.join(path) or '<root>'}")
                items.append([k, self.node(v, path + [str(k)], depth + 1)])
            return {"$dict": items}
        if isinstance(obj, (list, tuple)):
            tag = "$list" if isinstance(obj, list) else "$tuple"
            return {tag: [self.node(v, path + [str(i)], depth + 1) for i, v in enumerate(obj)]}
        hint = "; save its state_dict() instead" if hasattr(obj, "state_dict") else ""
        raise CheckpointError(f"gg.save: cannot store a {type(obj).__name__} at {'.'.join(path) or '<root>'} "
                              f"(tensors, arrays, numbers, strings, bools, None, and dicts/lists/tuples of them){hint}")


def save(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` (tensors, arrays, plain values, and dicts/lists/tuples of them, e.g. a model's
    and an optimiser's state dicts) to ``path`` as a safetensors file, atomically.

    Example::

        gg.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}, "ckpt.safetensors")
    """
    from safetensors.numpy import save_file

    path = os.fspath(path)
    writer = _Writer()
    structure = writer.node(obj, [], 0)
    metadata = {"format": "np", "gpugrad.format": FORMAT,
                "gpugrad.structure": json.dumps(structure, separators=(",", ":"), allow_nan=False)}
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CheckpointError(f"gg.save: the folder {folder!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        save_file(writer.arrays, tmp, metadata=metadata)
        _fsync_file(tmp)
        os.chmod(tmp, _file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(folder)


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: str) -> None:
    """Make the rename itself durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _file_mode(path: str) -> int:
    """The existing file's permissions, or the usual ones for a new file (0666 minus the umask)."""
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


# ---------------------------------------------------------------------------------------------
# load


def _bad(path: str, what: str) -> CheckpointError:
    return CheckpointError(f"gg.load: {path!r} is not a valid checkpoint: {what}")


def _no_duplicates(pairs: list) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate key in JSON object: {sorted(k for k in set(keys) if keys.count(k) > 1)[0]!r}")
    return dict(pairs)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _json(text: str | bytes) -> Any:
    return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)


def _check_header(path: str, data: bytes) -> tuple[dict, dict]:
    """Validate the safetensors framing and header; returns (entries, metadata)."""
    if len(data) < 8:
        raise _bad(path, f"the file has {len(data)} bytes, fewer than the 8-byte header length (truncated?)")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise _bad(path, f"the header claims {n} bytes but only {len(data) - 8} follow (truncated or corrupt)")
    if n > _MAX_HEADER:
        raise _bad(path, f"the header claims {n} bytes, more than the {_MAX_HEADER} allowed")
    try:
        header = _json(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _bad(path, f"the header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise _bad(path, "the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in metadata.items()):
        raise _bad(path, "__metadata__ must map strings to strings")
    body = len(data) - 8 - n
    spans = []
    for name, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise _bad(path, f"entry {name!r} must have exactly dtype, shape and data_offsets")
        dt = _ST_DTYPES.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
        if dt is None:
            raise _bad(path, f"entry {name!r} has unsupported dtype {entry['dtype']!r}")
        shape, offsets = entry["shape"], entry["data_offsets"]
        if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
            raise _bad(path, f"entry {name!r} has an invalid shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
                and 0 <= offsets[0] <= offsets[1] <= body):
            raise _bad(path, f"entry {name!r} has data offsets {offsets!r} outside the {body}-byte data section")
        nbytes = math.prod(shape) * dt.itemsize
        if offsets[1] - offsets[0] != nbytes:
            raise _bad(path, f"entry {name!r} of shape {shape} and dtype {entry['dtype']} needs {nbytes} bytes, "
                             f"its offsets span {offsets[1] - offsets[0]}")
        spans.append((offsets[0], offsets[1], name))
    spans.sort()
    pos = 0
    for begin, end, name in spans:
        if begin != pos:
            raise _bad(path, f"entry {name!r} starts at byte {begin}, expected {pos} (overlapping or missing data)")
        pos = end
    if pos != body:
        raise _bad(path, f"the data section has {body} bytes but the entries cover {pos} (truncated or padded)")
    return header, metadata


def _read_arrays(path: str, data: bytes, header: dict) -> dict[str, np.ndarray]:
    try:
        if any(e["dtype"] == "BF16" for e in header.values()):
            from safetensors import deserialize

            out = {}
            for name, entry in deserialize(data):
                dt = _ST_DTYPES[entry["dtype"].upper()] if entry["dtype"].upper() in _ST_DTYPES else None
                if dt is None:
                    raise _bad(path, f"entry {name!r} has unsupported dtype {entry['dtype']!r}")
                arr = np.frombuffer(entry["data"], dtype=dt).reshape(entry["shape"])
                if entry["dtype"].upper() == "BF16":  # bfloat16 is the top half of a float32
                    arr = (arr.astype(np.uint32) << 16).view(np.float32)
                out[name] = arr.copy()
            return out
        from safetensors.numpy import load as st_load

        return st_load(data)
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 (the safetensors package raises its own error types)
        raise _bad(path, f"safetensors could not read it ({type(exc).__name__}: {exc})") from None


class _Reader:
    def __init__(self, path: str, arrays: dict[str, np.ndarray], device: str | None) -> None:
        self.path = path
        self.arrays = arrays
        self.device = device
        self.used: set[str] = set()
        self.made: dict[str, Any] = {}
        self.warned: set[str] = set()

    def target_device(self, saved: Any) -> str:
        if self.device is not None:
            return self.device
        if not isinstance(saved, str):
            raise _bad(self.path, f"invalid device {saved!r} in the structure")
        if saved == "cpu":
            return "cpu"
        try:
            return normalize_device(saved)
        except DeviceError:
            if saved not in self.warned:
                self.warned.add(saved)
                warnings.warn(f"gg.load: {self.path!r} holds tensors saved on {saved}, which is not available here; "
                              "loading them on the CPU (pass device= to choose)", RuntimeWarning, stacklevel=4)
            return "cpu"

    def tensor(self, node: dict) -> Any:
        name = node.get("$t")
        if not isinstance(name, str) or name not in self.arrays:
            raise _bad(self.path, f"the structure refers to a missing entry {name!r}")
        arr = self.arrays[name]
        if node.get("dtype") != arr.dtype.name or node.get("shape") != list(arr.shape):
            raise _bad(self.path, f"entry {name!r} is {arr.dtype.name} {list(arr.shape)} but the structure says "
                                  f"{node.get('dtype')!r} {node.get('shape')!r}")
        kind = node.get("kind")
        key = (name, kind)
        if key in self.made:  # the same object saved twice (shared parameters) loads as one object
            return self.made[key]
        self.used.add(name)
        if kind == "numpy_scalar":
            obj = arr[()]
        elif kind == "ndarray":
            dev = self.target_device(node.get("device", "cpu"))
            obj = arr if dev == "cpu" else backend_for(dev).from_host(arr)
        elif kind in ("tensor", "parameter"):
            dev = self.target_device(node.get("device", "cpu"))
            data = np.array(arr) if dev == "cpu" else backend_for(dev).from_host(arr)
            requires_grad = node.get("requires_grad", False)
            if not isinstance(requires_grad, bool):
                raise _bad(self.path, f"invalid requires_grad {requires_grad!r} for entry {name!r}")
            if requires_grad and data.dtype.kind != "f":
                raise _bad(self.path, f"entry {name!r} of dtype {data.dtype} cannot require grad")
            if kind == "parameter":
                from gpugrad.nn.module import Parameter

                obj = Parameter(make_tensor(data, dev), requires_grad=requires_grad)
            else:
                obj = make_tensor(data, dev)
                if requires_grad:
                    obj.requires_grad_(True)
        else:
            raise _bad(self.path, f"unknown array kind {kind!r} for entry {name!r}")
        self.made[key] = obj
        return obj

    def build(self, node: Any, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise _bad(self.path, f"the structure is nested more than {_MAX_DEPTH} levels deep")
        if not isinstance(node, dict) or len(node) == 0:
            raise _bad(self.path, f"invalid structure node {str(node)[:80]!r}")
        if "$v" in node and len(node) == 1:
            v = node["$v"]
            if v is None or isinstance(v, (bool, int, float, str)):
                return v
            raise _bad(self.path, f"invalid plain value {str(v)[:80]!r}")
        if "$float" in node and len(node) == 1:
            v = node["$float"]
            if v not in ("nan", "inf", "-inf"):
                raise _bad(self.path, f"invalid float {v!r}")
            return float(v)
        if "$t" in node:
            return self.tensor(node)
        if "$dict" in node and len(node) == 1 and isinstance(node["$dict"], list):
            out = {}
            for item in node["$dict"]:
                if not (isinstance(item, list) and len(item) == 2):
                    raise _bad(self.path, "invalid dict item in the structure")
                k = item[0]
                if not (k is None or isinstance(k, (str, bool, int, float))):
                    raise _bad(self.path, f"invalid dict key {str(k)[:80]!r}")
                if k in out:
                    raise _bad(self.path, f"duplicate dict key {k!r}")
                out[k] = self.build(item[1], depth + 1)
            return out
        for tag, ctor in (("$list", list), ("$tuple", tuple)):
            if tag in node and len(node) == 1 and isinstance(node[tag], list):
                return ctor(self.build(v, depth + 1) for v in node[tag])
        raise _bad(self.path, f"invalid structure node with keys {sorted(node)[:5]}")


def load(path: str | os.PathLike, device: str | None = None) -> Any:
    """Read an object written by :func:`save` (or any safetensors file) without running any code.

    Tensors go to ``device`` when given, else back to the device they were saved from (the CPU
    where that device is missing, with a warning). A safetensors file from another framework
    loads as a dict of tensors. Raises :class:`gpugrad.CheckpointError` for a truncated, corrupt,
    inconsistent or hostile file. Example::

        ckpt = gg.load("ckpt.safetensors")
        model.load_state_dict(ckpt["model"]); opt.load_state_dict(ckpt["optimizer"])
    """
    spath = os.fspath(path)
    dev = None if device is None else normalize_device(device)
    try:
        with open(spath, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise CheckpointError(f"gg.load: cannot read {spath!r}: {exc.strerror or exc}") from None
    header, metadata = _check_header(spath, data)
    arrays = _read_arrays(spath, data, header)
    if set(arrays) != set(header):
        raise _bad(spath, "the entries read differ from the header's")
    reader = _Reader(spath, arrays, dev)
    if "gpugrad.structure" not in metadata:
        return {name: reader.tensor({"$t": name, "dtype": a.dtype.name, "shape": list(a.shape), "kind": "tensor",
                                     "device": "cpu"}) for name, a in arrays.items()}
    if metadata.get("gpugrad.format") != FORMAT:
        raise _bad(spath, f"unsupported gpugrad format {metadata.get('gpugrad.format')!r} (expected {FORMAT!r})")
    try:
        structure = _json(metadata["gpugrad.structure"])
    except (ValueError, RecursionError) as exc:
        raise _bad(spath, f"the gpugrad structure is not valid JSON ({exc})") from None
    try:
        obj = reader.build(structure, 0)
    except RecursionError:
        raise _bad(spath, "the structure is nested too deeply") from None
    unused = set(arrays) - reader.used
    if unused:
        raise _bad(spath, f"entries not referenced by the structure: {sorted(unused)[:5]}")
    return obj
