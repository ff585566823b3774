"""gpugrad.distributed and DistributedDataParallel across 2 ranks under mpirun, on the CPU.

One mpirun launch runs every check of tests/_distributed_worker.py (collectives, DDP equal to
one process on the concatenated batch, buffers, gradient accumulation, unused parameters,
DistributedSampler, CUDA tensors through MPI and through the NCCL stand-in); each test below
reports one of them. Two more launches check that a rank which hangs or dies ends the job.
"""

from __future__ import annotations

import json
import time

import pytest

from tests._mpirun import run, skip_without_mpi

CHECK_NAMES = [
    "collectives_on_cpu",
    "ddp_equals_one_process_on_the_concatenated_batch",
    "ddp_broadcasts_buffers_and_syncs_gradient_accumulation",
    "ddp_with_unused_parameters",
    "distributed_sampler_shards_like_pytorch",
    "mpi_backend_with_cuda_tensors",
    "nccl_backend_through_the_standin",
]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[str, str]]:
    skip_without_mpi()
    out = tmp_path_factory.mktemp("dist")
    code, log = run(2, ["-m", "tests._distributed_worker", "checks", str(out)], timeout=60)
    assert code == 0, log[-6000:]
    found = {r: json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)}
    assert sorted(found[0]) == sorted(CHECK_NAMES), "the worker's checks and this list differ"
    return found


@pytest.mark.parametrize("name", CHECK_NAMES)
def test_two_ranks(results: dict[int, dict[str, str]], name: str) -> None:
    outcomes = {r: results[r][name] for r in (0, 1)}
    if all(o.startswith("skip:") for o in outcomes.values()):
        pytest.skip(outcomes[0][5:].strip())
    for r, outcome in outcomes.items():
        assert outcome == "ok", f"rank {r}:\n{outcome}"


def test_a_hung_rank_makes_the_others_fail_after_the_timeout() -> None:
    skip_without_mpi()
    started = time.monotonic()
    code, log = run(2, ["-m", "tests._distributed_worker", "hang"], timeout=2, limit=90)
    assert code != 0
    assert "all_reduce on rank 0 did not complete within 2 s" in log, log[-4000:]
    assert "was not stopped" not in log
    assert time.monotonic() - started < 60  # rank 1 sleeps 120 s: the abort ended it


def test_a_dead_rank_ends_the_job() -> None:
    skip_without_mpi()
    code, log = run(2, ["-m", "tests._distributed_worker", "die"], timeout=20, limit=90)
    assert code != 0
    assert "was not stopped" not in log, log[-4000:]

