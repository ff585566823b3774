"""``gpugrad.utils.data``: datasets, samplers and the DataLoader, with PyTorch's names, arguments
and semantics (``torch.utils.data``), loading in the calling process.

    from gpugrad.utils.data import DataLoader, TensorDataset, random_split

    train_set, val_set = random_split(TensorDataset(x, y), [0.9, 0.1], generator=np.random.default_rng(0))
    for xb, yb in DataLoader(train_set, batch_size=64, shuffle=True):
        loss = F.cross_entropy(model(xb.to(device)), yb.to(device))

Random draws (shuffling, ``random_split``) use the ``generator`` given, a ``numpy.random.Generator``
(an int is taken as its seed), or else a seed drawn from gpugrad's CPU generator, so
``gg.manual_seed(s)`` makes them repeatable, as ``torch.manual_seed`` does for PyTorch. The
permutations themselves are NumPy's, so they differ from PyTorch's for the same seed.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import accumulate
from typing import Any

import numpy as np

from gpugrad.errors import ArgumentError, GpugradError, ShapeError
from gpugrad.tensor import Tensor

__all__ = [
    "Dataset", "TensorDataset", "Subset", "Sampler", "SequentialSampler", "RandomSampler", "BatchSampler",
    "DistributedSampler", "DataLoader", "random_split", "default_collate", "default_convert",
]


# ---- random generators --------------------------------------------------------------------------


def _generator(generator: Any, who: str) -> np.random.Generator | None:
    """The numpy Generator to draw from (None: draw a fresh seed from gpugrad's CPU generator)."""
    if generator is None or isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, numbers.Integral) and not isinstance(generator, bool):
        return np.random.default_rng(int(generator))
    raise ArgumentError(f"{who}: generator must be a numpy.random.Generator or an int seed, "
                        f"got {type(generator).__name__}")


def _rng(generator: np.random.Generator | None) -> np.random.Generator:
    if generator is not None:
        return generator
    from gpugrad.factories import cpu_generator

    return np.random.default_rng(int(cpu_generator().integers(2**63)))


# ---- datasets -----------------------------------------------------------------------------------


class Dataset:
    """A map-style dataset: subclasses define ``__getitem__(i)`` (one sample) and ``__len__``.

    Example::

        class Squares(Dataset):
            def __len__(self): return 10
            def __getitem__(self, i): return float(i), float(i * i)
    """

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} does not define __len__")


class TensorDataset(Dataset):
    """Samples are the rows of tensors that share their first dimension: item i is
    ``(t[i] for t in tensors)``. Arrays are wrapped without a copy.

    Example: ``TensorDataset(x, y)[3] == (x[3], y[3])``.
    """

    def __init__(self, *tensors: Any) -> None:
        from gpugrad.factories import as_tensor

        if not tensors:
            raise ArgumentError("TensorDataset: give at least one tensor")
        ts = tuple(t if isinstance(t, Tensor) else as_tensor(t) for t in tensors)
        for t in ts:
            if t.ndim == 0 or t.shape[0] != ts[0].shape[0]:
                raise ShapeError("TensorDataset: every tensor needs the same first dimension, got shapes "
                                 + ", ".join(str(u.shape) for u in ts))
        self.tensors = ts

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def _default_batch(self, indices: Sequence[int]) -> list[Tensor]:
        """``default_collate([self[i] for i in indices])``, as one gather per tensor."""
        idx = np.asarray(indices, dtype=np.int64)
        return [t[idx] for t in self.tensors]


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset: Any, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, index: int) -> Any:
        return self.dataset[self.indices[index]]

    def __len__(self) -> int:
        return len(self.indices)

    def _default_batch(self, indices: Sequence[int]) -> Any:
        """``default_collate([self[i] for i in indices])``, through the dataset's own batched
        fetch when it has one."""
        mapped = [self.indices[i] for i in indices]
        inner = getattr(self.dataset, "_default_batch", None)
        return inner(mapped) if inner is not None else default_collate([self.dataset[i] for i in mapped])


def random_split(dataset: Any, lengths: Sequence[float], generator: Any = None) -> list[Subset]:
    """Split ``dataset`` at random into non-overlapping Subsets of the given ``lengths``: counts
    summing to ``len(dataset)``, or fractions summing to 1 (each floor(n * f), the remainder given
    one by one to the first splits, as PyTorch does).

    Example: ``train, val = random_split(ds, [0.8, 0.2], generator=np.random.default_rng(42))``.
    """
    gen = _generator(generator, "random_split")
    n = len(dataset)
    lengths = list(lengths)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        counts = []
        for i, frac in enumerate(lengths):
            if not 0 <= frac <= 1:
                raise ArgumentError(f"random_split: fraction at index {i} is {frac}, not between 0 and 1")
            counts.append(math.floor(n * frac))
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        for i, c in enumerate(counts):
            if c == 0:
                warnings.warn(f"random_split: split {i} is empty", UserWarning, stacklevel=2)
        lengths = counts
    if any(int(c) != c or c < 0 for c in lengths) or sum(lengths) != n:
        raise ArgumentError(f"random_split: lengths {lengths} must be non-negative counts summing to the dataset's "
                            f"length {n}, or fractions summing to 1")
    order = _rng(gen).permutation(n).tolist()
    return [Subset(dataset, order[end - int(c):end]) for end, c in zip(accumulate(int(c) for c in lengths), lengths)]


# ---- samplers -----------------------------------------------------------------------------------


class Sampler:
    """Yields dataset indices (``__iter__``) and knows how many (``__len__``)."""

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source: Any) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """A new random permutation of the indices at each pass (or ``num_samples`` draws with
    ``replacement``), from ``generator`` (see the module's note on generators)."""

    def __init__(self, data_source: Any, replacement: bool = False, num_samples: int | None = None,
                 generator: Any = None) -> None:
        self.data_source = data_source
        self.replacement = bool(replacement)
        self._num_samples = num_samples
        self.generator = _generator(generator, "RandomSampler")
        if num_samples is not None and (int(num_samples) != num_samples or num_samples <= 0):
            raise ArgumentError(f"RandomSampler: num_samples must be a positive int, got {num_samples!r}")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else int(self._num_samples)

    def __iter__(self) -> Iterator[int]:
        n = len(self.data_source)
        rng = _rng(self.generator)
        if self.replacement:
            return map(int, rng.integers(0, n, size=self.num_samples))
        rounds = -(-self.num_samples // n) if n else 0
        order = np.concatenate([rng.permutation(n) for _ in range(rounds)]) if rounds else np.zeros(0, np.int64)
        return map(int, order[:self.num_samples])

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Groups the indices of ``sampler`` into lists of ``batch_size`` (the last one shorter unless
    ``drop_last``). Example: ``list(BatchSampler(range(5), 2, False)) == [[0, 1], [2, 3], [4]]``."""

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
            raise ArgumentError(f"BatchSampler: batch_size must be a positive int, got {batch_size!r}")
        self.sampler, self.batch_size, self.drop_last = sampler, int(batch_size), bool(drop_last)

    def __iter__(self) -> Iterator[list[int]]:
        batch: list[int] = []
        for i in self.sampler:
            batch.append(i)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


class DistributedSampler(Sampler):
    """This process's share of the dataset in data-parallel training (PyTorch's
    DistributedSampler): every rank sees ``num_samples = ceil(len / num_replicas)`` indices; the
    order (a permutation seeded by ``seed + epoch`` when ``shuffle``, else 0, 1, ...) is padded by
    repeating its start up to ``num_replicas * num_samples`` (or, with ``drop_last``, cut to a
    multiple of ``num_replicas``), and rank r takes positions r, r + num_replicas, ... Call
    ``set_epoch(e)`` at the start of each epoch so the shuffle differs between epochs.

    ``num_replicas`` and ``rank`` default to ``gpugrad.distributed``'s world size and rank when
    it is initialised, else to 1 and 0 (a single process sees the whole dataset).

    Example::

        sampler = DistributedSampler(train_set, seed=0)
        loader = DataLoader(train_set, batch_size=64, sampler=sampler)
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            for xb, yb in loader: ...
    """

    def __init__(self, dataset: Any, num_replicas: int | None = None, rank: int | None = None, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False) -> None:
        if num_replicas is None or rank is None:
            world, own = _distributed_world()
            num_replicas = world if num_replicas is None else num_replicas
            rank = own if rank is None else rank
        if int(num_replicas) < 1:
            raise ArgumentError(f"DistributedSampler: num_replicas must be at least 1, got {num_replicas}")
        if not 0 <= int(rank) < int(num_replicas):
            raise ArgumentError(f"DistributedSampler: invalid rank {rank}, rank should be in the interval "
                                f"[0, {int(num_replicas) - 1}]")
        self.dataset = dataset
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0
        n = len(dataset)
        if self.drop_last and n % self.num_replicas:
            self.num_samples = math.ceil((n - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Use ``seed + epoch`` for the next pass's shuffle (the same on every rank)."""
        self.epoch = int(epoch)

    def indices(self) -> np.ndarray:
        """This rank's indices for the current epoch, as an int64 array."""
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng(self.seed + self.epoch).permutation(n)
        else:
            order = np.arange(n)
        if self.drop_last:
            order = order[:self.total_size]
        elif self.total_size > n:
            order = np.resize(order, self.total_size)  # repeats the order from its start
        return order[self.rank:self.total_size:self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return map(int, self.indices())

    def __len__(self) -> int:
        return self.num_samples


def _distributed_world() -> tuple[int, int]:
    """(world size, rank) from gpugrad.distributed when it exists and is initialised, else (1, 0)."""
    try:
        from gpugrad import distributed
    except ImportError:
        return 1, 0
    is_initialized = getattr(distributed, "is_initialized", None)
    if is_initialized is None or not is_initialized():
        return 1, 0
    return int(distributed.world_size()), int(distributed.rank())


# ---- collation ----------------------------------------------------------------------------------


def default_convert(data: Any) -> Any:
    """Arrays and NumPy scalars become tensors, recursively inside mappings and sequences (the
    conversion applied to unbatched samples, ``batch_size=None``)."""
    from gpugrad.factories import as_tensor

    if isinstance(data, Tensor):
        return data
    if isinstance(data, (np.ndarray, np.generic)) and data.dtype.kind in "biuf":
        return as_tensor(np.asarray(data))
    if isinstance(data, Mapping):
        return {k: default_convert(v) for k, v in data.items()}
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, (list, tuple)):
        return [default_convert(d) for d in data]
    return data


def default_collate(batch: Sequence[Any]) -> Any:
    """Stack a list of samples into a batch, as PyTorch's default_collate: tensors and arrays are
    stacked along a new first axis (on the samples' device), Python floats become a float64
    tensor, ints an int64 tensor, bools a bool tensor, strings are left as they are; mappings,
    named tuples and sequences are collated field by field (a tuple sample gives a list).

    Example: ``default_collate([(x0, 0), (x1, 1)])`` is ``[stack([x0, x1]), tensor([0, 1])]``.
    """
    from gpugrad import ops
    from gpugrad.factories import as_tensor, tensor

    if not len(batch):
        raise ArgumentError("default_collate: got an empty batch")
    elem = batch[0]
    if isinstance(elem, Tensor):
        return ops.stack(list(batch), 0)
    if isinstance(elem, (np.ndarray, np.generic)) and elem.dtype.kind in "biuf":
        return as_tensor(np.stack([np.asarray(b) for b in batch]))
    if isinstance(elem, bool):
        return tensor(list(batch), dtype=np.bool_)
    if isinstance(elem, numbers.Integral):
        return tensor(list(batch), dtype=np.int64)
    if isinstance(elem, numbers.Real):
        return tensor(list(batch), dtype=np.float64)
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, Mapping):
        return {key: default_collate([d[key] for d in batch]) for key in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):
        return type(elem)(*(default_collate(field) for field in zip(*batch)))
    if isinstance(elem, Sequence):
        size = len(elem)
        if any(len(b) != size for b in batch):
            raise ShapeError("default_collate: each sample in the batch must have the same number of fields")
        return [default_collate(field) for field in zip(*batch)]
    raise GpugradError(f"default_collate: cannot batch samples of type {type(elem).__name__}; pass collate_fn")


# ---- the loader ---------------------------------------------------------------------------------


class DataLoader:
    """Iterate over ``dataset`` in batches, as PyTorch's DataLoader (in this process).

    ``batch_size`` samples per batch (None: single samples, converted to tensors), the last
    batch shorter unless ``drop_last``; ``shuffle`` draws a new order each pass from
    ``generator``; or give a ``sampler`` (e.g. a DistributedSampler) or a ``batch_sampler``.
    ``collate_fn`` turns a list of samples into a batch (default: :func:`default_collate`).
    Batches are where the dataset keeps its data (the CPU for arrays): move them with
    ``.to(device)``. ``num_workers`` must be 0 (no worker processes).

    Example::

        loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True,
                            generator=np.random.default_rng(0))
        for xb, yb in loader: ...
    """

    def __init__(self, dataset: Any, batch_size: int | None = 1, shuffle: bool = False, sampler: Any = None,
                 batch_sampler: Any = None, num_workers: int = 0, collate_fn: Callable[[list], Any] | None = None,
                 *, drop_last: bool = False, generator: Any = None) -> None:
        if num_workers != 0:
            raise ArgumentError(f"DataLoader: num_workers={num_workers} is not supported: gpugrad loads batches in "
                                "the calling process (num_workers=0)")
        if sampler is not None and shuffle:
            raise ArgumentError("DataLoader: sampler and shuffle=True are mutually exclusive (the sampler decides "
                                "the order)")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ArgumentError("DataLoader: batch_sampler is mutually exclusive with batch_size, shuffle, "
                                    "sampler and drop_last")
            batch_size = None
        elif batch_size is None and drop_last:
            raise ArgumentError("DataLoader: batch_size=None (no batching) is mutually exclusive with drop_last")
        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = bool(drop_last)
        self.generator = _generator(generator, "DataLoader")
        if sampler is None:
            sampler = RandomSampler(dataset, generator=self.generator) if shuffle else SequentialSampler(dataset)
        self.sampler = sampler
        if batch_sampler is None and batch_size is not None:
            batch_sampler = BatchSampler(sampler, batch_size, self.drop_last)
        self.batch_sampler = batch_sampler
        self.collate_fn = collate_fn

    def _fetch(self, indices: list[int]) -> Any:
        if self.collate_fn is None:
            fast = getattr(self.dataset, "_default_batch", None)
            if fast is not None:
                return fast(indices)
            return default_collate([self.dataset[i] for i in indices])
        return self.collate_fn([self.dataset[i] for i in indices])

    def __iter__(self) -> Iterator[Any]:
        if self.batch_sampler is None:
            convert = self.collate_fn or default_convert
            for i in self.sampler:
                yield convert(self.dataset[i])
            return
        for indices in self.batch_sampler:
            yield self._fetch(list(indices))

    def __len__(self) -> int:
        if self.batch_sampler is None:
            return len(self.sampler)
        return len(self.batch_sampler)
