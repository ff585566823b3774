"""What ``gpugrad train`` does differently under ``mpirun -n N`` (data-parallel training).

Each rank trains the same model on its own shard of every epoch (DistributedSampler, which
reads the world size and rank from gpugrad.distributed), with a per-rank batch of
``--batch-size``: the global batch is N x --batch-size. DistributedDataParallel averages the
gradients, so every rank applies the same update. Rank 0 alone prints and writes the output
folder; the other ranks read the checkpoint that ``--resume`` continues from through rank 0, so
the folder need not be on a shared filesystem. A stop request on any rank (Ctrl-C, or the
SIGTERM that mpirun sends every rank when it gets one, or SIGUSR1 forwarded by mpirun) is agreed
on by all ranks at the next step boundary, so they stop together after the same step.

Without a launcher (or with one rank) everything here passes through: one process, no
communication.
"""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

import gpugrad as gg
from gpugrad.distributed import launcher


class DataParallel:
    """This process's place in a data-parallel ``gpugrad train`` (world size 1 without mpirun)."""

    def __init__(self) -> None:
        launch = launcher.detect()
        self.world_size = launch.world_size if launch is not None else 1
        self.rank = launch.rank if launch is not None else 0
        self.local_rank = launch.local_rank if launch is not None else 0
        self.enabled = self.world_size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one that prints and writes."""
        return self.rank == 0

    def device(self, requested: str) -> str:
        """``auto``/``cuda``: this rank's GPU (``cuda:<local rank modulo the GPU count>``) or the CPU
        for auto without one; ``cpu`` and ``cuda:N`` as given."""
        from gpugrad.backends import normalize_device

        if requested == "auto" and not gg.cuda.is_available():
            return "cpu"
        if requested in ("auto", "cuda"):
            return normalize_device(f"cuda:{self.local_rank % max(gg.cuda.device_count(), 1)}")
        return normalize_device(requested)

    def start(self, device: str) -> None:
        """Join the job: the nccl backend for a GPU when CuPy has NCCL, else mpi."""
        if not self.enabled:
            return
        import gpugrad.distributed as dist

        backend = "nccl" if device.startswith("cuda") and _nccl_available() else "mpi"
        dist.init(backend=backend, device=device if backend == "nccl" else None)

    def stop(self) -> None:
        if self.enabled:
            import gpugrad.distributed as dist

            dist.destroy()

    def wrap(self, model: gg.nn.Module) -> gg.nn.Module:
        """The model in DistributedDataParallel (which starts every rank from rank 0's weights)."""
        if not self.enabled:
            return model
        from gpugrad.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model)

    def load(self, path: Path, device: str) -> Any:
        """``gg.load(path, device)`` on every rank, the file read by rank 0 alone (the others need
        not see it); None on every rank when rank 0 finds no file there."""
        if not self.enabled:
            return gg.load(path, device=device) if path.is_file() else None
        import gpugrad.distributed as dist

        found = self.main and path.is_file()
        data = path.read_bytes() if found else b""
        size = gg.tensor([len(data) if found or not self.main else -1], dtype=gg.int64)
        dist.broadcast(size, 0)
        if int(size.item()) < 0:
            return None
        payload = np.frombuffer(data, dtype=np.uint8) if self.main else np.zeros(int(size.item()), np.uint8)
        buffer = gg.tensor(payload)
        dist.broadcast(buffer, 0)
        if self.main:
            return gg.load(path, device=device)
        fd, tmp = tempfile.mkstemp(suffix=".safetensors")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(buffer.numpy().tobytes())
            return gg.load(tmp, device=device)
        finally:
            os.unlink(tmp)

    def totals(self, running: dict) -> dict:
        """The epoch's running sums over every rank (seconds: the slowest rank's)."""
        if not self.enabled:
            return dict(running)
        import gpugrad.distributed as dist

        keys = ("loss", "correct", "count", "items")
        summed = gg.tensor([float(running[k]) for k in keys], dtype=gg.float64)
        dist.all_reduce(summed)
        seconds = gg.tensor([float(running["seconds"])], dtype=gg.float64)
        dist.all_reduce(seconds, op="max")
        total = {k: float(v) for k, v in zip(keys, summed.numpy())}
        for k in ("correct", "count", "items"):
            total[k] = int(round(total[k]))
        total["seconds"] = float(seconds.item())
        return total

    def own_share(self, saved_running: dict, fresh: dict) -> dict:
        """A resumed part-done epoch: the saved totals count once (on rank 0), the others start at zero."""
        return dict(saved_running) if self.main or not self.enabled else dict(fresh)

    def agree_to_stop(self, requested: bool) -> bool:
        """True on every rank when any rank asked to stop (one small all-reduce per step)."""
        if not self.enabled:
            return requested
        import gpugrad.distributed as dist

        flag = gg.tensor([requested])
        dist.all_reduce(flag, op="max")
        return bool(flag.item())

    def barrier(self) -> None:
        if self.enabled:
            import gpugrad.distributed as dist

            dist.barrier()

    def stop_signals(self) -> tuple[int, ...]:
        """The signals that request a stop: Ctrl-C, and under mpirun the SIGTERM it sends every
        rank when it is interrupted, and SIGUSR1 (which Open MPI's mpirun forwards)."""
        if not self.enabled:
            return (signal.SIGINT,)
        return tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGUSR1", None)) if s is not None)


def _nccl_available() -> bool:
    try:
        from gpugrad.distributed.nccl_backend import import_nccl

        import_nccl()
    except Exception:  # no CuPy, or CuPy without NCCL: the mpi backend carries the gradients
        return False
    return True
