"""A character-level corpus made from the Python standard library's source files on this
machine: no download, a few megabytes of real code."""

from __future__ import annotations

import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gpugrad.errors import GpugradError, ShapeError
from gpugrad.utils.data import Dataset


@dataclass
class CharCorpus:
    """Token ids (uint8-sized vocabulary) split into train and validation, and the vocabulary."""

    train: np.ndarray
    val: np.ndarray
    chars: list[str]

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.chars)}
        return np.array([index.get(c, index[" "]) for c in text], dtype=np.int64)

    def decode(self, ids: np.ndarray) -> str:
        return "".join(self.chars[int(i)] for i in ids)


class CharWindows(Dataset):
    """Every window of ``block`` characters of a token array: item i is (tokens[i:i+block],
    tokens[i+1:i+block+1]) as int64 arrays, the inputs and their next-character targets.
    Batches of many windows are gathered in one indexing operation (DataLoader's fast path).

    Example: ``DataLoader(CharWindows(corpus.train, 128), batch_size=32, shuffle=True)``.
    """

    def __init__(self, tokens: np.ndarray, block: int, device: str = "cpu") -> None:
        if block < 1 or len(tokens) <= block:
            raise ShapeError(f"CharWindows: need more than block={block} tokens, got {len(tokens)}")
        self.tokens, self.block, self.device = np.asarray(tokens), int(block), device
        self._offsets = np.arange(self.block + 1)

    def __len__(self) -> int:
        return len(self.tokens) - self.block

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"CharWindows: index {i} out of range for {len(self)} windows")
        w = self.tokens[i % len(self):i % len(self) + self.block + 1].astype(np.int64)
        return w[:-1], w[1:]

    def _default_batch(self, indices: Sequence[int]) -> list:
        from gpugrad.factories import tensor

        w = self.tokens[np.asarray(indices, dtype=np.int64)[:, None] + self._offsets].astype(np.int64)
        return [tensor(w[:, :-1], device=self.device), tensor(w[:, 1:], device=self.device)]


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def load_pysource(max_bytes: int = 4_000_000, val_fraction: float = 0.1, root: Path | None = None) -> CharCorpus:
    """Read the standard library's ``*.py`` files (sorted, so the corpus is the same on every run
    with the same Python) up to ``max_bytes``, keep printable ASCII plus newline and tab, and
    split off the last ``val_fraction`` as validation.

    Example: ``corpus = load_pysource(); corpus.vocab_size``
    """
    root = root or stdlib_dir()
    files = sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts and "test" not in p.parts)
    if not files:
        raise GpugradError(f"pysource: no Python source files found under {root}")
    parts, total = [], 0
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="ignore")
        except OSError:
            continue
        text = "".join(c for c in text if c == "\n" or c == "\t" or " " <= c <= "~")
        parts.append(text)
        total += len(text)
        if total >= max_bytes:
            break
    corpus = "\n".join(parts)[:max_bytes]
    chars = sorted(set(corpus) | {" "})
    index = {c: i for i, c in enumerate(chars)}
    ids = np.frombuffer(corpus.encode("ascii"), dtype=np.uint8)
    lut = np.zeros(256, dtype=np.uint8)
    for c, i in index.items():
        lut[ord(c)] = i
    tokens = lut[ids]
    n_val = int(len(tokens) * val_fraction)
    return CharCorpus(tokens[:-n_val], tokens[-n_val:], chars)
