"""Ready-made models used by ``gpugrad train``: an MLP and a small CNN for the digits, a small
decoder-only transformer (GPT) and a character-level LSTM for language modelling.

The functions named after ``gpugrad train --model`` build the architecture that command trains,
so a run's weights load straight into them::

    import gpugrad as gg
    from gpugrad import models

    net = models.mlp()
    net.load_state_dict(gg.load("runs/mlp-20261122-101500/model.safetensors"))
"""

from __future__ import annotations

from typing import Any

from gpugrad.models.cnn import DigitsCNN
from gpugrad.models.gpt import GPT, GPTConfig
from gpugrad.models.lstm import CharLSTM, CharLSTMConfig
from gpugrad.models.mlp import MLP

__all__ = ["MLP", "DigitsCNN", "GPT", "GPTConfig", "CharLSTM", "CharLSTMConfig", "mlp", "cnn", "gpt", "lstm"]


def mlp() -> MLP:
    """``gpugrad train --model mlp``'s network: 64 pixels -> 256 -> 256 -> 10 logits, ReLU."""
    return MLP(64, (256, 256), 10)


def cnn() -> DigitsCNN:
    """``gpugrad train --model cnn``'s network for (N, 1, 8, 8) digits."""
    return DigitsCNN()


def gpt(vocab_size: int = 96, **config: Any) -> GPT:
    """``gpugrad train --model gpt``'s transformer (GPTConfig's defaults, overridable by keyword)."""
    return GPT(GPTConfig(vocab_size=vocab_size, **config))


def lstm(vocab_size: int = 96, **config: Any) -> CharLSTM:
    """``gpugrad train --model lstm``'s network (CharLSTMConfig's defaults, overridable by keyword)."""
    return CharLSTM(CharLSTMConfig(vocab_size=vocab_size, **config))
