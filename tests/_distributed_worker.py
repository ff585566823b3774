"""The program that tests/test_distributed_mpi.py runs under ``mpirun -n 2``.

``python -m tests._distributed_worker checks OUT_DIR`` runs every check on every rank and writes
``OUT_DIR/rank<r>.json``: {check name: "ok" or the failure's traceback}. The other modes
(``hang``, ``die``) are the failure scenarios: one rank stops taking part in collectives.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np

import gpugrad as gg
import gpugrad.distributed as dist
import gpugrad.nn.functional as F
from gpugrad import nn
from gpugrad.nn.parallel import DistributedDataParallel

CHECKS: dict[str, Callable[[], str | None]] = {}


def check(fn: Callable[[], str | None]) -> Callable[[], str | None]:
    CHECKS[fn.__name__] = fn
    return fn


def close(a: object, b: object, tol: float = 1e-12) -> None:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape and np.allclose(a, b, rtol=tol, atol=tol), f"{a} != {b}"


# ---- collectives -------------------------------------------------------------------------------
@check
def collectives_on_cpu() -> None:
    r, n = dist.rank(), dist.world_size()
    assert (n, dist.get_backend()) == (2, "mpi")
    t = gg.tensor([r + 1.0, 10.0 * r])
    assert dist.all_reduce(t) is t
    close(t.numpy(), [3.0, 10.0])
    t = gg.tensor(np.arange(6.0).reshape(2, 3).T * (r + 1))  # not contiguous
    dist.all_reduce(t, op="max")
    close(t.numpy(), np.arange(6.0).reshape(2, 3).T * 2)
    t = gg.tensor([float(r)], dtype="float32")
    dist.all_reduce(t, op="min")
    close(t.numpy(), [0.0])
    t = gg.tensor([1.0 + r], dtype="float16")  # widened to float32 on the wire
    dist.all_reduce(t, op="mean")
    assert t.dtype == np.float16
    close(t.numpy(), [1.5])
    t = gg.tensor(np.full(3, 7 * (r + 1), dtype=np.int16))
    dist.all_reduce(t)
    assert t.dtype == np.int16 and t.numpy().tolist() == [21, 21, 21]
    flags = gg.tensor([r == 0, True])
    dist.all_reduce(flags, op="min")  # all
    assert flags.numpy().tolist() == [False, True]
    flags = gg.tensor([r == 0, False])
    dist.all_reduce(flags, op="max")  # any
    assert flags.numpy().tolist() == [True, False]
    v = t.version
    dist.all_reduce(t)
    assert t.version == v + 1  # in place, so saved-for-backward checks see it
    b = gg.tensor([[r * 10.0, r + 1.0]])
    assert dist.broadcast(b, src=1) is b
    close(b.numpy(), [[10.0, 2.0]])
    parts = dist.all_gather(gg.tensor([[r, 2 * r]], dtype="int64"))
    assert [p.numpy().tolist() for p in parts] == [[[0, 0]], [[1, 2]]]
    dist.barrier()
    try:
        dist.all_gather(gg.tensor([1.0] * (r + 1)))
    except dist.DistributedError as exc:
        assert "same shape" in str(exc)
    else:
        raise AssertionError("all_gather of different shapes must fail")
    try:
        dist.all_reduce(gg.tensor([1, 2]), op="mean")
    except gg.DTypeError as exc:
        assert "floating" in str(exc)
    else:
        raise AssertionError("mean of integers must fail")
    try:
        dist.init(backend="nccl")
    except dist.DistributedError as exc:
        assert "already initialised with backend 'mpi'" in str(exc)
    else:
        raise AssertionError("init with another backend must fail")
    dist.destroy()
    try:
        dist.init(backend="nccl")  # no CuPy here
    except gg.DeviceError as exc:
        assert "CuPy" in str(exc)
    else:
        raise AssertionError("the nccl backend without CuPy must fail")
    finally:
        dist.init()


# ---- DistributedDataParallel ---------------------------------------------------------------------
def mlp(seed: int) -> nn.Module:
    rng = np.random.default_rng(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3)).double()
    for p in model.parameters():
        p.data[...] = rng.standard_normal(p.shape) * 0.5
    return model


@check
def ddp_equals_one_process_on_the_concatenated_batch() -> None:
    """N ranks on batches of B == one process on the N*B batch, after SGD steps with momentum."""
    r, n = dist.rank(), dist.world_size()
    reference = mlp(seed=0)  # what rank 0 builds; rank 1 builds different weights on purpose
    model = DistributedDataParallel(mlp(seed=r), bucket_mb=0.001)  # ~1 KB buckets: several of them
    assert len(model._buckets) >= 3
    for a, b in zip(reference.parameters(), model.parameters()):
        close(a.numpy(), b.numpy(), 0)  # rank 0's weights everywhere
    opt_ref = gg.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    opt = gg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(123)
    B = 5
    for _ in range(6):
        x = rng.standard_normal((n * B, 6))
        y = rng.integers(0, 3, n * B)
        loss = F.cross_entropy(reference(gg.tensor(x)), gg.tensor(y))
        opt_ref.zero_grad()
        loss.backward()
        opt_ref.step()
        mine = slice(r * B, (r + 1) * B)
        hidden = model.module[0](gg.tensor(x[mine]))
        started: list[int] = []
        hidden.register_hook(lambda g, started=started: started.append(model._launched))  # at the first layer
        out = model.module[4](model.module[3](model.module[2](model.module[1](hidden))))
        loss = F.cross_entropy(out, gg.tensor(y[mine]))
        opt.zero_grad()
        loss.backward()
        # the later layers' buckets were all-reducing while backward still had the first layer to do
        assert started and 0 < started[0] < len(model._buckets), started
        for p, q in zip(model.parameters(), reference.parameters()):
            close(p.grad.numpy(), q.grad.numpy())  # the mean gradient on every rank
        opt.step()
    for a, b in zip(reference.parameters(), model.parameters()):
        close(a.numpy(), b.numpy())
    assert set(model.state_dict()) == set(reference.state_dict())  # no "module." prefix


@check
def ddp_broadcasts_buffers_and_syncs_gradient_accumulation() -> None:
    r = dist.rank()
    inner = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    inner[1].running_mean.data[...] = r + 1.0
    model = DistributedDataParallel(inner)
    close(inner[1].running_mean.numpy(), np.ones(4))  # rank 0's buffer
    x = gg.tensor(np.random.default_rng(r).standard_normal((4, 3)).astype(np.float32))
    with model.no_sync():
        model(x).sum().backward()  # local only
    local = dist.all_gather(gg.tensor(inner[0].weight.grad.numpy()))
    assert not np.allclose(local[0].numpy(), local[1].numpy())  # not averaged
    model(x).sum().backward()  # accumulates 2x the local gradient, then averages the sum
    close(inner[0].weight.grad.numpy(), local[0].numpy() + local[1].numpy(), 1e-6)


@check
def ddp_with_unused_parameters() -> None:
    r = dist.rank()

    class TwoHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Linear(3, 3)
            self.head_a = nn.Linear(3, 1)
            self.head_b = nn.Linear(3, 1)
            self.never = nn.Linear(3, 1)

        def forward(self, x: gg.Tensor) -> gg.Tensor:
            return (self.head_a if r == 0 else self.head_b)(self.body(x))  # each rank a different head

    model = DistributedDataParallel(TwoHeads(), find_unused_parameters=True)
    x = gg.tensor(np.ones((2, 3)))
    model(x).sum().backward()
    inner = model.module
    a = dist.all_gather(inner.head_a.weight.grad)
    close(a[0].numpy(), a[1].numpy())  # rank 1 did not use head_a yet holds the mean
    assert inner.never.weight.grad is None  # no rank used it: untouched
    strict = DistributedDataParallel(TwoHeads())
    strict(x).sum().backward()
    try:
        strict(x)
    except dist.DistributedError as exc:
        assert "find_unused_parameters" in str(exc) and "never" in str(exc)
    else:
        raise AssertionError("a parameter without gradient must be reported at the next forward")


@check
def distributed_sampler_shards_like_pytorch() -> str | None:
    try:
        from gpugrad.utils.data import DistributedSampler
    except ImportError:
        return "skip: gpugrad.utils.data.DistributedSampler (branch torch) is not on this branch yet"
    r = dist.rank()
    data = list(range(11))
    sampler = DistributedSampler(data, shuffle=False)  # world size and rank from gpugrad.distributed
    assert (sampler.num_replicas, sampler.rank, len(sampler)) == (2, r, 6)
    assert list(sampler) == [[0, 2, 4, 6, 8, 10], [1, 3, 5, 7, 9, 0]][r]  # padded from the start
    shuffled = DistributedSampler(data, seed=3)
    shuffled.set_epoch(1)
    mine = list(shuffled)
    every = dist.all_gather(gg.tensor(mine))
    covered = set(every[0].numpy().tolist()) | set(every[1].numpy().tolist())
    assert covered == set(data)
    shuffled.set_epoch(2)
    assert list(shuffled) != mine or len(data) < 3


# ---- CUDA tensors (the emulated CUDA device): over MPI, and over NCCL on a stand-in communicator ----
@check
def mpi_backend_with_cuda_tensors() -> None:
    from tests import _nccl_standin

    _nccl_standin.install()  # device memory is host memory here, so "CUDA-aware" MPI can read it too
    r = dist.rank()
    assert dist.get_backend() == "mpi"
    from gpugrad.distributed import group

    assert group.current("test").mpi.cuda_aware is False  # the PyPI Open MPI is built without CUDA
    for aware in ("0", "1"):
        dist.destroy()
        os.environ["GPUGRAD_MPI_CUDA_AWARE"] = aware
        try:
            dist.init()
            assert group.current("test").mpi.cuda_aware is (aware == "1")
            t = gg.tensor(np.arange(6.0).reshape(2, 3).T * (r + 1), device="cuda")  # not contiguous
            dist.all_reduce(t, op="sum")
            close(t.numpy(), np.arange(6.0).reshape(2, 3).T * 3)
            assert t.device == "cuda:0" and type(t.data).__module__.startswith("cupy")
            b = gg.tensor([r + 5.0], device="cuda")
            dist.broadcast(b, src=1)
            close(b.numpy(), [6.0])
            parts = dist.all_gather(gg.tensor([[r]], dtype="int64", device="cuda"))
            assert [p.device for p in parts] == ["cuda:0"] * 2
            assert [p.numpy().tolist() for p in parts] == [[[0]], [[1]]]
        finally:
            del os.environ["GPUGRAD_MPI_CUDA_AWARE"]
            dist.destroy()
    dist.init()


@check
def nccl_backend_through_the_standin() -> None:
    from tests import _nccl_standin

    cp = _nccl_standin.install()
    r, n = dist.rank(), dist.world_size()
    dist.destroy()
    dist.init(backend="nccl")
    try:
        assert dist.get_backend() == "nccl" and dist.device() == "cuda:0"
        del _nccl_standin.CALLS[:], _nccl_standin.WAITS[:]
        t = gg.tensor([r + 1.0, 2.0 * r], device="cuda")
        assert type(t.data).__module__.startswith("cupy")
        dist.all_reduce(t, op="mean")
        close(t.numpy(), [1.5, 1.0])
        t = gg.tensor(np.arange(4, dtype=np.int16) * (r + 1), device="cuda")  # NCCL has no int16: widened
        dist.all_reduce(t, op="max")
        assert t.dtype == np.int16 and t.numpy().tolist() == [0, 2, 4, 6]
        b = gg.tensor([[r * 3.0, 1.0]], dtype="float32", device="cuda")
        dist.broadcast(b, src=1)
        close(b.numpy(), [[3.0, 1.0]])
        parts = dist.all_gather(gg.tensor([r, r], dtype="int32", device="cuda"))
        assert [p.device for p in parts] == ["cuda:0", "cuda:0"]
        assert [p.numpy().tolist() for p in parts] == [[0, 0], [1, 1]]
        c = gg.tensor([r + 0.5])  # a CPU tensor under the nccl backend goes through MPI
        dist.all_reduce(c)
        close(c.numpy(), [2.0])
        kinds = [(name, dtype) for name, _, dtype, _ in _nccl_standin.CALLS]
        assert kinds == [("allReduce", _nccl_standin.NCCL_FLOAT32), ("allReduce", _nccl_standin.NCCL_INT32),
                         ("bcast", _nccl_standin.NCCL_UINT8), ("allGather", _nccl_standin.NCCL_UINT8)], kinds
        streams = {stream for *_, stream in _nccl_standin.CALLS}
        assert len(streams) == 1 and 0 not in streams  # NCCL's own stream...
        assert _nccl_standin.WAITS.count(0) == 4 and _nccl_standin.WAITS.count(streams.pop()) == 4
        # ... after the caller's work, and the caller's stream (0) after each collective

        # DistributedDataParallel on the GPU over NCCL: 2 ranks on B == one process on 2B
        reference = mlp(seed=0)
        model = DistributedDataParallel(mlp(seed=r).to("cuda"), bucket_mb=0.001)
        assert all(p.device == "cuda:0" for p in model.parameters())
        opt_ref = gg.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
        opt = gg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        rng = np.random.default_rng(5)
        B = 4
        for _ in range(3):
            x, y = rng.standard_normal((n * B, 6)), rng.integers(0, 3, n * B)
            loss = F.cross_entropy(reference(gg.tensor(x)), gg.tensor(y))
            opt_ref.zero_grad()
            loss.backward()
            opt_ref.step()
            mine = slice(r * B, (r + 1) * B)
            loss = F.cross_entropy(model(gg.tensor(x[mine], device="cuda")), gg.tensor(y[mine], device="cuda"))
            opt.zero_grad()
            loss.backward()
            opt.step()
        for a, b in zip(reference.parameters(), model.parameters()):
            close(a.numpy(), b.numpy(), 1e-10)
        reduces = sum(1 for call in _nccl_standin.CALLS if call[0] == "allReduce")
        assert len(model._buckets) >= 2 and reduces == 2 + 3 * len(model._buckets)  # every bucket, every step
        assert cp.cuda.nccl.NcclCommunicator is _nccl_standin.NcclCommunicator
    finally:
        dist.destroy()
        dist.init()


def run_checks(out_dir: Path) -> None:
    dist.init()
    results = {}
    for name, fn in CHECKS.items():
        try:
            results[name] = fn() or "ok"
        except Exception:  # reported to the test, which shows the traceback
            results[name] = traceback.format_exc()
        dist.init()  # (again, if a check failed between destroy and init)
        dist.barrier()
    (out_dir / f"rank{dist.rank()}.json").write_text(json.dumps(results))
    dist.destroy()


def run_failure(mode: str) -> None:
    """Rank 1 stops taking part (``hang``: sleeps; ``die``: exits at once); rank 0 reduces."""
    dist.init()
    t = gg.tensor([1.0])
    dist.all_reduce(t)  # everyone is here
    if dist.rank() == 1:
        if mode == "die":
            os._exit(3)
        time.sleep(120)
    started = time.monotonic()
    dist.all_reduce(t)
    print(f"rank {dist.rank()} was not stopped after {time.monotonic() - started:.1f} s", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "checks":
        run_checks(Path(sys.argv[2]))
    else:
        run_failure(sys.argv[1])
