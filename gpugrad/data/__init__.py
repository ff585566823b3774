"""Datasets for ``gpugrad train``: scikit-learn's handwritten digits and a character corpus made
from the Python standard library's own source files (no download)."""

from gpugrad.data.digits import DigitsSplit, load_digits
from gpugrad.data.pysource import CharCorpus, CharWindows, load_pysource

__all__ = ["DigitsSplit", "load_digits", "CharCorpus", "CharWindows", "load_pysource"]
