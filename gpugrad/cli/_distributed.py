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
import sys
import tempfile
from collections.abc import Callable
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

    def device(self, requested: str, resolved: str) -> str:
        """This rank's device: ``resolved`` (what ``--device requested`` means for one process),
        except that under mpirun ``auto`` or ``cuda`` on a GPU mean the rank's own GPU,
        ``cuda:<local rank modulo the GPU count>``."""
        if self.enabled and requested in ("auto", "cuda") and resolved.startswith("cuda"):
            return f"cuda:{self.local_rank % max(gg.cuda.device_count(), 1)}"
        return resolved

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
        data = self._from_main(path.read_bytes() if self.main and path.is_file() else None)
        if data is None:
            return None
        if self.main:
            return gg.load(path, device=device)
        fd, tmp = tempfile.mkstemp(suffix=".safetensors")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return gg.load(tmp, device=device)
        finally:
            os.unlink(tmp)

    def on_main(self, fn: Callable[[], Any], error: type[Exception]) -> Any:
        """``fn()`` on rank 0 alone (its result there, None elsewhere); an ``error`` it raises is
        raised on every rank, so that all of them stop instead of waiting for rank 0."""
        if not self.enabled:
            return fn()
        result, message = None, None
        if self.main:
            try:
                result = fn()
            except error as exc:
                message = str(exc)
        shared = self._from_main(None if message is None else message.encode())
        if shared is not None:
            raise error(shared.decode())
        return result

    def abort(self, exc: BaseException) -> None:
        """One rank failed on its own: say why, then end every rank (the others would wait for
        it in their next collective until the timeout)."""
        if not self.enabled:
            return
        import traceback

        from gpugrad.distributed import group

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        print(f"gpugrad train: rank {self.rank} stopped on {type(exc).__name__}; ending every rank",
              file=sys.stderr, flush=True)
        sys.stdout.flush()
        g = group.current("abort")
        g.mpi.abort(130 if isinstance(exc, KeyboardInterrupt) else 1)

    def _from_main(self, data: bytes | None) -> bytes | None:
        """Rank 0's ``data`` (bytes or None) on every rank."""
        import gpugrad.distributed as dist

        size = gg.tensor([-1 if data is None else len(data)], dtype=gg.int64)
        dist.broadcast(size, 0)
        n = int(size.item())
        if n < 0:
            return None
        payload = gg.tensor(np.frombuffer(data, dtype=np.uint8) if self.main else np.zeros(n, np.uint8))
        dist.broadcast(payload, 0)
        return data if self.main else payload.numpy().tobytes()

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
