"""A character-level LSTM language model: embedding, a stacked LSTM, a linear head."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

import gpugrad as gg
from gpugrad import nn
from gpugrad.tensor import Tensor


@dataclass
class CharLSTMConfig:
    vocab_size: int
    embed_dim: int = 64
    hidden_size: int = 256
    num_layers: int = 1
    dropout: float = 0.0
    # The training sequence length (truncated backpropagation through time); the model itself
    # takes sequences of any length.
    block_size: int = 128

    def to_dict(self) -> dict:
        return asdict(self)


class CharLSTM(nn.Module):
    """``CharLSTM(CharLSTMConfig(vocab_size=96))``: logits (B, T, vocab) for token ids (B, T).

    Example::

        model = CharLSTM(CharLSTMConfig(vocab_size=96, hidden_size=128))
        logits = model(gg.tensor(np.zeros((2, 16), np.int64)))
        logits, state = model.forward_with_state(ids, state)   # carry (h, c) across calls
    """

    def __init__(self, cfg: CharLSTMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        self.lstm = nn.LSTM(cfg.embed_dim, cfg.hidden_size, num_layers=cfg.num_layers, batch_first=True,
                            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden_size, cfg.vocab_size)

    def forward_with_state(self, idx: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """Logits (B, T, vocab) and the LSTM's final (h, c), starting from ``state`` (zeros if None)."""
        out, state = self.lstm(self.embed(idx), state)
        return self.head(self.drop(out)), state

    def forward(self, idx: Tensor) -> Tensor:
        return self.forward_with_state(idx)[0]

    @gg.no_grad()
    def generate(self, idx: np.ndarray, steps: int, temperature: float = 0.8, seed: int = 0) -> np.ndarray:
        """Sample ``steps`` tokens after the prompt ``idx`` (1-D ids), one step at a time carrying
        the LSTM state; returns the full sequence."""
        rng = np.random.default_rng(seed)
        seq = [int(i) for i in idx]
        device = self.head.weight.device
        logits, state = self.forward_with_state(gg.tensor(np.asarray(seq, np.int64)[None], device=device))
        for _ in range(steps):
            z = logits[0, -1].numpy().astype(np.float64) / temperature
            p = np.exp(z - z.max())
            p /= p.sum()
            seq.append(int(rng.choice(len(p), p=p)))
            logits, state = self.forward_with_state(gg.tensor(np.array([[seq[-1]]], np.int64), device=device), state)
        return np.asarray(seq, dtype=np.int64)
