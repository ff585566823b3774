"""gpugrad.distributed in one process (no launcher: world size 1, every collective the identity),
launcher detection, timeouts, the NCCL watchdog, DDP's buckets, and the engine's
early-release of leaf gradients that DDP's overlap relies on. The multi-rank behaviour is in
tests/test_distributed_mpi.py."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.distributed as dist
import gpugrad.nn.functional as F
from gpugrad import nn
from gpugrad.distributed import launcher
from gpugrad.distributed.deadline import resolve_timeout, wait_until
from gpugrad.distributed.nccl_backend import Watchdog
from gpugrad.nn.parallel import DistributedDataParallel, assign_buckets

LAUNCHER_VARIABLES = ["OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMI_SIZE", "PMI_RANK"]


@pytest.fixture
def single(monkeypatch: pytest.MonkeyPatch):
    """An initialised world of one process (whatever launched pytest)."""
    for key in LAUNCHER_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    dist.destroy()
    dist.init()
    yield
    dist.destroy()


# ---- launcher detection --------------------------------------------------------------------------
def test_launchers_are_recognised_from_their_environment() -> None:
    ompi = {"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_LOCAL_RANK": "1",
            "OMPI_COMM_WORLD_LOCAL_SIZE": "2"}
    assert launcher.detect(ompi) == launcher.Launch("Open MPI", 3, 4, 1, 2)
    hydra = {"PMI_SIZE": "2", "PMI_RANK": "1", "MPI_LOCALRANKID": "1", "MPI_LOCALNRANKS": "2"}
    assert launcher.detect(hydra) == launcher.Launch("MPICH/Intel MPI", 1, 2, 1, 2)
    assert launcher.detect({**hydra, "I_MPI_ROOT": "/opt/intel/mpi"}).launcher == "Intel MPI"
    assert launcher.detect({"PMI_SIZE": "3", "PMI_RANK": "2"}) == launcher.Launch("MPICH/Intel MPI", 2, 3, 2, 3)
    assert launcher.detect({"HOME": "/root"}) is None
    with pytest.raises(ValueError, match="inconsistent"):
        launcher.detect({"PMI_SIZE": "2", "PMI_RANK": "2"})
    with pytest.raises(ValueError, match="not an integer"):
        launcher.detect({"OMPI_COMM_WORLD_SIZE": "two", "OMPI_COMM_WORLD_RANK": "0"})


# ---- world size 1 --------------------------------------------------------------------------------
def test_one_process_without_a_launcher_is_world_size_one(single) -> None:
    assert dist.is_initialized()
    assert (dist.rank(), dist.world_size(), dist.local_rank(), dist.get_backend()) == (0, 1, 0, "local")
    assert dist.device() in ("cpu", "cuda:0")
    dist.init()  # again: nothing changes
    assert dist.world_size() == 1


def test_every_collective_is_the_identity_in_one_process(single) -> None:
    x = np.array([[1.5, -2.0], [3.0, 4.0]], dtype=np.float32)
    for op in ("sum", "mean", "max", "min"):
        t = gg.tensor(x)
        v = t.version
        assert dist.all_reduce(t, op=op) is t
        np.testing.assert_array_equal(t.numpy(), x)
        assert t.version == v + 1
    t = gg.tensor(x)
    assert dist.broadcast(t, src=0) is t
    np.testing.assert_array_equal(t.numpy(), x)
    parts = dist.all_gather(t)
    assert len(parts) == 1 and parts[0] is not t
    np.testing.assert_array_equal(parts[0].numpy(), x)
    dist.barrier()
    flags = gg.tensor([True, False])
    dist.all_reduce(flags, op="max")
    assert flags.numpy().tolist() == [True, False]


def test_collectives_reject_bad_arguments_in_one_process_too(single) -> None:
    with pytest.raises(gg.ArgumentError, match="op must be one of sum, mean, max, min, got 'avg'"):
        dist.all_reduce(gg.tensor([1.0]), op="avg")
    with pytest.raises(gg.DTypeError, match="op='mean' needs a floating dtype, got int64"):
        dist.all_reduce(gg.tensor([1, 2]), op="mean")
    with pytest.raises(gg.DTypeError, match="bool tensor reduces with op='max'"):
        dist.all_reduce(gg.tensor([True]), op="sum")
    with pytest.raises(gg.DTypeError, match="expected a gpugrad Tensor, got ndarray"):
        dist.all_reduce(np.ones(2))
    with pytest.raises(gg.ArgumentError, match=r"src must be a rank in \[0, 0\], got 1"):
        dist.broadcast(gg.tensor([1.0]), src=1)


def test_calls_before_init_say_to_call_init(monkeypatch: pytest.MonkeyPatch) -> None:
    dist.destroy()
    assert not dist.is_initialized()
    for call in (dist.rank, dist.world_size, dist.barrier, lambda: dist.all_reduce(gg.tensor([1.0]))):
        with pytest.raises(dist.DistributedError, match=r"not initialised; call gpugrad.distributed.init\(\)"):
            call()
    with pytest.raises(gg.ArgumentError, match="backend must be one of mpi, nccl"):
        dist.init(backend="gloo")


def test_the_timeout_comes_from_the_argument_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(dist.TIMEOUT_ENV, raising=False)
    assert resolve_timeout(None) == 600
    assert resolve_timeout(2.5) == 2.5
    monkeypatch.setenv(dist.TIMEOUT_ENV, "30")
    assert resolve_timeout(None) == 30
    monkeypatch.setenv(dist.TIMEOUT_ENV, "soon")
    with pytest.raises(dist.DistributedError, match="GPUGRAD_DIST_TIMEOUT='soon' is not a number"):
        resolve_timeout(None)
    with pytest.raises(dist.DistributedError, match="positive"):
        resolve_timeout(0)


def test_a_collective_that_never_completes_times_out() -> None:
    polls = []
    with pytest.raises(dist.DistributedTimeoutError, match="all_reduce on rank 3 did not complete within 0.05 s"):
        wait_until(lambda: polls.append(1) and False, 0.05, "all_reduce", 3)
    assert len(polls) > 20  # it kept polling until the deadline
    wait_until(lambda: True, 0.05, "barrier", 0)


# ---- the NCCL watchdog ---------------------------------------------------------------------------
class _Event:
    def __init__(self, done: bool) -> None:
        self.done = done


def test_the_nccl_watchdog_fires_on_an_overdue_collective_only() -> None:
    fired: list[str] = []
    dog = Watchdog(0.05, fired.append, period=0.01)
    finished, stuck = _Event(True), _Event(False)
    dog.watch(finished, "all_reduce", keep=None)
    dog.check()
    assert dog.pending() == 0 and fired == []  # done: released
    dog.watch(stuck, "bucket 0 all_reduce", keep=None)
    dog.check()
    assert fired == []  # not overdue yet
    for _ in range(200):
        if fired:
            break
        import time

        time.sleep(0.01)
    dog.stop()
    assert len(fired) == 1 and "nccl bucket 0 all_reduce did not complete within 0.05 s" in fired[0]


def test_the_nccl_watchdog_reports_asynchronous_errors() -> None:
    fired: list[str] = []

    def broken() -> None:
        raise RuntimeError("NCCL_ERROR_SYSTEM_ERROR: peer vanished")

    dog = Watchdog(60, fired.append, broken)
    dog.check()
    dog.check()
    assert fired == ["NCCL reported an asynchronous error: NCCL_ERROR_SYSTEM_ERROR: peer vanished"]


# ---- DistributedDataParallel in one process ------------------------------------------------------
def _model(seed: int = 0) -> nn.Module:
    rng = np.random.default_rng(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    for p in model.parameters():
        p.data[...] = rng.standard_normal(p.shape).astype(np.float32)
    return model


def test_ddp_in_one_process_trains_exactly_like_the_module(single) -> None:
    plain, wrapped = _model(), DistributedDataParallel(_model())
    assert isinstance(wrapped.module, nn.Sequential)
    x = gg.tensor(np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32))
    y = gg.tensor([0, 1, 2, 0, 1, 2])
    for model in (plain, wrapped):
        F.cross_entropy(model(x), y).backward()
    for a, b in zip(plain.parameters(), wrapped.parameters()):
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
    assert list(wrapped.state_dict()) == list(plain.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [n for n, _ in wrapped.named_parameters()][0] == "module.0.weight"  # as PyTorch
    other = DistributedDataParallel(_model(seed=5))
    other.load_state_dict({f"module.{k}": v for k, v in plain.state_dict().items()})  # PyTorch-style keys
    for a, b in zip(plain.parameters(), other.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    plain.load_state_dict(wrapped.state_dict())


def test_ddp_rejects_bad_arguments(single) -> None:
    with pytest.raises(gg.ArgumentError, match="expected a gpugrad.nn.Module, got function"):
        DistributedDataParallel(lambda x: x)
    with pytest.raises(gg.ArgumentError, match="bucket_mb must be positive"):
        DistributedDataParallel(_model(), bucket_mb=0)


def test_buckets_take_parameters_in_reverse_order_up_to_the_cap() -> None:
    a, b, c = (nn.Parameter(gg.zeros(n)) for n in (100, 100, 300))  # float32: 400, 400, 1200 bytes
    d = nn.Parameter(gg.zeros(10, dtype="float64"))
    buckets = assign_buckets([a, b, c, d], bucket_bytes=1000)
    assert [[p.size for p in bucket] for bucket in buckets] == [[10], [300], [100, 100]]
    assert [p.dtype for p in buckets[0]] == [np.float64]  # one dtype per bucket
    assert len(assign_buckets([a, b, c], bucket_bytes=10 ** 6)) == 1


# ---- the engine: a leaf's hooks run as soon as its gradient is complete ---------------------------
def test_post_accumulate_hooks_run_while_backward_is_still_going() -> None:
    w1 = gg.tensor(np.ones((3, 3), np.float32), requires_grad=True)
    w2 = gg.tensor(np.full((3, 3), 2.0, np.float32), requires_grad=True)
    x = gg.tensor(np.eye(3, dtype=np.float32))
    seen = []
    w2.register_post_accumulate_grad_hook(lambda p: seen.append(("w2", p.grad is not None)))
    w1.register_post_accumulate_grad_hook(lambda p: seen.append(("w1", p.grad is not None)))
    hidden = (x @ w1).tanh()
    hidden.register_hook(lambda g: seen.append(("hidden", True)))  # runs when backward reaches tanh
    loss = (hidden @ w2).sum()
    loss.backward()
    # w2's gradient is complete once the last matmul has run: its hook comes before backward
    # goes on through tanh and the first matmul (DDP starts its all-reduce there).
    assert seen == [("w2", True), ("hidden", True), ("w1", True)]
    reference = [w.grad.numpy().copy() for w in (w1, w2)]
    for w in (w1, w2):
        w.grad = None
    plain1 = gg.tensor(w1.numpy(), requires_grad=True)
    plain2 = gg.tensor(w2.numpy(), requires_grad=True)
    ((x @ plain1).tanh() @ plain2).sum().backward()
    np.testing.assert_array_equal(reference[0], plain1.grad.numpy())
    np.testing.assert_array_equal(reference[1], plain2.grad.numpy())


def test_early_hooks_see_the_whole_gradient_of_a_leaf_used_twice() -> None:
    w = gg.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    w.register_hook(lambda g: seen.append(g.numpy().copy()))
    w.register_post_accumulate_grad_hook(lambda p: seen.append(p.grad.numpy().copy()))
    y = (w * 3.0).sum() + (w * w).exp().sum()
    y.backward()
    expected = 3.0 + 2 * np.array([1.0, 2.0]) * np.exp([1.0, 4.0])
    assert len(seen) == 2
    np.testing.assert_allclose(seen[0], expected, rtol=1e-6)
    np.testing.assert_allclose(seen[1], expected, rtol=1e-6)
    y2 = (w * 3.0).sum()
    y2.backward()  # accumulates: the post hook sees the sum
    np.testing.assert_allclose(seen[-1], expected + 3.0, rtol=1e-6)


def test_post_accumulate_hooks_need_a_leaf_that_requires_grad() -> None:
    w = gg.tensor([1.0], requires_grad=True)
    with pytest.raises(gg.GraphError, match="only leaf tensors that require grad"):
        (w * 2).register_post_accumulate_grad_hook(lambda p: None)
    with pytest.raises(gg.GraphError, match="only leaf tensors that require grad"):
        gg.tensor([1.0]).register_post_accumulate_grad_hook(lambda p: None)
    calls = []
    remove = w.register_post_accumulate_grad_hook(calls.append)
    remove()
    (w * 2).sum().backward()
    assert calls == []


def test_the_contract_names_exist() -> None:
    names = "init is_initialized rank world_size local_rank get_backend device barrier all_reduce broadcast " \
            "all_gather destroy DistributedError DistributedTimeoutError".split()
    assert [n for n in names if not hasattr(dist, n)] == []
    assert issubclass(dist.DistributedTimeoutError, gg.GpugradError)
    import gpugrad.nn.parallel

    assert gpugrad.nn.parallel.DistributedDataParallel is DistributedDataParallel


# ---- gpugrad train's data-parallel helper, in one process ----------------------------------------
def test_the_train_helper_passes_through_without_a_launcher(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import signal

    from gpugrad.cli._distributed import DataParallel

    for key in LAUNCHER_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    dp = DataParallel()
    assert (dp.enabled, dp.main, dp.world_size, dp.rank) == (False, True, 1, 0)
    assert dp.device("cpu", "cpu") == "cpu" and dp.device("auto", "cuda:0") == "cuda:0"
    dp.enabled, dp.local_rank = True, 3  # as rank 3 of a node: its own GPU (modulo the GPUs present)
    assert dp.device("auto", "cuda:0") == f"cuda:{3 % max(gg.cuda.device_count(), 1)}"
    assert dp.device("cuda:0", "cuda:0") == "cuda:0" and dp.device("auto", "cpu") == "cpu"
    dp.enabled, dp.local_rank = False, 0
    dp.start("cpu")
    assert not dist.is_initialized()  # one process: no group, no communication
    model = _model()
    assert dp.wrap(model) is model
    running = {"loss": 1.5, "correct": 3, "count": 4, "items": 4, "seconds": 0.5}
    assert dp.totals(running) == running and dp.own_share(running, {}) == running
    assert dp.agree_to_stop(True) and not dp.agree_to_stop(False)
    assert dp.stop_signals() == (signal.SIGINT,)
    assert dp.load(tmp_path / "missing.safetensors", "cpu") is None
    gg.save({"x": gg.tensor([1.0])}, tmp_path / "c.safetensors")
    assert dp.load(tmp_path / "c.safetensors", "cpu")["x"].numpy().tolist() == [1.0]
    dp.barrier()
    dp.stop()


def test_gpugrad_info_says_what_mpirun_can_use() -> None:
    from gpugrad.cli.info import collect

    line = collect()["backends"]["distributed"]
    try:
        import mpi4py
    except ImportError:
        assert "pip install 'gpugrad[mpi]'" in line
    else:
        assert line.startswith(f"mpi (mpi4py {mpi4py.__version__}, mpirun ")
