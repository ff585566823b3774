"""Running HIPS autograd's own test suite against gpugrad (see tests/test_autograd_suite.py)."""
