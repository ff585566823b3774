"""``cupy.RawModule`` / ``cupy.RawKernel`` on the emulated device: CUDA source compiled for the
host and launched with CuPy's rules.

* ``RawModule(code=...)`` is checked with NVRTC exactly as CuPy would compile it (when NVRTC is
  installed: the ``nvidia-cuda-nvrtc`` wheel): source that a pip-installed CuPy could not compile
  fails here too, with CuPy's ``CompileException``. The host build comes from the prebuilt
  kernel libraries when they hold this very source (``emu_index.json`` of a CMake build), else
  the source is compiled for the host with the C++ compiler (``kernels/gg_host_emu.h`` supplies
  threadIdx, __syncthreads, atomics), cached on disk by its preprocessed text.
* ``RawModule(path=...)`` loads a fatbin as CUDA would: the file must exist; the emulator runs
  the host build of the same unit.
* A launch checks what CUDA and CuPy check (grid and block are tuples; at most 1024 threads per
  block, block and grid dimension limits, 48 KiB of shared memory) and what a GPU would not
  tell you until the results are wrong: the number of arguments and each one's C type against
  the kernel's parameters (an int64 where a double is expected, a float64 array where the
  kernel reads float, a NumPy array where a device pointer is expected). Arguments are packed
  by CuPy's rules: Python ints (and bools) as int64, floats as float64, NumPy scalars by their
  type, one-element NumPy arrays by value (structs), device arrays as pointers.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import subprocess
import tempfile
import threading
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from gpugrad.testing.cuda_emulator import _device, nvrtc
from gpugrad.testing.cuda_emulator._array import MemoryPointer, ndarray
from gpugrad.testing.cuda_emulator._device import COUNTERS, count_launch, distinct_bytes

_NUMPY_SCALARS = {np.dtype(c).type for c in "?bhilqBHILQefdFD"}
_lock = threading.RLock()


class CompileException(Exception):
    """``cupy.cuda.compiler.CompileException``: the source does not compile."""

    def __init__(self, msg: str, source: str, name: str, options: tuple, backend: str = "nvrtc") -> None:
        self._msg = msg
        self.source = source
        self.name = name
        self.options = options
        self.backend = backend
        super().__init__(msg)

    def __str__(self) -> str:
        return self._msg

    def get_message(self) -> str:
        return self._msg

    def dump(self, f: Any) -> None:
        f.write(f"==== {self.name} ====\n{self.source}\n")


class LaunchError(RuntimeError):
    """A launch that CUDA refuses (``CUDA_ERROR_INVALID_VALUE``) or a kernel fault the emulator
    detected (a divergent barrier, a barrier in a kernel run sequentially)."""


# ---- where the host builds live -------------------------------------------------------------------
class Config:
    kernel_dir: Path | None = None  # a CMake build's kernels folder (emu_index.json, libgg_emu.so)
    sanitize: str = ""  # "", "address" or "thread": compile every kernel with that sanitizer
    # How the threads of a block run in kernels with barriers: "fibers" (interleaved at each
    # __syncthreads on one OS thread: fast) or "os" (concurrent OS threads; always under a sanitizer)
    threads: str = os.environ.get("GPUGRAD_EMULATOR_THREADS", "fibers")
    check_nvrtc: bool = os.environ.get("GPUGRAD_EMULATOR_NVRTC", "1") != "0"


def cache_dir() -> Path:
    env = os.environ.get("GPUGRAD_EMULATOR_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gpugrad"
    path = base / "cuda-emulator" if not env else base
    path.mkdir(parents=True, exist_ok=True)
    return path


@cache
def _prebuilt_index(kernel_dir: Path) -> dict:
    import json

    f = kernel_dir / "emu_index.json"
    if not f.is_file():
        return {"modules": {}, "fatbins": {}}
    return json.loads(f.read_text())


_LIBRARIES: dict[str, ctypes.CDLL] = {}


def _load_library(path: str) -> ctypes.CDLL:
    lib = _LIBRARIES.get(path)
    if lib is None:
        lib = _LIBRARIES[path] = ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)
    os_threads = Config.threads == "os" or bool(Config.sanitize)
    lib.gg_emu_set_mode(ctypes.c_int(1 if os_threads else 0))
    return lib


def _host_header_dir() -> Path:
    from gpugrad.backends.cuda_codegen import kernels_dir

    return kernels_dir()


def _compiler() -> str:
    return os.environ.get("CXX") or "g++"


_KERNEL_MARK = re.compile(r'extern\s+"C"\s+GG_EMU_KERNEL_MARK\s+void\s+(\w+)\s*\(')


def _host_flags(options: tuple) -> list[str]:
    flags = [f"-I{_host_header_dir()}"]
    for o in options:
        if o.startswith("-I") or o.startswith("-D"):
            flags.append(o)
        elif o.startswith("--include-path="):
            flags.append("-I" + o.split("=", 1)[1])
        elif o.startswith("--define-macro="):
            flags.append("-D" + o.split("=", 1)[1])
    return flags


def host_build(code: str, options: tuple) -> tuple[str, list[str]]:
    """Compile ``code`` for the host (cached); returns (library path, kernel names)."""
    with _lock:
        work = cache_dir()
        flags = _host_flags(options)
        san = Config.sanitize
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            src = Path(tmp) / "kernel.cu"
            src.write_text(code)
            pre = subprocess.run(
                [_compiler(), "-std=c++20", "-E", "-P", "-DGG_EMU_SCAN", "-x", "c++", *flags, "-include",
                 "gg_host_emu.h", str(src)], capture_output=True, text=True)
            if pre.returncode:
                raise CompileException(f"host preprocessing failed:\n{pre.stderr[-4000:]}", code, "kernel.cu",
                                       options, "host")
            names = sorted(set(_KERNEL_MARK.findall(pre.stdout)))
            key = hashlib.sha256((pre.stdout + "\0" + san + "\0" + " ".join(names)).encode()).hexdigest()[:32]
            lib = work / f"k{key}{'-' + san if san else ''}.so"
            if lib.is_file():
                return str(lib), names
            wrapper = Path(tmp) / "wrapper.cpp"
            wrapper.write_text(f'#include "gg_host_emu.h"\n#include "{src}"\n'
                               + "".join(f"GG_EMU_EXPORT({n})\n" for n in names))
            cmd = [_compiler(), "-std=c++20", "-O1", "-g0", "-fPIC", "-shared", "-pthread", "-fvisibility=hidden",
                   "-ffp-contract=off", "-Wno-unknown-pragmas", *flags]
            if san:
                cmd += [f"-fsanitize={san}", "-fno-omit-frame-pointer"]
            out = Path(tmp) / "lib.so"
            res = subprocess.run([*cmd, str(wrapper), "-o", str(out)], capture_output=True, text=True)
            if res.returncode:
                raise CompileException(f"host compilation failed:\n{res.stderr[-4000:]}", code, "kernel.cu",
                                       options, "host")
            os.replace(out, lib)
            return str(lib), names


@cache
def _nvrtc_checked(key: str) -> bool:
    return (cache_dir() / f"nvrtc-{key}.ok").is_file()


def nvrtc_check(code: str, options: tuple) -> None:
    """Compile ``code`` with NVRTC as CuPy would on the emulated GPU (compute capability 9.0);
    raise CompileException with NVRTC's log when it fails. Cached per source and options."""
    if not Config.check_nvrtc or nvrtc.library() is None:
        return
    headers = "".join(p.read_text() for d in nvrtc.include_dirs(options) if d.is_dir() for p in sorted(d.glob("*.cu*")))
    key = hashlib.sha256((code + "\0" + repr(options) + "\0" + headers + repr(nvrtc.version())).encode()).hexdigest()
    if _nvrtc_checked(key):
        return
    opts = nvrtc.cupy_options(options, _device.COMPUTE_CAPABILITY)
    ok, log = nvrtc.compile_source(code, opts)
    if not ok:
        raise CompileException(f"{log}\n(NVRTC {nvrtc.version()}, options {' '.join(opts)})", code, "kern.cu", opts)
    (cache_dir() / f"nvrtc-{key}.ok").write_text("")
    _nvrtc_checked.cache_clear()


# ---- kernels -------------------------------------------------------------------------------------
_LAUNCH_ARGTYPES = [ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_void_p),
                    ctypes.c_char_p, ctypes.c_uint]


class _Native:
    """A host-compiled kernel: its launcher and its parameters' C types."""

    def __init__(self, lib: ctypes.CDLL, name: str) -> None:
        try:
            self.fn = getattr(lib, f"gg_emu_launch_{name}")
            sig = getattr(lib, f"gg_emu_sig_{name}")
        except AttributeError:
            raise LaunchError(f"CUDA_ERROR_NOT_FOUND: named symbol not found ({name!r} is not a kernel of this "
                              "module)") from None
        self.fn.argtypes = _LAUNCH_ARGTYPES
        self.fn.restype = ctypes.c_int
        sig.restype = ctypes.c_char_p
        text = sig().decode()
        self.params = text.split(",") if text else []


def _dt_code(dt: np.dtype) -> str:
    if dt.kind == "V":
        return f"S{dt.itemsize}"
    kind = {"f": "f", "i": "i", "u": "u", "b": "b", "c": "c"}[dt.kind]
    return f"{kind}{dt.itemsize}"


def _pack(a: Any, i: int, kname: str) -> tuple[Any, str, int]:
    """(ctypes value, C type code, bytes the kernel may touch) per CuPy's argument rules."""
    if a is None:
        return ctypes.c_void_p(0), "p*", 0
    if isinstance(a, ndarray):
        return ctypes.c_void_p(a._ptr()), "p" + _dt_code(a.dtype), distinct_bytes(a._np)
    if isinstance(a, MemoryPointer):
        return ctypes.c_void_p(a.ptr), "p*", 0
    if isinstance(a, np.ndarray):
        if a.size != 1:
            raise TypeError(f"You are trying to pass a numpy.ndarray of shape {a.shape} as a kernel parameter. "
                            "Only numpy.ndarrays of size one can be passed by value. If you meant to pass a pointer "
                            "to device memory, you need to pass a cupy.ndarray instead.")
        v = np.ascontiguousarray(a).copy()
        return v, _dt_code(v.dtype), 0
    if type(a) not in _NUMPY_SCALARS:
        if isinstance(a, int):  # bool too: CuPy tests int first
            a = np.int64(a)
        elif isinstance(a, float):
            a = np.float64(a)
        elif isinstance(a, complex):
            a = np.complex128(a)
        else:
            raise TypeError(f"Unsupported type {type(a)}")
    v = np.array(a)
    return v, _dt_code(v.dtype), 0


def _accepts(param: str, got: str) -> bool:
    if param == got:
        return True
    if param.startswith("p") and got.startswith("p"):
        if got == "p*" or param == "pv":
            return True
        p, g = param[1:], got[1:]
        # a struct storage type (gg_half) holds elements of its size (float16)
        return p.startswith("S") and int(p[1:]) == int(g[1:])
    return False


_NAMES = {"f4": "float", "f8": "double", "f2": "half", "i8": "long long", "i4": "int", "u4": "unsigned int",
          "b1": "bool", "i2": "short", "u8": "unsigned long long", "u1": "unsigned char", "i1": "signed char",
          "c8": "complex64", "c16": "complex128", "pv": "void*", "p*": "a pointer"}


def _cname(code: str) -> str:
    if code.startswith("p") and code not in ("pv", "p*"):
        return _cname(code[1:]) + "*"
    if code.startswith("S"):
        return f"a {code[1:]}-byte struct"
    return _NAMES.get(code, code)


def _dims(value: Any, what: str) -> tuple[int, int, int]:
    if not isinstance(value, tuple):
        raise TypeError(f"Argument '{what}' has incorrect type (expected tuple, got {type(value).__name__})")
    v = (tuple(int(x) for x in value) + (1, 1))[:3]
    return max(1, v[0]), max(1, v[1]), max(1, v[2])


class RawKernel:
    """``cupy.RawKernel``: one kernel of CUDA source (or of a RawModule)."""

    def __init__(self, code: str, name: str, options: tuple = (), backend: str = "nvrtc", *,
                 translate_cucomplex: bool = False, enable_cooperative_groups: bool = False,
                 jitify: bool = False) -> None:
        if not isinstance(options, tuple):
            raise TypeError(f"Argument 'options' has incorrect type (expected tuple, got {type(options).__name__})")
        self.code = code
        self.name = name
        self.options = options
        self.backend = backend
        self.enable_cooperative_groups = enable_cooperative_groups
        self._native: _Native | None = None
        self._module: RawModule | None = None

    @property
    def kernel(self) -> _Native:
        if self._native is None:
            mod = self._module or RawModule(code=self.code, options=self.options, backend=self.backend)
            self._native = mod._native(self.name)
        return self._native

    @property
    def max_threads_per_block(self) -> int:
        return _device.MAX_THREADS_PER_BLOCK

    @property
    def attributes(self) -> dict:
        return {"max_threads_per_block": _device.MAX_THREADS_PER_BLOCK, "shared_size_bytes": 0,
                "const_size_bytes": 0, "local_size_bytes": 0, "num_regs": 32, "ptx_version": 90,
                "binary_version": 90, "max_dynamic_shared_size_bytes": _device.SHARED_MEMORY_PER_BLOCK}

    def __call__(self, grid: Any, block: Any, args: Any, **kwargs: Any) -> None:
        shared_mem = int(kwargs.pop("shared_mem", 0))
        kwargs.pop("stream", None)
        if kwargs:
            raise TypeError(f"RawKernel.__call__() got an unexpected keyword argument {next(iter(kwargs))!r}")
        g = _dims(grid, "grid")
        b = _dims(block, "block")
        nthreads = b[0] * b[1] * b[2]
        if any(x > m for x, m in zip(b, _device.MAX_BLOCK_DIM)) or nthreads > _device.MAX_THREADS_PER_BLOCK:
            raise LaunchError(f"CUDA_ERROR_INVALID_VALUE: invalid argument ({self.name}: block {b} has {nthreads} "
                              f"threads; at most {_device.MAX_THREADS_PER_BLOCK} per block, dimensions at most "
                              f"{_device.MAX_BLOCK_DIM})")
        if any(x > m for x, m in zip(g, _device.MAX_GRID_DIM)):
            raise LaunchError(f"CUDA_ERROR_INVALID_VALUE: invalid argument ({self.name}: grid {g} exceeds "
                              f"{_device.MAX_GRID_DIM})")
        if not 0 <= shared_mem <= _device.SHARED_MEMORY_PER_BLOCK:
            raise LaunchError(f"CUDA_ERROR_INVALID_VALUE: invalid argument ({self.name}: {shared_mem} bytes of "
                              f"dynamic shared memory; at most {_device.SHARED_MEMORY_PER_BLOCK})")
        native = self.kernel
        args = tuple(args)
        if len(args) != len(native.params):
            raise LaunchError(f"{self.name}: {len(args)} arguments for {len(native.params)} parameters "
                              f"({', '.join(_cname(p) for p in native.params)}); on a GPU the kernel would read "
                              "garbage")
        keep = []
        ptrs = (ctypes.c_void_p * max(1, len(args)))()
        nbytes = 0
        for i, (a, param) in enumerate(zip(args, native.params)):
            value, code, touched = _pack(a, i, self.name)
            if not _accepts(param, code):
                raise TypeError(f"{self.name}: argument {i} is {_cname(code)} ({type(a).__name__}) but the kernel's "
                                f"parameter is {_cname(param)}; on a GPU it would be reinterpreted")
            keep.append(value)
            ptrs[i] = value.ctypes.data if isinstance(value, np.ndarray) else ctypes.addressof(value)
            nbytes += touched
        gv = (ctypes.c_uint * 3)(*g)
        bv = (ctypes.c_uint * 3)(*b)
        err = ctypes.create_string_buffer(1024)
        rc = native.fn(gv, bv, ptrs, err, 1024)
        count_launch(nbytes)
        if rc:
            raise LaunchError(f"kernel fault detected by the emulated device: {err.value.decode()}")


class RawModule:
    """``cupy.RawModule``: CUDA source compiled at run time, or a compiled binary loaded."""

    _compiled: dict[tuple, tuple[str, list[str]]] = {}  # in-process cache, as CuPy memoizes modules

    def __init__(self, code: str | None = None, *, path: str | None = None, options: tuple = (),
                 backend: str = "nvrtc", translate_cucomplex: bool = False, enable_cooperative_groups: bool = False,
                 name_expressions: Any = None, jitify: Any = None) -> None:
        if (code is None) == (path is None):
            raise TypeError("Exactly one of code and path keyword arguments must be given.")
        if not isinstance(options, tuple):
            raise TypeError(f"Argument 'options' has incorrect type (expected tuple, got {type(options).__name__})")
        if backend not in ("nvrtc", "nvcc"):
            raise ValueError(f"Unsupported backend {backend!r}")
        if code is not None and not isinstance(code, str):
            raise TypeError(f"Argument 'code' has incorrect type (expected str, got {type(code).__name__})")
        self.code = code
        self.file_path = path
        self.options = options
        self.backend = backend
        self.enable_cooperative_groups = enable_cooperative_groups
        self._lib: ctypes.CDLL | None = None
        self._kernels: dict[str, RawKernel] = {}

    def _load(self) -> ctypes.CDLL:
        if self._lib is not None:
            return self._lib
        if self.file_path is not None:
            p = Path(self.file_path)
            if not p.is_file():
                raise LaunchError(f"CUDA_ERROR_FILE_NOT_FOUND: file not found ({self.file_path})")
            kd = Config.kernel_dir
            entry = _prebuilt_index(kd)["fatbins"].get(p.stem) if kd is not None and not Config.sanitize else None
            if entry is None:
                raise LaunchError(f"the emulated device cannot run {self.file_path}: no host build of unit {p.stem!r} "
                                  f"in {kd} (build it with CMake, or compile from source)")
            self._lib = _load_library(str(kd / entry["lib"]))
            return self._lib
        key = (self.code, self.options, Config.sanitize)
        got = RawModule._compiled.get(key)
        if got is None:
            entry = None
            kd = Config.kernel_dir
            if kd is not None:
                sha = hashlib.sha256(self.code.encode()).hexdigest()
                entry = _prebuilt_index(kd)["modules"].get(sha)
            if entry is None:
                # A source the prebuilt kernels do not hold; those that it does are checked with
                # NVRTC all at once by gpugrad's tests (tests/test_nvrtc.py).
                nvrtc_check(self.code, self.options)
            if entry is not None and not Config.sanitize:
                got = (str(kd / entry["lib"]), entry["kernels"])
            else:
                got = host_build(self.code, self.options)
            RawModule._compiled[key] = got
            COUNTERS.compilations += 1
        self._lib = _load_library(got[0])
        return self._lib

    def _native(self, name: str) -> _Native:
        return _Native(self._load(), name)

    def compile(self, log_stream: Any = None) -> None:  # noqa: A003
        self._load()

    def get_function(self, name: str) -> RawKernel:
        k = self._kernels.get(name)
        if k is None:
            k = RawKernel(self.code or "", name, self.options, self.backend)
            k._module = self
            k._native = self._native(name)
            self._kernels[name] = k
        return k

    def get_global(self, name: str) -> Any:
        raise NotImplementedError("RawModule.get_global is not emulated")
