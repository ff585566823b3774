"""A small decoder-only transformer: token and position embeddings, pre-LayerNorm blocks of
causal multi-head self-attention and a GELU MLP, and a linear head over the vocabulary."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

import gpugrad as gg
from gpugrad import nn
from gpugrad.nn import functional as F
from gpugrad.tensor import Tensor


@dataclass
class GPTConfig:
    vocab_size: int
    block_size: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.attn = nn.MultiHeadAttention(cfg.n_embd, cfg.n_head, dropout=cfg.dropout, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.attn(x, x, x, need_weights=False, is_causal=True)
        return out


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        width = 4 * cfg.n_embd
        self.mlp = nn.Sequential(nn.Linear(cfg.n_embd, width), nn.GELU(), nn.Linear(width, cfg.n_embd),
                                 nn.Dropout(cfg.dropout))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """``GPT(GPTConfig(vocab_size=96))``: logits (B, T, vocab) for token ids (B, T).

    Example::

        model = GPT(GPTConfig(vocab_size=96, n_layer=2))
        logits = model(gg.tensor(np.zeros((2, 16), np.int64)))
    """

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.Sequential(*[Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size)

    def forward(self, idx: Tensor) -> Tensor:
        _, t = idx.shape
        if t > self.cfg.block_size:
            raise gg.ShapeError(f"GPT: sequence length {t} exceeds block_size {self.cfg.block_size}")
        positions = gg.arange(t, device=idx.device)
        x = self.drop(self.tok(idx) + self.pos(positions))
        return self.head(self.ln_f(self.blocks(x)))

    def loss(self, idx: Tensor, targets: Tensor) -> Tensor:
        logits = self(idx)
        b, t, v = logits.shape
        return F.cross_entropy(logits.reshape(b * t, v), targets.reshape(b * t))

    @gg.no_grad()
    def generate(self, idx: np.ndarray, steps: int, temperature: float = 0.8, seed: int = 0) -> np.ndarray:
        """Sample ``steps`` tokens after the prompt ``idx`` (1-D ids); returns the full sequence."""
        rng = np.random.default_rng(seed)
        seq = [int(i) for i in idx]
        device = self.head.weight.device
        for _ in range(steps):
            ctx = np.asarray(seq[-self.cfg.block_size:], dtype=np.int64)[None]
            logits = self(gg.tensor(ctx, device=device))[0, -1].numpy().astype(np.float64) / temperature
            p = np.exp(logits - logits.max())
            p /= p.sum()
            seq.append(int(rng.choice(len(p), p=p)))
        return np.asarray(seq, dtype=np.int64)
