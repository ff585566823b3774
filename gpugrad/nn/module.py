"""Module, Parameter and the containers (Sequential, ModuleList), with PyTorch's semantics.

A Module holds Parameters (trainable leaf tensors), buffers (tensors that are state but not
trained, e.g. BatchNorm's running statistics) and sub-modules, registered by attribute
assignment. ``state_dict()`` names them by dotted paths ("0.weight", "fc1.bias"), exactly as
PyTorch does, so the keys of a gpugrad checkpoint line up with a PyTorch model's.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import numpy as np

from gpugrad.backends import backend_for, device_of_array, normalize_device
from gpugrad.errors import DTypeError, GpugradError, ShapeError
from gpugrad.fusion import lazy as _fusion  # (a module: fusion.lazy imports the ops)
from gpugrad.tensor import Tensor, _init, make_tensor


class Parameter(Tensor):
    """A trainable tensor: a leaf with ``requires_grad=True`` that a Module registers.

    ``Parameter(tensor_or_array)`` shares the tensor's data (no copy). Example::

        self.scale = nn.Parameter(gg.ones(4))
    """

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            data = np.zeros((0,), dtype=np.float32)
        if isinstance(data, Tensor):
            _init(self, data.data, data.device, False, None, data._version)
        else:
            from gpugrad.factories import _to_array

            arr, dev = _to_array(data, None, None, copy=False)
            _init(self, arr, dev, False, None, [0])
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` skipped."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def clear_grads(params: Iterable[Tensor], set_to_none: bool = True) -> None:
    """Set each tensor's ``.grad`` to None (PyTorch's default) or to zeros of its shape."""
    for p in params:
        if p.grad is None:
            continue
        if set_to_none:
            p.grad = None
        else:
            p.grad = make_tensor(backend_for(p.device).xp.zeros_like(p.grad.data), p.device)


class Module:
    """Base class of layers and models (PyTorch's nn.Module).

    Subclasses assign Parameters, buffers and sub-modules as attributes in ``__init__`` and
    define ``forward``; calling the module calls ``forward``. Example::

        class MLP(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1 = nn.Linear(64, 256)
                self.fc2 = nn.Linear(256, 10)

            def forward(self, x):
                return self.fc2(F.relu(self.fc1(x)))
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())

    # ---- registration ---------------------------------------------------------------------
    def _check_init(self) -> None:
        if "_parameters" not in self.__dict__:
            raise GpugradError(f"{type(self).__name__}: call super().__init__() before assigning attributes")

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if isinstance(value, Parameter):
            self._check_init()
            self._forget(name)
            d["_parameters"][name] = value
        elif isinstance(value, Module):
            self._check_init()
            self._forget(name)
            d["_modules"][name] = value
        elif "_parameters" in d and name in d["_parameters"]:
            if value is not None:
                raise GpugradError(f"{type(self).__name__}.{name} is a Parameter; assign a Parameter or None, "
                                   f"got {type(value).__name__}")
            d["_parameters"][name] = None
        elif "_buffers" in d and name in d["_buffers"]:
            if value is not None and not isinstance(value, Tensor):
                raise GpugradError(f"{type(self).__name__}.{name} is a buffer; assign a Tensor or None, "
                                   f"got {type(value).__name__}")
            d["_buffers"][name] = value
        elif "_modules" in d and name in d["_modules"]:
            if value is not None:
                raise GpugradError(f"{type(self).__name__}.{name} is a sub-module; assign a Module or None")
            d["_modules"][name] = None
        object.__setattr__(self, name, value)

    def _forget(self, name: str) -> None:
        for key in ("_parameters", "_buffers", "_modules"):
            self.__dict__[key].pop(name, None)
        self.__dict__["_non_persistent"].discard(name)

    def __delattr__(self, name: str) -> None:
        if "_parameters" in self.__dict__:
            self._forget(name)
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (or None: a declared but absent parameter, like a missing bias)."""
        self._check_init()
        if param is not None and not isinstance(param, Parameter):
            raise GpugradError(f"register_parameter: {name!r} must be a Parameter or None, got {type(param).__name__}")
        self._forget(name)
        self.__dict__["_parameters"][name] = param
        object.__setattr__(self, name, param)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Register a buffer: state saved in ``state_dict`` (unless not ``persistent``) and moved by
        ``to()``, but not returned by ``parameters()``. Example: ``self.register_buffer("mask", m)``."""
        self._check_init()
        if tensor is not None and not isinstance(tensor, Tensor):
            raise GpugradError(f"register_buffer: {name!r} must be a Tensor or None, got {type(tensor).__name__}")
        self._forget(name)
        self.__dict__["_buffers"][name] = tensor
        if not persistent:
            self.__dict__["_non_persistent"].add(name)
        object.__setattr__(self, name, tensor)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register a sub-module under ``name``."""
        self._check_init()
        if module is not None and not isinstance(module, Module):
            raise GpugradError(f"add_module: {name!r} must be a Module or None, got {type(module).__name__}")
        self._forget(name)
        self.__dict__["_modules"][name] = module
        object.__setattr__(self, name, module)

    # ---- calling ----------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # ---- traversal --------------------------------------------------------------------------
    def named_modules(self, prefix: str = "", memo: set | None = None) -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for this module and every descendant, each module once."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, kind: str, prefix: str, recurse: bool, dedupe: bool = True) -> Iterator[tuple[str, Any]]:
        seen: set[int] = set()
        mods = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for mprefix, m in mods:
            for name, t in getattr(m, kind).items():
                if t is None or (dedupe and id(t) in seen):
                    continue
                seen.add(id(t))
                yield (f"{mprefix}.{name}" if mprefix else name), t

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) pairs; a parameter shared by two modules appears once."""
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every Parameter of this module and its descendants (what an optimiser takes)."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every descendant and then on this module (e.g. a custom initialisation)."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ---- modes and gradients -------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode (Dropout drops, BatchNorm uses and updates batch statistics); returns self."""
        if not isinstance(mode, bool):
            raise GpugradError(f"train: mode must be a bool, got {type(mode).__name__}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of all parameters (set them to None, or zero them in place)."""
        clear_grads(self.parameters(), set_to_none)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    # ---- devices and dtypes ------------------------------------------------------------------
    def to(self, device: Any = None, dtype: Any = None) -> Module:
        """Move every parameter and buffer to ``device`` and/or cast floating ones to ``dtype``, in
        place (the Parameter objects stay the same, so an optimiser made before keeps working).

        Example: ``model.to("cuda")``, ``model.to(gg.float64)``.
        """
        from gpugrad.factories import check_dtype
        from gpugrad.tensor import _looks_like_dtype

        if isinstance(device, str) and _looks_like_dtype(device):
            device, dtype = None, device
        elif device is not None and not isinstance(device, str):
            try:
                device, dtype = None, check_dtype(device, "Module.to")
            except DTypeError:
                raise GpugradError(f"Module.to: expected a device string or a dtype, got {device!r}") from None
        dev = None if device is None else normalize_device(device)
        dt = None if dtype is None else check_dtype(dtype, "Module.to")
        if dt is not None and dt.kind != "f":
            raise DTypeError(f"Module.to: only floating dtypes are allowed, got {dt}")
        for t in list(self.parameters()) + list(self.buffers()):
            _move(t, dev, dt)
            if t.grad is not None:
                _move(t.grad, dev, dt)
        return self

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self, device: int | None = None) -> Module:
        return self.to("cuda" if device is None else f"cuda:{int(device)}")

    def float(self) -> Module:
        return self.to(dtype=np.float32)

    def double(self) -> Module:
        return self.to(dtype=np.float64)

    def half(self) -> Module:
        return self.to(dtype=np.float16)

    # ---- state -----------------------------------------------------------------------------------
    def state_dict(self, prefix: str = "", keep_vars: bool = False) -> OrderedDict[str, Tensor]:
        """Parameters and persistent buffers by dotted name, as detached tensors sharing the data
        (PyTorch's state_dict). Example: ``gg.save(model.state_dict(), "model.safetensors")``."""
        out: OrderedDict[str, Tensor] = OrderedDict()
        for mprefix, m in self.named_modules(prefix.rstrip(".")):
            for name, p in m._parameters.items():
                if p is not None:
                    out[f"{mprefix}.{name}" if mprefix else name] = p if keep_vars else p.detach()
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    out[f"{mprefix}.{name}" if mprefix else name] = b if keep_vars else b.detach()
        return out

    def load_state_dict(self, state_dict: Any, strict: bool = True) -> IncompatibleKeys:
        """Copy values into this module's parameters and buffers (in place, onto their devices and
        dtypes). Values may be Tensors or arrays. Every key and shape is checked before anything is
        copied, so a failed load changes nothing; ``strict`` also rejects missing and unexpected keys.
        Returns (missing_keys, unexpected_keys).
        """
        if not hasattr(state_dict, "items"):
            raise GpugradError(f"load_state_dict: expected a dict of tensors, got {type(state_dict).__name__}")
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise GpugradError(f"load_state_dict for {type(self).__name__}: " + "; ".join(parts))
        plan = []
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            arr = _host_or_device_array(value, key)
            if tuple(arr.shape) != tuple(target.shape):
                raise ShapeError(f"load_state_dict for {type(self).__name__}: size mismatch for {key!r}: the "
                                 f"checkpoint has shape {tuple(arr.shape)}, the model has shape {tuple(target.shape)}")
            if arr.dtype.kind not in "fiub" or (target.dtype.kind == "f") != (arr.dtype.kind == "f"):
                raise DTypeError(f"load_state_dict for {type(self).__name__}: {key!r} has dtype {arr.dtype} in the "
                                 f"checkpoint but {target.dtype} in the model")
            plan.append((target, arr))
        _fusion.flush()  # pending chains read the parameters as they are before loading
        for target, arr in plan:
            B = backend_for(target.device)
            src_dev = device_of_array(arr)
            if src_dev != target.device:
                arr = B.from_host(backend_for(src_dev).to_host(arr) if src_dev != "cpu" else np.asarray(arr))
            new = arr.astype(target.dtype, copy=True)
            if isinstance(target.data, np.ndarray) and not target.data.flags.writeable:
                target.data = new
            else:
                target.data[...] = new
            target._version[0] += 1
        return IncompatibleKeys(missing, unexpected)

    # ---- printing ---------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = []
        for name, m in self._modules.items():
            body = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {body}")
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        head = f"{type(self).__name__}(" + (extra + "\n" if extra else "\n")
        return head + "".join("  " + line + "\n" for line in lines) + ")"


def _host_or_device_array(value: Any, key: str) -> Any:
    if isinstance(value, Tensor):
        return value.data
    if device_of_array(value) is not None:
        return value
    try:
        return np.asarray(value)
    except Exception as exc:  # noqa: BLE001 (any conversion failure is reported the same way)
        raise GpugradError(f"load_state_dict: value for {key!r} is not an array ({type(value).__name__})") from exc


def _move(t: Tensor, dev: str | None, dt: Any) -> None:
    """Move/cast a tensor's storage in place (keeps the object; bumps its version)."""
    arr = t.data
    changed = False
    if dev is not None and dev != t.device:
        arr = backend_for(dev).from_host(backend_for(t.device).to_host(arr))
        t.device = dev
        changed = True
    if dt is not None and arr.dtype.kind == "f" and arr.dtype != dt:
        arr = arr.astype(dt)
        changed = True
    if changed:
        t.data = arr
        t._version[0] += 1


class Sequential(Module):
    """Modules applied in order: ``Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))``.

    Sub-modules are named "0", "1", ... (or by the keys of an OrderedDict), as in PyTorch.
    """

    def __init__(self, *modules: Any) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(str(name), m)
        else:
            for i, m in enumerate(modules):
                if not isinstance(m, Module):
                    raise GpugradError(f"Sequential: argument {i} is not a Module ({type(m).__name__})")
                self.add_module(str(i), m)

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, index: int | slice) -> Any:
        mods = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(OrderedDict(list(self._modules.items())[index]))
        return mods[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self)), module)
        return self


class ModuleList(Module):
    """A list of modules, registered (so their parameters are found) but not called in sequence.

    Example: ``self.blocks = nn.ModuleList([Block() for _ in range(4)])``.
    """

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        for m in modules or ():
            self.append(m)

    def append(self, module: Module) -> ModuleList:
        if not isinstance(module, Module):
            raise GpugradError(f"ModuleList.append: expected a Module, got {type(module).__name__}")
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def __getitem__(self, index: int | slice) -> Any:
        mods = list(self._modules.values())
        if isinstance(index, slice):
            return ModuleList(mods[index])
        return mods[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())


class ModuleDict(Module):
    """Modules by name, registered (so their parameters are found, under ``name.``) in insertion
    order, with dict methods. Example::

        self.heads = nn.ModuleDict({"cls": nn.Linear(64, 10), "box": nn.Linear(64, 4)})
        out = self.heads["cls"](features)
    """

    def __init__(self, modules: Any = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(module, Module):
            raise GpugradError(f"ModuleDict: {key!r} must be a Module, got {type(module).__name__}")
        self.add_module(str(key), module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]
        object.__delattr__(self, key)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self) -> Iterable[str]:
        return self._modules.keys()

    def items(self) -> Iterable[tuple[str, Module]]:
        return self._modules.items()

    def values(self) -> Iterable[Module]:
        return self._modules.values()

    def pop(self, key: str) -> Module:
        module = self[key]
        del self[key]
        return module

    def clear(self) -> None:
        for key in list(self._modules):
            del self[key]

    def update(self, modules: Any) -> None:
        """Add (or replace) modules from a mapping or an iterable of (name, module) pairs."""
        pairs = modules.items() if hasattr(modules, "items") else modules
        for entry in pairs:
            if not isinstance(entry, (tuple, list)) or len(entry) != 2:
                raise GpugradError(f"ModuleDict.update: expected (name, module) pairs, got {entry!r}")
            self[entry[0]] = entry[1]
