"""``gpugrad.nn.parallel.DistributedDataParallel``: data-parallel training across the ranks of
an MPI job (see ``gpugrad.distributed``).

Each rank runs the same model on its own share of the batch; during ``backward()`` the
gradients are averaged across ranks, so that every rank applies the same update and the
parameters stay identical. Training N ranks on batches of B is the same (to floating-point
reassociation) as one process on the concatenated batches of N*B.

How (PyTorch's reducer design): the parameters are grouped, in reverse order of
``module.parameters()`` (roughly the order backward produces their gradients), into buckets of
at most ``bucket_mb`` megabytes of one device and dtype. Each parameter has a post-accumulate
gradient hook, which the engine calls as soon as that gradient is complete; the hook copies the
gradient into its bucket's flat buffer, and a bucket whose gradients are all in starts its
non-blocking all-reduce, while backward goes on with the earlier layers. Buckets start in index
order on every rank (so the collectives match even when gradients arrive in a different order).
The last gradient waits for every bucket and copies the averages back into ``.grad``.
"""

from __future__ import annotations

import weakref
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from gpugrad.autograd.grad_mode import no_grad
from gpugrad.autograd.node import Node
from gpugrad.autograd.state import STATE
from gpugrad.backends import backend_for
from gpugrad.distributed import group as _group
from gpugrad.distributed.collectives import start_all_reduce
from gpugrad.distributed.errors import DistributedError
from gpugrad.errors import ArgumentError
from gpugrad.nn.module import Module, Parameter
from gpugrad.tensor import Tensor, make_tensor


class _Bucket:
    """Gradients of consecutive parameters (one device and dtype) reduced as one flat array."""

    __slots__ = ("index", "params", "offsets", "flat", "device", "ready", "work")

    # ``ready`` counts the gradients copied in during the current reduction; ``work`` is the
    # bucket's all-reduce once started.

    def __init__(self, index: int, params: list[Parameter]) -> None:
        self.index = index
        self.params = params
        self.offsets = []
        total = 0
        for p in params:
            self.offsets.append(total)
            total += p.size
        self.device = params[0].device
        self.flat = backend_for(self.device).from_host(np.zeros(total, dtype=params[0].dtype))
        self.ready = 0
        self.work: Any = None

    def slot(self, i: int) -> Any:
        p = self.params[i]
        return self.flat[self.offsets[i]:self.offsets[i] + p.size]


def assign_buckets(params: list[Parameter], bucket_bytes: int) -> list[list[Parameter]]:
    """Parameters in reverse order, cut into runs of one (device, dtype) holding at most
    ``bucket_bytes`` (a single larger parameter gets a bucket of its own)."""
    buckets: list[list[Parameter]] = []
    open_by_kind: dict[tuple, list[Parameter]] = {}
    size_by_kind: dict[tuple, int] = {}
    for p in reversed(params):
        kind = (p.device, np.dtype(p.dtype))
        current = open_by_kind.get(kind)
        if current is not None and size_by_kind[kind] + p.nbytes > bucket_bytes:
            current = None
        if current is None:
            current = open_by_kind[kind] = []
            size_by_kind[kind] = 0
            buckets.append(current)
        current.append(p)
        size_by_kind[kind] += p.nbytes
    return buckets


class DistributedDataParallel(Module):
    """Wrap ``module`` so that ``backward()`` leaves every rank with the gradients averaged over
    all ranks (each rank feeding its own share of the data).

    At construction rank 0's parameters and buffers are copied to every rank (the models start
    identical whatever each rank's initialisation was). ``broadcast_buffers`` (default, as
    PyTorch) copies rank 0's buffers again before each forward (BatchNorm running statistics).
    With ``find_unused_parameters=True`` parameters that the forward's output does not depend
    on are found by walking the graph after each forward, and count as zero gradients on this
    rank (a parameter no rank used keeps its ``.grad``); without it every parameter that
    requires grad must receive a gradient in each backward. ``no_sync()`` skips the averaging
    (gradient accumulation over several backward calls; the next synchronised backward averages
    the accumulated sum).

    ``state_dict()`` and ``load_state_dict()`` are the wrapped module's, without a "module."
    prefix, so a checkpoint saved from a DDP model loads into the plain model and back
    (``named_parameters()`` does carry the prefix, as in PyTorch).

    Example (run with ``mpirun -n 2 python train.py``; works without mpirun too)::

        import gpugrad.distributed as dist
        from gpugrad.nn.parallel import DistributedDataParallel as DDP
        dist.init()
        model = DDP(make_model().to(dist.device()))
        opt = gg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for x, y in loader:          # each rank its own shard (DistributedSampler)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(); loss.backward(); opt.step()
    """

    def __init__(self, module: Module, bucket_mb: float = 25, *, broadcast_buffers: bool = True,
                 find_unused_parameters: bool = False) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise ArgumentError(f"DistributedDataParallel: expected a gpugrad.nn.Module, got {type(module).__name__}")
        if not bucket_mb > 0:
            raise ArgumentError(f"DistributedDataParallel: bucket_mb must be positive, got {bucket_mb}")
        if not _group.is_initialized():
            _group.init()
        group = _group.current("DistributedDataParallel")
        self.module = module
        self.bucket_mb = bucket_mb
        self.broadcast_buffers = bool(broadcast_buffers)
        self.find_unused_parameters = bool(find_unused_parameters)
        params = [p for p in module.parameters() if p.requires_grad]
        self._world = group.world_size
        self._rank = group.rank
        self._params = params
        self._sync = True
        self._launched = 0  # buckets started in the current reduction (in index order)
        self._reducing = False
        self._arrived: set[int] = set()  # parameters whose gradient is in its bucket
        self._unused: list[Parameter] = []
        self._buckets = [_Bucket(i, ps) for i, ps in enumerate(assign_buckets(params, int(bucket_mb * 2 ** 20)))]
        self._slot = {id(p): (b, i) for b in self._buckets for i, p in enumerate(b.params)}
        self._hooks: list[Any] = []
        if self._world > 1:
            self._check_same_model(group)
            self._broadcast_parameters()
            self._broadcast_buffers()
            me = weakref.ref(self)

            def ready(p: Tensor, me: Any = me) -> None:
                ddp = me()
                if ddp is not None:
                    ddp._grad_ready(p)

            self._hooks = [p.register_post_accumulate_grad_hook(ready) for p in params]
            weakref.finalize(self, _remove_all, list(self._hooks))

    # ---- Module behaviour ---------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._reducing:
            self._unfinished()
        if self._world > 1 and self.broadcast_buffers:
            self._broadcast_buffers()
        out = self.module(*args, **kwargs)
        if self.find_unused_parameters and self._world > 1 and self._sync and STATE.grad_enabled:
            used = _leaves_reached(out)
            self._unused = [p for p in self._params if id(p) not in used]
        return out

    def state_dict(self, prefix: str = "", keep_vars: bool = False) -> Any:
        """The wrapped module's state dict (no "module." prefix)."""
        return self.module.state_dict(prefix, keep_vars)

    def load_state_dict(self, state_dict: Any, strict: bool = True) -> Any:
        """Load into the wrapped module (keys without a "module." prefix; a prefixed PyTorch-style
        DDP checkpoint is accepted too)."""
        if state_dict and all(isinstance(k, str) and k.startswith("module.") for k in state_dict):
            state_dict = {k[len("module."):]: v for k, v in state_dict.items()}
        return self.module.load_state_dict(state_dict, strict)

    @contextmanager
    def no_sync(self) -> Iterator[None]:
        """Backward inside this block accumulates local gradients without averaging them."""
        previous, self._sync = self._sync, False
        try:
            yield
        finally:
            self._sync = previous

    def extra_repr(self) -> str:
        return f"world_size={self._world}, buckets={len(self._buckets)}, bucket_mb={self.bucket_mb}"

    # ---- the reducer --------------------------------------------------------------------------
    def _grad_ready(self, p: Tensor) -> None:
        if not self._sync:
            return
        if not self._reducing:
            self._begin()
        elif id(p) in self._arrived:
            self._unfinished()
        self._arrived.add(id(p))
        bucket, i = self._slot[id(p)]
        bucket.slot(i)[...] = p.grad.data.reshape(-1)
        bucket.ready += 1
        if bucket.ready == len(bucket.params):
            self._launch_ready_buckets()
        elif self._launched:
            self._buckets[self._launched - 1].work.test()  # lets MPI progress the latest all-reduce
        if self._launched == len(self._buckets):
            self._finish()

    def _begin(self) -> None:
        self._reducing = True
        self._launched = 0
        self._arrived = {id(p) for p in self._unused}
        for b in self._buckets:
            b.ready = 0
            b.work = None
        for p in self._unused:  # zero contribution from this rank; counted as ready
            bucket, i = self._slot[id(p)]
            bucket.slot(i)[...] = 0
            bucket.ready += 1

    def _unfinished(self) -> None:
        self._reducing = False
        missing = [n for n, p in self.module.named_parameters() if p.requires_grad and id(p) not in self._arrived]
        raise DistributedError(
            "DistributedDataParallel: the previous backward did not produce a gradient for every parameter "
            f"(none for {missing[:8]}), so the gradients were not averaged; pass find_unused_parameters=True "
            "if the model does not use all its parameters in every forward"
        )

    def _launch_ready_buckets(self) -> None:
        while self._launched < len(self._buckets):
            b = self._buckets[self._launched]
            if b.ready < len(b.params):
                return
            b.work = start_all_reduce(b.flat, b.device, "mean", f"DistributedDataParallel gradient bucket {b.index}")
            self._launched += 1

    def _finish(self) -> None:
        self._reducing = False
        globally_unused = self._globally_unused() if self.find_unused_parameters else set()
        for b in self._buckets:
            b.work.wait()
            b.work = None
            for i, p in enumerate(b.params):
                if id(p) in globally_unused:
                    continue
                mean = b.slot(i).reshape(p.shape)
                grad = p.grad
                if grad is None or grad.requires_grad or not _writeable(grad.data):
                    p.grad = make_tensor(mean.copy(), p.device)
                else:
                    grad.data[...] = mean
                    grad._version[0] += 1

    def _globally_unused(self) -> set[int]:
        """Parameters no rank used in this iteration (one small all-reduce of usage flags)."""
        unused = {id(q) for q in self._unused}
        used = np.array([id(p) not in unused for p in self._params], dtype=np.uint8)
        start_all_reduce(used, "cpu", "max", "DistributedDataParallel unused-parameter flags").wait()
        return {id(p) for p, u in zip(self._params, used) if not u}

    # ---- construction ---------------------------------------------------------------------------
    def _check_same_model(self, group: Any) -> None:
        described = ";".join(f"{tuple(p.shape)}{p.dtype}" for p in self._params).encode()
        mine = np.array([len(self._params), zlib.crc32(described)], dtype=np.int64)
        every = group.mpi.all_gather(mine, "cpu", "DistributedDataParallel model check").wait()
        for r, theirs in enumerate(every):
            if not np.array_equal(theirs, mine):
                raise DistributedError(
                    f"DistributedDataParallel: rank {group.rank} and rank {r} wrap different models "
                    f"({int(mine[0])} and {int(theirs[0])} parameters, or different shapes/dtypes); every rank must "
                    "build the same model"
                )

    def _broadcast_parameters(self) -> None:
        """Rank 0's parameters to every rank, one flat broadcast per bucket."""
        from gpugrad.distributed.collectives import broadcast

        with no_grad():
            for b in self._buckets:
                for i, p in enumerate(b.params):
                    b.slot(i)[...] = p.data.reshape(-1)
                flat = make_tensor(b.flat, b.device)
                broadcast(flat, 0)
                for i, p in enumerate(b.params):
                    _overwrite(p, b.slot(i).reshape(p.shape))

    def _broadcast_buffers(self) -> None:
        from gpugrad.distributed.collectives import broadcast

        for buf in self.module.buffers():
            broadcast(buf, 0)


def _writeable(array: Any) -> bool:
    return getattr(getattr(array, "flags", None), "writeable", True)  # CuPy arrays have no such flag


def _overwrite(t: Tensor, value: Any) -> None:
    if not _writeable(t.data):
        t.data = value.copy()
    else:
        t.data[...] = value
    t._version[0] += 1


def _remove_all(removers: list[Any]) -> None:
    for remove in removers:
        remove()


def _leaves_reached(out: Any) -> set[int]:
    """ids of the leaf tensors that the tensors in ``out`` (nested in tuples, lists, dicts) depend on."""
    stack: list[Any] = [out]
    nodes: list[Node] = []
    leaves: set[int] = set()
    while stack:
        x = stack.pop()
        if isinstance(x, Tensor):
            if x._node is not None:
                nodes.append(x._node)
            elif x.requires_grad:
                leaves.add(id(x))
        elif isinstance(x, (list, tuple)):
            stack.extend(x)
        elif isinstance(x, dict):
            stack.extend(x.values())
    seen: set[int] = set()
    while nodes:
        node = nodes.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for edge in node.next:
            if edge is None:
                continue
            if edge.__class__ is Node:
                nodes.append(edge)
            else:
                leaves.add(id(edge))
    return leaves
