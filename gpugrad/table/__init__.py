"""The op table: gpugrad's math, declared once, as data.

The leaf of the package: it imports nothing from gpugrad, so that the code generator, the
backends and the ops can all read it. :mod:`.expr` is the small expression language shared by
Python and C; :mod:`.optim` declares the optimisers' update rules in it.
"""
