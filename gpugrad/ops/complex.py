"""Complex numbers: ``real``, ``imag``, ``conj``, ``angle`` and the modulus ``abs`` of complex values.

Gradients follow HIPS autograd's (and JAX's) convention: a reverse-mode rule is the transpose of
the op's real-linear tangent map under the pairing ``<a, b> = Re(sum(a * b))`` (no conjugate).
For a holomorphic op that is ``g * f'(z)``, the same expression as for reals, so the elementwise
table serves complex dtypes unchanged; the ops here are the non-holomorphic ones:

==========  ===================  ===========================================
op          tangent (jvp)        gradient (vjp)
==========  ===================  ===========================================
real(z)     real(t)              g (as complex)
imag(z)     imag(t)              -1j * g
conj(z)     conj(t)              conj(g)
abs(z)      Re(conj(z) t) / |z|  g * conj(z) / |z|  (0 where z == 0)
==========  ===================  ===========================================

``gg.grad`` of a real function f of complex z is therefore ``df/dx - 1j * df/dy`` (z = x + iy),
whose conjugate is the direction of steepest ascent.
"""

from __future__ import annotations

from typing import Any

from gpugrad.ops._util import as_tensor_operand
from gpugrad.ops.base import Op, apply
from gpugrad.tensor import Tensor


def is_complex(x: Any) -> bool:
    return getattr(getattr(x, "dtype", None), "kind", None) == "c"


class Real(Op):
    name = "real"
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.real(args[0]).copy()

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        return (g,)  # the engine casts it to the input's complex dtype (imaginary part 0)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return ns.real(tangents[0])


class Imag(Op):
    name = "imag"
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.imag(args[0]).copy()

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        return (g * -1j,)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return ns.imag(tangents[0])


class Conj(Op):
    name = "conj"
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.conj(args[0])

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        return (ns.conj(g),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return ns.conj(tangents[0])


class ComplexAbs(Op):
    """|z| of complex z (a real result); its gradient is 0 where z is 0, as autograd's."""

    name = "abs"
    save_out = True

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.xp.abs(args[0])

    def _unit(self, ns: Any, z: Any, out: Any) -> Any:
        """conj(z) / |z|, and 0 where z is 0."""
        zero = out == 0
        return ns.where(zero, 0, ns.conj(z) / ns.where(zero, 1, out))

    def vjp(self, ns: Any, g: Any, args: tuple, out: Any, params: dict, needs: tuple) -> tuple:
        return (g * self._unit(ns, args[0], out),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return ns.real(self._unit(ns, args[0], out) * tangents[0])


REAL = Real()
IMAG = Imag()
CONJ = Conj()
COMPLEX_ABS = ComplexAbs()


def real(x: Any) -> Tensor:
    """The real part, as ``numpy.real`` (a real tensor is returned as it is)."""
    x = as_tensor_operand(x)
    return apply(REAL, (x,), {}) if is_complex(x) else x


def imag(x: Any) -> Tensor:
    """The imaginary part, as ``numpy.imag`` (zeros, a constant, for a real tensor)."""
    x = as_tensor_operand(x)
    if is_complex(x):
        return apply(IMAG, (x,), {})
    from gpugrad.factories import zeros_like

    return zeros_like(x)


def conj(x: Any) -> Tensor:
    """The complex conjugate, as ``numpy.conj`` (a real tensor is returned as it is)."""
    x = as_tensor_operand(x)
    return apply(CONJ, (x,), {}) if is_complex(x) else x


conjugate = conj


def angle(x: Any, deg: bool = False) -> Tensor:
    """The argument of complex values, as ``numpy.angle`` (0 or pi for reals, with gradient 0)."""
    from gpugrad.ops.elementwise import arctan2, multiply

    x = as_tensor_operand(x)
    if is_complex(x):
        out = arctan2(imag(x), real(x))
    else:
        out = arctan2(multiply(x, 0), x)
    return out * (180.0 / 3.141592653589793) if deg else out


def abs(x: Any) -> Tensor:  # noqa: A001 (NumPy's name)
    """Absolute value; the modulus (a real result) for complex values."""
    from gpugrad.ops import elementwise as ew

    if is_complex(x):
        return apply(COMPLEX_ABS, (as_tensor_operand(x),), {})
    return ew.abs(x)
