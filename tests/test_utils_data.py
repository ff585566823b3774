"""gpugrad.utils.data: datasets, samplers, collation and the DataLoader, against PyTorch's
torch.utils.data where the result does not depend on a random generator."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gpugrad as gg
from gpugrad.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    RandomSampler,
    SequentialSampler,
    Subset,
    TensorDataset,
    default_collate,
    random_split,
)


class Squares(Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return np.array([i, i * i], dtype=np.float32), i


def _tolist(batch):
    return [b.tolist() if isinstance(b, gg.Tensor) else b for b in batch]


def test_tensor_dataset_items_length_and_shape_check():
    x, y = gg.arange(12.0).reshape(6, 2), gg.tensor(np.arange(6))
    ds = TensorDataset(x, y)
    assert len(ds) == 6
    xi, yi = ds[4]
    assert xi.tolist() == [8.0, 9.0] and yi.item() == 4
    with pytest.raises(gg.ShapeError, match="first dimension"):
        TensorDataset(x, gg.zeros(5))
    with pytest.raises(gg.GpugradError):
        TensorDataset()


@pytest.mark.parametrize("n,batch,drop_last", [(10, 3, False), (10, 3, True), (9, 3, False), (2, 5, False),
                                                (2, 5, True)])
def test_dataloader_batches_in_order(n, batch, drop_last):
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    y = np.arange(n)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, drop_last=drop_last)
    batches = list(loader)
    assert len(batches) == len(loader) == (n // batch if drop_last else -(-n // batch))
    seen = np.concatenate([yb.numpy() for _, yb in batches]) if batches else np.zeros(0)
    assert seen.tolist() == list(range(len(batches) * batch if drop_last else n))
    for xb, yb in batches:
        assert isinstance(xb, gg.Tensor) and xb.dtype == np.float32 and xb.device == "cpu"
        np.testing.assert_array_equal(xb.numpy(), x[yb.numpy()])


def test_dataloader_lengths_match_torch():
    torch = pytest.importorskip("torch")
    tdata = torch.utils.data
    for n, batch, drop_last in [(10, 3, False), (10, 3, True), (1, 4, True), (7, 7, False)]:
        mine = DataLoader(Squares(n), batch_size=batch, drop_last=drop_last)
        theirs = tdata.DataLoader(list(range(n)), batch_size=batch, drop_last=drop_last)
        assert len(mine) == len(theirs) == len(list(mine))


def test_fast_batched_fetch_equals_default_collate_of_samples():
    x = gg.randn(7, 3)
    y = gg.tensor(np.arange(7))
    ds = TensorDataset(x, y)
    idx = [5, 0, 3]
    fast = ds._default_batch(idx)
    slow = default_collate([ds[i] for i in idx])
    assert type(fast) is type(slow) is list
    for a, b in zip(fast, slow):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    sub = Subset(ds, [6, 4, 2, 1])
    for a, b in zip(sub._default_batch([0, 3]), default_collate([sub[0], sub[3]])):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    plain = Subset(Squares(5), [4, 1])  # a dataset without a batched fetch
    xb, yb = plain._default_batch([0, 1])
    assert xb.tolist() == [[4.0, 16.0], [1.0, 1.0]] and yb.tolist() == [4, 1]


def test_default_collate_structures_like_torch():
    torch = pytest.importorskip("torch")
    Point = namedtuple("Point", "x y")
    samples = [
        [(np.ones(2, np.float32), 1, 0.5, "a"), (np.zeros(2, np.float32), 2, 1.5, "b")],
        [{"a": 1.0, "b": np.array([1, 2])}, {"a": 2.0, "b": np.array([3, 4])}],
        [Point(1, 2.0), Point(3, 4.0)],
        [True, False],
    ]
    for batch in samples:
        mine = default_collate(batch)
        theirs = torch.utils.data.default_collate(batch)
        _same_structure(mine, theirs)


def _same_structure(mine, theirs):
    torch = pytest.importorskip("torch")
    if isinstance(theirs, torch.Tensor):
        assert isinstance(mine, gg.Tensor)
        assert mine.shape == tuple(theirs.shape)
        assert np.dtype(mine.dtype) == theirs.numpy().dtype
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    elif isinstance(theirs, dict):
        assert set(mine) == set(theirs)
        for k in theirs:
            _same_structure(mine[k], theirs[k])
    elif isinstance(theirs, (list, tuple)):
        assert type(mine) is type(theirs) and len(mine) == len(theirs)
        for a, b in zip(mine, theirs):
            _same_structure(a, b)
    else:
        assert mine == theirs


def test_default_collate_of_tensors_and_errors():
    a, b = gg.tensor([1.0, 2.0]), gg.tensor([3.0, 4.0])
    assert default_collate([a, b]).tolist() == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(gg.ShapeError, match="same number of fields"):
        default_collate([(1, 2), (3,)])
    with pytest.raises(gg.GpugradError, match="collate_fn"):
        default_collate([object(), object()])


def test_custom_collate_fn_and_unbatched_loading():
    loader = DataLoader(Squares(5), batch_size=2, collate_fn=lambda samples: [s[1] for s in samples])
    assert list(loader) == [[0, 1], [2, 3], [4]]
    single = list(DataLoader(Squares(3), batch_size=None))
    assert len(single) == 3
    x, i = single[2]
    assert isinstance(x, gg.Tensor) and x.tolist() == [2.0, 4.0] and i == 2


def test_shuffle_is_a_permutation_repeatable_with_a_generator_or_manual_seed():
    ds = TensorDataset(gg.tensor(np.arange(20)))

    def order(loader):
        return np.concatenate([b[0].numpy() for b in loader]).tolist()

    a = order(DataLoader(ds, batch_size=6, shuffle=True, generator=np.random.default_rng(3)))
    b = order(DataLoader(ds, batch_size=6, shuffle=True, generator=3))
    assert sorted(a) == list(range(20)) and a == b and a != list(range(20))
    loader = DataLoader(ds, batch_size=6, shuffle=True, generator=np.random.default_rng(3))
    assert order(loader) != order(loader)  # each pass draws a new order
    gg.manual_seed(11)
    c = order(DataLoader(ds, batch_size=6, shuffle=True))
    gg.manual_seed(11)
    assert order(DataLoader(ds, batch_size=6, shuffle=True)) == c


def test_samplers():
    assert list(SequentialSampler(range(4))) == [0, 1, 2, 3]
    r = list(RandomSampler(range(6), generator=0))
    assert sorted(r) == list(range(6))
    w = list(RandomSampler(range(3), replacement=True, num_samples=10, generator=0))
    assert len(w) == 10 and set(w) <= {0, 1, 2}
    more = list(RandomSampler(range(3), num_samples=7, generator=0))
    assert len(more) == 7 and sorted(more[:3]) == [0, 1, 2]
    assert list(BatchSampler(range(5), 2, False)) == [[0, 1], [2, 3], [4]]
    assert list(BatchSampler(range(5), 2, True)) == [[0, 1], [2, 3]]
    assert len(BatchSampler(range(5), 2, False)) == 3
    with pytest.raises(gg.ArgumentError, match="batch_size"):
        BatchSampler(range(5), 0, False)


def test_dataloader_argument_errors():
    ds = Squares(4)
    with pytest.raises(gg.ArgumentError, match="mutually exclusive"):
        DataLoader(ds, shuffle=True, sampler=SequentialSampler(ds))
    with pytest.raises(gg.ArgumentError, match="batch_sampler"):
        DataLoader(ds, batch_size=2, batch_sampler=BatchSampler(range(4), 2, False))
    with pytest.raises(gg.ArgumentError, match="num_workers"):
        DataLoader(ds, num_workers=2)
    with pytest.raises(gg.ArgumentError, match="generator"):
        DataLoader(ds, shuffle=True, generator="seed")
    batches = list(DataLoader(ds, batch_sampler=BatchSampler(range(4), 3, False)))
    assert [b[1].tolist() for b in batches] == [[0, 1, 2], [3]]


def test_random_split_counts_fractions_and_disjointness():
    ds = Squares(10)
    parts = random_split(ds, [3, 7], generator=np.random.default_rng(0))
    assert [len(p) for p in parts] == [3, 7]
    idx = sorted(parts[0].indices + parts[1].indices)
    assert idx == list(range(10))
    again = random_split(ds, [3, 7], generator=np.random.default_rng(0))
    assert again[0].indices == parts[0].indices
    with pytest.raises(gg.ArgumentError, match="summing"):
        random_split(ds, [3, 3])


@pytest.mark.parametrize("n,fractions", [(10, [0.5, 0.5]), (11, [0.3, 0.3, 0.4]), (7, [0.1, 0.9]), (3, [0.25] * 4)])
def test_random_split_fraction_lengths_match_torch(n, fractions):
    torch = pytest.importorskip("torch")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = [len(s) for s in torch.utils.data.random_split(range(n), fractions)]
        mine = [len(s) for s in random_split(Squares(n), fractions, generator=0)]
    assert mine == theirs


@given(n=st.integers(1, 40), replicas=st.integers(1, 6), drop_last=st.booleans())
def test_distributed_sampler_without_shuffle_matches_torch(n, replicas, drop_last):
    torch = pytest.importorskip("torch")
    for rank in range(replicas):
        mine = DistributedSampler(range(n), num_replicas=replicas, rank=rank, shuffle=False, drop_last=drop_last)
        theirs = torch.utils.data.DistributedSampler(range(n), num_replicas=replicas, rank=rank, shuffle=False,
                                                     drop_last=drop_last)
        assert list(mine) == list(theirs)
        assert len(mine) == len(theirs) == len(list(mine))


@given(n=st.integers(1, 40), replicas=st.integers(1, 5), seed=st.integers(0, 3))
def test_distributed_sampler_shuffle_shards_one_permutation(n, replicas, seed):
    shards = [DistributedSampler(range(n), num_replicas=replicas, rank=r, seed=seed) for r in range(replicas)]
    for s in shards:
        s.set_epoch(2)
    lists = [list(s) for s in shards]
    assert all(len(x) == -(-n // replicas) for x in lists)
    # interleaving the shards gives back the padded permutation: every index at least once
    merged = [lists[r][i] for i in range(len(lists[0])) for r in range(replicas)]
    assert sorted(set(merged)) == list(range(n))
    assert merged[:n] == list(np.random.default_rng(seed + 2).permutation(n))
    again = DistributedSampler(range(n), num_replicas=replicas, rank=0, seed=seed)
    again.set_epoch(2)
    assert list(again) == lists[0]


def test_distributed_sampler_epochs_differ_and_defaults_to_one_process():
    s = DistributedSampler(range(50))
    assert (s.num_replicas, s.rank) == (1, 0)
    first = list(s)
    assert sorted(first) == list(range(50))
    s.set_epoch(1)
    assert list(s) != first
    with pytest.raises(gg.ArgumentError, match="rank"):
        DistributedSampler(range(5), num_replicas=2, rank=2)
    loader = DataLoader(TensorDataset(gg.tensor(np.arange(10))), batch_size=4,
                        sampler=DistributedSampler(range(10), num_replicas=2, rank=1, shuffle=False))
    assert [b[0].tolist() for b in loader] == [[1, 3, 5, 7], [9]]


def test_distributed_sampler_asks_gpugrad_distributed(monkeypatch):
    import sys
    import types

    fake = types.ModuleType("gpugrad.distributed")
    fake.is_initialized = lambda: True
    fake.world_size = lambda: 4
    fake.rank = lambda: 3
    monkeypatch.setitem(sys.modules, "gpugrad.distributed", fake)
    monkeypatch.setattr(gg, "distributed", fake, raising=False)
    s = DistributedSampler(range(10), shuffle=False)
    assert (s.num_replicas, s.rank) == (4, 3) and list(s) == [3, 7, 1]
    fake.is_initialized = lambda: False
    assert DistributedSampler(range(10)).num_replicas == 1


def test_char_windows_items_batches_and_errors():
    from gpugrad.data import CharWindows

    tokens = np.arange(50, dtype=np.uint8) % 7
    w = CharWindows(tokens, 8)
    assert len(w) == 42
    x, y = w[5]
    assert x.dtype == np.int64 and x.tolist() == (np.arange(5, 13) % 7).tolist()
    assert y.tolist() == (np.arange(6, 14) % 7).tolist()
    assert w[-1][1].tolist() == (np.arange(42, 50) % 7).tolist()
    with pytest.raises(IndexError):
        w[42]
    fast = w._default_batch([0, 41, 7])
    slow = default_collate([w[0], w[41], w[7]])
    for a, b in zip(fast, slow):
        assert a.dtype == b.dtype and a.tolist() == b.tolist()
    batches = list(DataLoader(w, batch_size=16, sampler=DistributedSampler(w, seed=1)))
    assert [b[0].shape for b in batches] == [(16, 8), (16, 8), (10, 8)]
    with pytest.raises(gg.ShapeError, match="block"):
        CharWindows(tokens[:8], 8)
