"""Fusion: a chain of elementwise ops evaluated as one pass forward and one pass backward.

* :mod:`.lazy`: eager fusion. Elementwise ops on tensors return pending tensors; a chain runs
  as one fused op on the tape when its value is needed (``gg.no_fusion()`` turns it off).
* :class:`Chain` (:mod:`.chain`): build the DAG op by op (leaves, :meth:`Chain.apply`,
  :meth:`Chain.output`, :meth:`Chain.reduce`); :attr:`Chain.signature` keys compiled code.
* :func:`forward`, :func:`backward` (:mod:`.run`): evaluate it on NumPy arrays (compiled host
  code or blocked NumPy) or CuPy arrays (one generated CUDA kernel each way).
* :mod:`.lower`: the symbolic forward and vector-Jacobian product, derived from the op table's
  expressions; :mod:`.cuda`: kernel sources, names and caches.

Example::

    from gpugrad.ops.elementwise import OPS
    c = Chain()
    x = c.leaf(np.linspace(-1, 1, 5))
    c.reduce(c.apply(OPS["tanh"], [x]), "sum")
    _, loss = forward(c)
    (gx,) = backward(c, [np.float64(1.0)], [True])
"""

from gpugrad.fusion.chain import Chain, NotFusable, Ref
from gpugrad.fusion.run import backward, forward

__all__ = ["Chain", "NotFusable", "Ref", "backward", "forward"]
