"""Ready-made models used by ``gpugrad train``: an MLP and a small CNN for the digits, and a
small decoder-only transformer (GPT) for character-level language modelling."""

from gpugrad.models.cnn import DigitsCNN
from gpugrad.models.gpt import GPT, GPTConfig
from gpugrad.models.mlp import MLP

__all__ = ["MLP", "DigitsCNN", "GPT", "GPTConfig"]
