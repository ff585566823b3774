"""A character-level corpus made from the Python standard library's source files on this
machine: no download, a few megabytes of real code."""

from __future__ import annotations

import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gpugrad.errors import GpugradError


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

    def batch(self, split: str, batch_size: int, block: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Random windows: inputs (B, block) and next-character targets (B, block)."""
        data = self.train if split == "train" else self.val
        starts = rng.integers(0, len(data) - block - 1, size=batch_size)
        x = np.stack([data[s:s + block] for s in starts]).astype(np.int64)
        y = np.stack([data[s + 1:s + block + 1] for s in starts]).astype(np.int64)
        return x, y


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
