"""The registered workloads, one module per family; importing this package registers them all
in :data:`gpugrad.bench.core.WORKLOADS`, in table order (the order of ``ORDER``)."""

import importlib

ORDER = ("overhead", "elementwise", "reductions", "matmul", "indexing", "conv", "training", "optimizer",
         "forward_mode")

for _name in ORDER:
    importlib.import_module(f"gpugrad.bench.workloads.{_name}")
del _name
